import { parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { RejectRow } from '../domain/types.ts';
import { unitPartKey } from '../output/keys.ts';
import { extraColumnsOfPart, rejectsPartWriter, rewrittenPartWriter } from '../output/parquet-tables.ts';
import { StreamedPart } from '../output/streamed-part.ts';
import type { ChunkIndex } from '../ports/chunk-index.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { objectAsyncBuffer } from '../readers/parquet.ts';
import { DROPPED_ORDINALS_KEY, droppedOrdinalsOf } from './dropped-ordinals.ts';
import { mergeSorted } from './merge-sorted.ts';
import { compareIdEntries, type IdEntry, readUnitIdList } from './unit-id-list.ts';
import { DuplicateWinners } from './winner-entries.ts';

export { DROPPED_ORDINALS_KEY } from './dropped-ordinals.ts';

/** Read buffers of the merge, all lists together; each list gets its share within these bounds. */
const READ_BUDGET_BYTES = 8 * 1024 * 1024;
const MIN_READ_WINDOW_BYTES = 16 * 1024;
const MAX_READ_WINDOW_BYTES = 256 * 1024;

/** The tables whose rows the duplicate-id rule keeps unique by id (a job stage's `idTable`). */
export type IdTable = 'embeddings' | 'scores' | 'generations';

/** The pseudo unit id of the `rejects` part that lists a run's duplicate ids. */
export const DUPLICATES_PART = 'duplicates';

/** What resolving a run's duplicate ids took out of its results. */
export interface DuplicateResolution {
  /** Records rejected as duplicates (now rows of `rejects`). */
  readonly rejected: number;
  /** Their rows taken out of the results table (chunks, scored rows, or generations). */
  readonly rows: number;
  /** Of those rows, the ones carried from an earlier run (unchanged chunks, answers from the prompt cache). */
  readonly carried: number;
  /** Parts rewritten without them. */
  readonly partsRewritten: number;
  /**
   * With a chunk index: entries recorded for kept records of duplicated ids, where the index
   * held another ({@link DuplicateWinners}).
   */
  readonly indexEntries?: number;
}

/** Where a record is, as a reject reason names it. */
const placeOf = (entry: IdEntry): string => `${entry.sourceKey} line ${entry.line}`;

/**
 * Applies the run's duplicate-id rule: of the records that share an id, the last one in
 * (source key, byte offset) order stays in the results; every other one goes to `rejects`
 * with the reason `duplicate id "<id>": kept the record at <source> line <n>`, and its rows
 * are taken out of its unit's part. The units' id lists (each sorted) are merged by
 * streaming, so memory holds one entry per unit and the records of one id; a part is
 * rewritten group by group. Idempotent: a rewritten part names the records it dropped in
 * its footer, so a retried finalize (or one after a redrive) drops only what is still in it,
 * and the duplicates' `rejects` part is rewritten whole under one key.
 *
 * `chunkIndex` (the `embeddings` table of an incremental pipeline): each duplicated id gets
 * the kept record's entry where the index holds another (a losing unit recorded last, or
 * the id's unit read it twice in one window and recorded no fingerprints), so the next run
 * carries the kept record rather than embed it again ({@link DuplicateWinners}). A retried
 * finalize finds those entries right and writes none again.
 */
export async function resolveDuplicateIds(
  store: ObjectStore,
  run: { readonly pipeline: string; readonly runId: string },
  table: IdTable,
  unitIds: readonly string[],
  chunkIndex?: ChunkIndex,
): Promise<DuplicateResolution> {
  const { pipeline, runId } = run;
  // Each list is read two windows at a time: split a fixed budget between them, so a run
  // of many units does not hold 512 KiB per unit (78 MiB at 153 units).
  const windowBytes = Math.max(
    MIN_READ_WINDOW_BYTES,
    Math.min(MAX_READ_WINDOW_BYTES, Math.floor(READ_BUDGET_BYTES / 2 / Math.max(1, unitIds.length))),
  );
  const merged = mergeSorted(
    unitIds.map((unitId) => readUnitIdList(store, pipeline, runId, unitId, windowBytes)),
    compareIdEntries,
  );
  const dropped = new Map<string, number[]>();
  const rejects = new StreamedPart(
    store,
    unitPartKey('rejects', pipeline, runId, DUPLICATES_PART),
    rejectsPartWriter(runId),
  );
  let rows = 0;
  let carried = 0;
  let group: IdEntry[] = [];
  const winners = chunkIndex && table === 'embeddings' ? new DuplicateWinners() : undefined;
  const closeGroup = async (): Promise<void> => {
    const kept = group.at(-1);
    if (!kept || group.length < 2) return;
    winners?.note(group);
    const losers: RejectRow[] = [];
    for (const loser of group.slice(0, -1)) {
      rows += loser.rows;
      carried += loser.carried;
      let ordinals = dropped.get(loser.unitId);
      if (!ordinals) {
        ordinals = [];
        dropped.set(loser.unitId, ordinals);
      }
      ordinals.push(loser.ordinal);
      losers.push({
        source_key: loser.sourceKey,
        byte_offset: loser.byteOffset,
        line: loser.line,
        reason: `duplicate id ${JSON.stringify(loser.id)}: kept the record at ${placeOf(kept)}`,
        // The text is in the kept record's unit, not here; the place names where to look.
        excerpt: '',
      });
    }
    await rejects.add(losers);
  };
  try {
    for await (const entry of merged) {
      if (group.length > 0 && group[0]!.id !== entry.id) {
        await closeGroup();
        group = [];
      }
      group.push(entry);
    }
    await closeGroup();
  } catch (error) {
    await rejects.abort();
    throw error;
  }
  const rejected = rejects.rows;
  await rejects.finish();
  let partsRewritten = 0;
  for (const [unitId, ordinals] of dropped) {
    if (await dropFromPart(store, unitPartKey(table, pipeline, runId, unitId), table, ordinals))
      partsRewritten += 1;
  }
  if (!winners || !chunkIndex) return { rejected, rows, carried, partsRewritten };
  const indexEntries = await winners.record(store, chunkIndex, run);
  return { rejected, rows, carried, partsRewritten, indexEntries };
}

/**
 * Rewrites a unit's part without the records at `ordinals` (positions among the records the
 * unit wrote). Records a rewrite dropped before stay dropped; returns false when every
 * record asked for is gone already.
 */
async function dropFromPart(
  store: ObjectStore,
  key: string,
  table: IdTable,
  ordinals: readonly number[],
): Promise<boolean> {
  const size = (await store.head(key))?.size;
  if (size === undefined) return false;
  const file = objectAsyncBuffer(store, key, size);
  const metadata = await parquetMetadataAsync(file);
  const droppedBefore = droppedOrdinalsOf(metadata);
  const drop = new Set([...droppedBefore, ...ordinals]);
  if (drop.size === droppedBefore.size) return false;
  const part = new StreamedPart(
    store,
    key,
    rewrittenPartWriter(
      table,
      [{ key: DROPPED_ORDINALS_KEY, value: JSON.stringify([...drop].sort((a, b) => a - b)) }],
      extraColumnsOfPart(table, metadata.schema),
    ),
  );
  try {
    // The ordinal of each record still in the part: the unit's own count, skipping those dropped before.
    let ordinal = -1;
    const nextOrdinal = (): number => {
      ordinal += 1;
      while (droppedBefore.has(ordinal)) ordinal += 1;
      return ordinal;
    };
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const rowEnd = rowStart + Number(group.num_rows);
      const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd });
      rowStart = rowEnd;
      const kept: Record<string, unknown>[] = [];
      for (const row of rows) {
        // A document's chunks are consecutive and start at chunk 0; a scored row or a generation is one record.
        if (table !== 'embeddings' || row.chunk_index === 0) nextOrdinal();
        if (!drop.has(ordinal)) kept.push(row);
      }
      await part.add(kept);
    }
  } catch (error) {
    await part.abort();
    throw error;
  }
  await part.finish(true);
  return true;
}

/** Takes the duplicates out of a run's summed counts: they are rejects now, not results. */
export function countDuplicates(
  total: {
    rejected: number;
    chunks: number;
    embedded: number;
    skippedUnchanged: number;
    scored: number;
    generated?: number;
    cached?: number;
  },
  table: IdTable,
  resolution: DuplicateResolution,
): void {
  total.rejected += resolution.rejected;
  if (table === 'scores') {
    total.scored -= resolution.rows;
    return;
  }
  if (table === 'generations') {
    total.generated = (total.generated ?? 0) - (resolution.rows - resolution.carried);
    total.cached = (total.cached ?? 0) - resolution.carried;
    return;
  }
  total.chunks -= resolution.rows;
  total.skippedUnchanged -= resolution.carried;
  total.embedded -= resolution.rows - resolution.carried;
}
