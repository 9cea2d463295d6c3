import { type FileMetaData, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { entryIsFresh } from '../incremental/entry-refresh.ts';
import { unitPartKey } from '../output/keys.ts';
import {
  type ChunkIndex,
  INDEX_FINGERPRINT_BYTES,
  type IndexedDoc,
  indexFingerprint,
  MAX_INDEXED_CHUNKS,
} from '../ports/chunk-index.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { objectAsyncBuffer } from '../readers/parquet.ts';
import { droppedOrdinalsOf } from './dropped-ordinals.ts';
import { PackedEntries } from './packed-entries.ts';
import type { IdEntry } from './unit-id-list.ts';

/** Ids looked up, and entries recorded, this many at a time (DynamoDB BatchGetItem takes 100 keys). */
const SLICE = 100;

/** Fields of a noted winner: its ordinal in its unit's part, its rows, its source's number. */
const ORDINAL = 0;
const ROWS = 1;
const SOURCE = 2;

/** A winner's entry as its part holds it, before its place is named: its fingerprints (none over MAX_INDEXED_CHUNKS) and first row. */
interface Winner {
  readonly docId: string;
  readonly chunkCount: number;
  readonly sourceKey: string;
  readonly fingerprints: Uint8Array | undefined;
  readonly firstRow: number;
}

/** A run of an embed pipeline whose chunk index finalize puts right. */
interface RunRef {
  readonly pipeline: string;
  readonly runId: string;
}

/**
 * The kept records of a run's duplicate ids, and the chunk index entries finalize records
 * for them once the losers' rows are out of the parts.
 *
 * No unit records the kept record's entry for certain. Each unit records an entry for the
 * record it read, and no unit knows another's: the last unit to record an id's entry leaves
 * its own, a loser's as often as the winner's. A unit that reads an id twice in one window
 * cannot tell which record wins either, and records the id without fingerprints (its
 * records' chunks summed). Either entry makes the next run embed the winner again, and
 * every run after (docs/decisions.md, "Duplicate ids"). Finalize alone knows the winner:
 * it looks every duplicated id's entry up (in batches) and, where it does not describe the
 * winner's chunks as they sit in the run's parts, records the winner's (its fingerprints
 * from the winner's rows, its first row in the rewritten part). One read per duplicated id
 * and run, and a write only where the entry is wrong (where the winner's window recorded
 * last, in its own unit, the entry is right already).
 *
 * What it leaves: a losing record read again next run is still embedded again (those of its
 * chunks that differ from the winner's chunk of the same number; a copy of the winner's
 * text is carried), since its unit cannot know it loses, and its unit records its entry over
 * the winner's (or, in the winner's window, one without fingerprints), which the winner's
 * unit (running after it) puts back or finalize records again. Per such id and run: the
 * loser's changed chunks, up to two entry writes and this read. A loser's unit (in another
 * unit or window than the winner's) also counts the winner's chunks past its own as removed
 * (`removedChunks`).
 *
 * Winners are kept packed (an id and three numbers), by unit, until the parts are rewritten.
 */
export class DuplicateWinners {
  private readonly byUnit = new Map<string, PackedEntries>();
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();

  /** Notes the kept record (the group's last) of an id's records. */
  note(group: readonly IdEntry[]): void {
    const kept = group.at(-1);
    if (!kept) return;
    let source = this.sourceNumbers.get(kept.sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(kept.sourceKey);
      this.sourceNumbers.set(kept.sourceKey, source);
    }
    let winners = this.byUnit.get(kept.unitId);
    if (!winners) {
      winners = new PackedEntries(['u32', 'u32', 'u32']);
      this.byUnit.set(kept.unitId, winners);
    }
    winners.push(kept.id, [kept.ordinal, kept.rows, source]);
  }

  /**
   * Records the winners' entries where the index holds another (call after the parts are
   * rewritten: first rows are counted in the rewritten part). Returns the entries recorded.
   * A winner whose rows the part does not hold as its unit's id list says (a part gone, or
   * not the one the list was written with) is left as the index has it.
   */
  async record(store: ObjectStore, index: ChunkIndex, run: RunRef): Promise<number> {
    let recorded = 0;
    for (const [unitId, winners] of this.byUnit) {
      let pending: Winner[] = [];
      for await (const doc of this.entriesInPart(store, run, unitId, winners)) {
        pending.push(doc);
        if (pending.length === SLICE) {
          recorded += await recordWhereWrong(index, run, unitId, pending);
          pending = [];
        }
      }
      if (pending.length > 0) recorded += await recordWhereWrong(index, run, unitId, pending);
    }
    return recorded;
  }

  /**
   * The winners of unit `unitId` as entries of its `embeddings` part, in part order: the
   * part's `chunk_index` column counts records (skipping those a rewrite dropped, as the
   * unit numbered them), and only the row groups that hold winners have their `doc_id` and
   * `text_sha256` read.
   */
  private async *entriesInPart(
    store: ObjectStore,
    run: RunRef,
    unitId: string,
    winners: PackedEntries,
  ): AsyncGenerator<Winner> {
    const key = unitPartKey('embeddings', run.pipeline, run.runId, unitId);
    const size = (await store.head(key))?.size;
    if (size === undefined) return;
    const file = objectAsyncBuffer(store, key, size);
    const metadata: FileMetaData = await parquetMetadataAsync(file);
    const dropped = droppedOrdinalsOf(metadata);
    const order = winners.sortedBy((a, b) => winners.value(a, ORDINAL) - winners.value(b, ORDINAL));
    let next = 0;
    let ordinal = -1;
    let current: WinnerRows | undefined;
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      if (next >= order.length && !current) return;
      const rowEnd = rowStart + Number(group.num_rows);
      const indexes = await parquetReadObjects({
        file,
        metadata,
        columns: ['chunk_index'],
        rowStart,
        rowEnd,
      });
      // Each row's record ordinal, and the rows of winners among the group's.
      const ordinals = new Float64Array(indexes.length);
      let first = -1;
      let last = -1;
      let scan = next;
      indexes.forEach((row, i) => {
        if (Number(row.chunk_index) === 0) {
          ordinal += 1;
          while (dropped.has(ordinal)) ordinal += 1;
        }
        ordinals[i] = ordinal;
        while (scan < order.length && winners.value(order[scan]!, ORDINAL) < ordinal) scan += 1;
        const wanted =
          (current !== undefined && current.ordinal === ordinal) ||
          (scan < order.length && winners.value(order[scan]!, ORDINAL) === ordinal);
        if (wanted) {
          if (first < 0) first = i;
          last = i;
        }
      });
      if (first >= 0) {
        const rows = await parquetReadObjects({
          file,
          metadata,
          columns: ['doc_id', 'chunk_index', 'text_sha256'],
          rowStart: rowStart + first,
          rowEnd: rowStart + last + 1,
        });
        for (let i = first; i <= last; i += 1) {
          const row = rows[i - first]!;
          const at = ordinals[i]!;
          if (current && current.ordinal !== at) {
            const done = current.entry();
            if (done) yield done;
            current = undefined;
          }
          if (!current) {
            while (next < order.length && winners.value(order[next]!, ORDINAL) < at) next += 1;
            if (next >= order.length || winners.value(order[next]!, ORDINAL) !== at) continue;
            const k = order[next]!;
            next += 1;
            current = new WinnerRows(
              winners.id(k),
              at,
              winners.value(k, ROWS),
              this.sources[winners.value(k, SOURCE)]!,
              rowStart + i,
            );
          }
          current.add(row);
        }
      }
      // A winner's rows may go on into the next group; any other record ends it.
      if (current && ordinals[ordinals.length - 1] !== current.ordinal) {
        const done = current.entry();
        if (done) yield done;
        current = undefined;
      }
      rowStart = rowEnd;
    }
    const done = current?.entry();
    if (done) yield done;
  }
}

