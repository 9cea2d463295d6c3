import { parquetWriteBuffer } from 'hyparquet-writer';
import type { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import {
  type RecordFields,
  readSourceRecords,
  type SourceRecord,
  type SourceSlice,
} from '../../shared/readers/source-records.ts';

export const FIELDS: RecordFields = {
  idField: 'id',
  textField: 'text',
  metadataFields: [],
  maxRecordBytes: 1024,
};

/** Every record of the slices, in order, as plain comparable objects. */
export async function readSlices(
  store: ObjectStore,
  slices: readonly SourceSlice[],
  fields: RecordFields = FIELDS,
): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for (const slice of slices)
    for await (const record of readSourceRecords(store, slice, fields)) out.push(record);
  return out;
}

/** The whole object as one slice, as a unit that reads the file alone would. */
export async function wholeSlice(
  store: MemoryObjectStore,
  key: string,
  format: SourceSlice['format'],
  compression: SourceSlice['compression'] = 'none',
): Promise<SourceSlice> {
  const size = (await store.head(key))!.size;
  return { key, format, compression, byteStart: 0, byteEnd: size, firstLine: 1 };
}

/** A Parquet file with string columns, `rowGroupSize` rows per row group. */
export function parquetFile(
  columns: Record<string, (string | null)[] | bigint[] | number[]>,
  rowGroupSize: number,
): Uint8Array {
  const columnData = Object.entries(columns).map(([name, data]) => ({
    name,
    data,
    type:
      typeof data[0] === 'bigint'
        ? ('INT64' as const)
        : typeof data[0] === 'number'
          ? ('DOUBLE' as const)
          : ('STRING' as const),
    nullable: true,
  }));
  return new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize }));
}

/** Deterministic words of varied length, for documents whose cost is not proportional to their count. */
export function words(seed: number, count: number): string {
  const vocabulary = ['sluice', 'gate', 'river', 'token', 'a', 'embedding', 'of', 'partition', 'skew', 'the'];
  let state = seed >>> 0;
  const out: string[] = [];
  for (let i = 0; i < count; i += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out.push(vocabulary[state % vocabulary.length]!);
  }
  return out.join(' ');
}
