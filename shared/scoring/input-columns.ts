import type { Compression, InputFormat } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { readParquetLayout } from '../readers/parquet.ts';
import type { RecordFields } from '../readers/source-record.ts';
import { readSourceRecords } from '../readers/source-records.ts';
import type { InputColumns } from './infer-spec.ts';

/** An input object as the planner classified it. */
export interface ColumnSource {
  readonly key: string;
  readonly size: number;
  readonly format: InputFormat;
  readonly compression: Compression;
  readonly version?: string;
}

/** JSONL records whose keys are read for the columns (a CSV header or Parquet schema needs none). */
const JSONL_RECORDS_READ = 200;

/**
 * The columns of an input as the readers expose them before any unit runs: a Parquet
 * file's schema (its footer), a CSV file's header, the keys of a JSONL file's first
 * records (200). Undefined for plain text (no columns) and for an input with no
 * readable record (nothing to score in it, or a fault the worker reports).
 */
export async function inputColumnsOf(
  store: ObjectStore,
  source: ColumnSource,
  fields: RecordFields,
): Promise<InputColumns | undefined> {
  if (source.format === 'text') return undefined;
  if (source.format === 'parquet') {
    if (source.compression !== 'none') return undefined;
    const layout = await readParquetLayout(store, source.key, source.size, fields.textField, source.version);
    return { source: source.key, columns: layout.columns, complete: true };
  }
  const slice = {
    key: source.key,
    format: source.format,
    compression: source.compression,
    byteStart: 0,
    byteEnd: Number.MAX_SAFE_INTEGER,
    firstLine: 1,
    ...(source.version === undefined ? {} : { version: source.version }),
  };
  const columns = new Set<string>();
  let rows = 0;
  for await (const record of readSourceRecords(store, slice, { ...fields, shape: 'row' })) {
    if (record.kind !== 'row') continue;
    for (const key of Object.keys(record.values)) columns.add(key);
    rows += 1;
    // A CSV row carries every header field; JSONL records may each carry a few.
    if (source.format === 'csv' || rows >= JSONL_RECORDS_READ) break;
  }
  if (rows === 0) return undefined;
  return { source: source.key, columns: [...columns], complete: source.format === 'csv' };
}
