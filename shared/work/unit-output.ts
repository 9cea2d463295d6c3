import type { RejectRow, WorkUnit } from '../domain/types.ts';
import { type UnitIdList, unitIdListKey } from '../duplicates/unit-id-list.ts';
import { type TableName, unitPartKey } from '../output/keys.ts';
import { type ParquetPartWriter, rejectsParquet } from '../output/parquet-tables.ts';
import { openObjectWrite, StreamedPart } from '../output/streamed-part.ts';
import type { ObjectStore } from '../ports/object-store.ts';

const PARQUET = 'application/vnd.apache.parquet';

/**
 * Writes a unit's part of a table under its deterministic key (a retry overwrites it)
 * and returns the key.
 */
export async function putTablePart(
  store: ObjectStore,
  table: TableName,
  unit: WorkUnit,
  body: Uint8Array,
): Promise<string> {
  const key = unitPartKey(table, unit.pipeline, unit.runId, unit.unitId);
  await store.put(key, body, PARQUET);
  return key;
}

/** A unit's part of a table streamed as its rows come (see StreamedPart). */
export function streamedTablePart<Row>(
  store: ObjectStore,
  table: TableName,
  unit: WorkUnit,
  writer: ParquetPartWriter<Row>,
): StreamedPart<Row> {
  return new StreamedPart(store, unitPartKey(table, unit.pipeline, unit.runId, unit.unitId), writer);
}

/**
 * Runs `work` into a streamed part: the part is aborted when the work fails (nothing half
 * written stays), finished when it succeeds. Returns the work's result and the part's key
 * when the part has rows.
 */
export async function intoStreamedPart<Row, T>(
  part: StreamedPart<Row>,
  work: (part: StreamedPart<Row>) => Promise<T>,
): Promise<{ result: T; key: string | undefined }> {
  const result = await work(part).catch(async (error: unknown) => {
    await part.abort();
    throw error;
  });
  return { result, key: (await part.finish()) ? part.key : undefined };
}

/**
 * The ids the unit's part holds (always written, a retry overwrites it), which finalize
 * merges across units to apply the duplicate-id rule. Not a table part: not in outputKeys.
 */
export async function putIdList(store: ObjectStore, unit: WorkUnit, idList: UnitIdList): Promise<void> {
  await putInBlocks(
    store,
    unitIdListKey(unit.pipeline, unit.runId, unit.unitId),
    idList.blocks(unit.runId, unit.unitId),
    'application/x-ndjson',
  );
}

/**
 * Writes an object from blocks of text as they are made (the store's piecewise write), so
 * a unit's lists are never held whole as one string and again as its bytes. Like a `put`,
 * the object appears whole or not at all.
 */
export async function putInBlocks(
  store: ObjectStore,
  key: string,
  blocks: Iterable<string | Uint8Array>,
  contentType: string,
): Promise<void> {
  const write = await openObjectWrite(store, key, contentType);
  try {
    for (const block of blocks)
      await write.write(typeof block === 'string' ? Buffer.from(block, 'utf8') : block);
  } catch (error) {
    await write.abort();
    throw error;
  }
  await write.finish();
}

/** The unit's `rejects` part, when it has any; returns its key. */
export async function putRejects(
  store: ObjectStore,
  unit: WorkUnit,
  rejects: readonly RejectRow[],
): Promise<string | undefined> {
  if (rejects.length === 0) return undefined;
  return putTablePart(store, 'rejects', unit, rejectsParquet(unit.runId, [...rejects]));
}
