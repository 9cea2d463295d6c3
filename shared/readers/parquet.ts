import {
  type AsyncBuffer,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
} from 'hyparquet';
import { ObjectChanged, ObjectRangeError } from '../errors/errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { EXCERPT_CHARS, overLimitReason, toSourceRecord } from './record-rules.ts';
import type { RecordFields, RejectRecord, SourceRecord, SourceSlice } from './source-record.ts';

/** One row group of a Parquet file, as the planner cuts and the reader selects. */
export interface ParquetRowGroup {
  readonly index: number;
  /** Offset of the row group's first page: a unit owns the row groups that start in its range. */
  readonly start: number;
  /** 0-based number of the row group's first row in the file. */
  readonly firstRow: number;
  readonly rows: number;
  /** Uncompressed bytes of the text column in this row group (0 when there is none). */
  readonly textBytes: number;
}

export interface ParquetLayout {
  readonly metadata: FileMetaData;
  /** Top-level column names. */
  readonly columns: readonly string[];
  readonly rowGroups: readonly ParquetRowGroup[];
}

/** An object as hyparquet's AsyncBuffer: every slice is one ranged read of the store. */
export function objectAsyncBuffer(
  store: ObjectStore,
  key: string,
  byteLength: number,
  version?: string,
): AsyncBuffer {
  const options = version === undefined ? {} : { version };
  return {
    byteLength,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = Math.min(end ?? byteLength, byteLength);
      const out = new Uint8Array(Math.max(0, stop - start));
      let at = 0;
      for await (const chunk of store.readRange(key, start, stop, options)) {
        out.set(chunk.subarray(0, out.length - at), at);
        at += chunk.byteLength;
      }
      return out.buffer;
    },
  };
}

/** Where a row group's first page is: its dictionary page when it has one, else its first data page. */
function rowGroupStart(columns: FileMetaData['row_groups'][number]['columns']): number {
  let start = Number.POSITIVE_INFINITY;
  for (const column of columns) {
    const meta = column.meta_data;
    if (!meta) {
      start = Math.min(start, Number(column.file_offset));
      continue;
    }
    const dictionary = meta.dictionary_page_offset;
    const first =
      dictionary !== undefined && dictionary > 0n && dictionary < meta.data_page_offset
        ? dictionary
        : meta.data_page_offset;
    start = Math.min(start, Number(first));
  }
  return Number.isFinite(start) ? start : 0;
}

/** Reads a Parquet file's footer: its columns and row groups with where each starts. */
export async function readParquetLayout(
  store: ObjectStore,
  key: string,
  size: number,
  textField: string,
  version?: string,
): Promise<ParquetLayout> {
  const metadata = await parquetMetadataAsync(objectAsyncBuffer(store, key, size, version));
  const columns = parquetSchema(metadata).children.map((child) => child.element.name);
  let firstRow = 0;
  const rowGroups = metadata.row_groups.map((group, index): ParquetRowGroup => {
    const rows = Number(group.num_rows);
    let textBytes = 0;
    for (const column of group.columns) {
      if (column.meta_data?.path_in_schema[0] === textField)
        textBytes += Number(column.meta_data.total_uncompressed_size);
    }
    const info = { index, start: rowGroupStart(group.columns), firstRow, rows, textBytes };
    firstRow += rows;
    return info;
  });
  return { metadata, columns, rowGroups };
}

function excerptOfRow(row: Record<string, unknown>): string {
  return JSON.stringify(row, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)).slice(
    0,
    EXCERPT_CHARS,
  );
}

/**
 * Rows of the row groups that start in the slice's range, as documents or rejects;
 * the line of a row is its 1-based row number in the file. A document reads only the id,
 * text and metadata columns, a row every column ({@link columnsToRead}), one row group at
 * a time (memory follows the row group's size). A row group that cannot be decoded (a codec hyparquet lacks, say) becomes one
 * reject naming its rows.
 */
