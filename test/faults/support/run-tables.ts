import { parquetReadObjects } from 'hyparquet';
import type { TableName } from '../../../shared/output/keys.ts';
import type { ObjectStore } from '../../../shared/ports/object-store.ts';

/** Every row of a run's parts of one table, read from the object store as Athena or DuckDB would. */
export async function readTable(
  store: ObjectStore,
  table: TableName,
  pipeline: string,
  runId: string,
): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const { key } of store.list(`results/${table}/pipeline=${pipeline}/`)) {
    if (!key.includes(runId) || !key.endsWith('.parquet')) continue;
    const bytes = await store.get(key);
    if (!bytes) continue;
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    rows.push(...(await parquetReadObjects({ file })));
  }
  return rows;
}