/** A winner's rows as its part holds them, checked against what its unit's id list says. */
class WinnerRows {
  private readonly fingerprints: Uint8Array | undefined;
  private chunks = 0;
  private wrong = false;

  constructor(
    private readonly docId: string,
    readonly ordinal: number,
    private readonly rows: number,
    private readonly sourceKey: string,
    private readonly firstRow: number,
  ) {
    // A document over MAX_INDEXED_CHUNKS is recorded without fingerprints, as its unit records it.
    this.fingerprints =
      rows <= MAX_INDEXED_CHUNKS ? new Uint8Array(rows * INDEX_FINGERPRINT_BYTES) : undefined;
  }

  add(row: Record<string, unknown>): void {
    const n = this.chunks;
    this.chunks += 1;
    const sha = row.text_sha256;
    if (
      row.doc_id !== this.docId ||
      Number(row.chunk_index) !== n ||
      n >= this.rows ||
      typeof sha !== 'string'
    ) {
      this.wrong = true;
      return;
    }
    this.fingerprints?.set(indexFingerprint(sha), n * INDEX_FINGERPRINT_BYTES);
  }

  /** The winner's entry; undefined where the rows are not the ones its unit listed. */
  entry(): Winner | undefined {
    if (this.wrong || this.chunks !== this.rows) return undefined;
    const { docId, rows: chunkCount, sourceKey, fingerprints, firstRow } = this;
    return { docId, chunkCount, sourceKey, fingerprints, firstRow };
  }
}

/**
 * Looks `winners` up and records each one whose entry does not describe it. An entry does
 * when it has the winner's chunk count, source and fingerprints, and its vectors' place is
 * either the winner's own unit of this run (that unit recorded it; rows a rewrite moved up
 * are found where they are now, shared/jobs/embed/part-vectors.ts) or a part of an earlier
 * run still fresh (a unit of this run carried the winner whole from it and left it, or put
 * it back). Returns the entries recorded.
 */
async function recordWhereWrong(
  index: ChunkIndex,
  run: RunRef,
  unitId: string,
  winners: readonly Winner[],
): Promise<number> {
  const found = await index.lookupDocs(
    run.pipeline,
    winners.map((w) => w.docId),
  );
  const docs: IndexedDoc[] = [];
  const replacing = new Map<string, IndexedDoc>();
  for (const { fingerprints, firstRow, ...winner } of winners) {
    const doc: IndexedDoc = fingerprints
      ? { ...winner, chunks: { fingerprints, at: { runId: run.runId, unitId, firstRow } } }
      : winner;
    const entry = found.get(doc.docId);
    if (entry && describes(entry, doc, run.runId)) continue;
    docs.push(doc);
    if (entry) replacing.set(doc.docId, entry);
  }
  if (docs.length > 0) await index.record(run.pipeline, docs, replacing);
  return docs.length;
}

/** Whether `entry` describes the winner `doc` (see {@link recordWhereWrong}). */
function describes(entry: IndexedDoc, doc: IndexedDoc, runId: string): boolean {
  if (entry.chunkCount !== doc.chunkCount || entry.sourceKey !== doc.sourceKey) return false;
  if (!doc.chunks || !entry.chunks) return !doc.chunks && !entry.chunks;
  if (!Buffer.from(entry.chunks.fingerprints).equals(doc.chunks.fingerprints)) return false;
  const { at } = entry.chunks;
  return at.runId === runId ? at.unitId === doc.chunks.at.unitId : entryIsFresh(runId, at.runId);
}