export async function* parquetRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): AsyncGenerator<SourceRecord> {
  if (slice.compression !== 'none') {
    yield parquetReject('gzip-compressed Parquet is not supported: Parquet compresses its own pages', 0, 0);
    return;
  }
  const opened = await openParquet(store, slice, fields);
  if ('kind' in opened) {
    yield opened;
    return;
  }
  for (const group of opened.layout.rowGroups) {
    if (group.start < slice.byteStart || group.start >= slice.byteEnd || group.rows === 0) continue;
    const rows = await readRowGroup(opened, group);
    if (!Array.isArray(rows)) {
      yield rows;
      continue;
    }
    for (let i = 0; i < rows.length; i += 1)
      yield rowRecord(rows[i]!, fields, slice.key, group.firstRow + i + 1, group.start);
  }
}

function parquetReject(reason: string, line: number, byteOffset: number): RejectRecord {
  return { kind: 'reject', reason, line, byteOffset, excerpt: '' };
}

/** The object changed under the read: not a fault of the data, the unit must fail. */
function isObjectChange(error: unknown): boolean {
  return error instanceof ObjectChanged || error instanceof ObjectRangeError;
}

/** A Parquet file open for reading the pipeline's columns (those the file has). */
interface OpenParquet {
  readonly layout: ParquetLayout;
  readonly file: AsyncBuffer;
  readonly columns: readonly string[];
}

/** Reads the file's layout; a file that is not Parquet is one reject. */
async function openParquet(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): Promise<OpenParquet | RejectRecord> {
  const size = (await store.head(slice.key))?.size ?? slice.byteEnd;
  let layout: ParquetLayout;
  try {
    layout = await readParquetLayout(store, slice.key, size, fields.textField, slice.version);
  } catch (error) {
    if (isObjectChange(error)) throw error;
    return parquetReject(`not a readable Parquet file: ${(error as Error).message}`, 0, 0);
  }
  const file = objectAsyncBuffer(store, slice.key, size, slice.version);
  return { layout, file, columns: columnsToRead(layout.columns, fields) };
}

/**
 * The columns a reader decodes: for a document the id, text and metadata columns the file
 * has (the rest would be decoded only to be dropped); for a row every column, as the
 * `row` shape promises and as CSV and JSONL give it: a recommend pipeline reads its user,
 * item, value and timestamp fields from a row, a score pipeline its features, and neither
 * is among the document fields (reading only those gave every row empty, so every
 * interaction was rejected as missing its user).
 */
function columnsToRead(present: readonly string[], fields: RecordFields): string[] {
  if (fields.shape === 'row') return [...present];
  const has = new Set(present);
  return [...new Set([fields.idField, fields.textField, ...fields.metadataFields])].filter((c) => has.has(c));
}

/** One row group's rows (empty objects when none of the columns is present), or one reject naming its rows. */
async function readRowGroup(
  { layout, file, columns }: OpenParquet,
  group: ParquetRowGroup,
): Promise<Record<string, unknown>[] | RejectRecord> {
  if (columns.length === 0) return Array.from({ length: group.rows }, () => ({}));
  try {
    return await parquetReadObjects({
      file,
      metadata: layout.metadata,
      columns: [...columns],
      rowStart: group.firstRow,
      rowEnd: group.firstRow + group.rows,
    });
  } catch (error) {
    if (isObjectChange(error)) throw error;
    const rows = `rows ${group.firstRow + 1}-${group.firstRow + group.rows}`;
    const reason = `Parquet row group ${group.index} (${rows}) could not be read: ${(error as Error).message}`;
    return parquetReject(reason, group.firstRow + 1, group.start);
  }
}

/** A row as a document, or a reject when its text is over the record limit. */
function rowRecord(
  row: Record<string, unknown>,
  fields: RecordFields,
  sourceKey: string,
  line: number,
  byteOffset: number,
): SourceRecord {
  const text = row[fields.textField];
  if (typeof text === 'string') {
    const bytes = Buffer.byteLength(text);
    if (bytes > fields.maxRecordBytes)
      return {
        ...parquetReject(overLimitReason(bytes, fields.maxRecordBytes), line, byteOffset),
        excerpt: text.slice(0, EXCERPT_CHARS),
      };
  }
  return toSourceRecord(row, fields, sourceKey, line, byteOffset, excerptOfRow(row));
}
