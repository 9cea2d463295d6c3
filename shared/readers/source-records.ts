import type { ObjectStore } from '../ports/object-store.ts';
import {
  DEFAULT_MAX_DECOMPRESSION_RATIO,
  DecompressionRatioExceeded,
  gunzipBounded,
} from './bounded-gunzip.ts';
import { parseCsvRecord, readCsvRecords } from './csv.ts';
import { readLines } from './line-reader.ts';
import { parquetRecords } from './parquet.ts';
import {
  decodeUtf8,
  EXCERPT_CHARS,
  excerptOf,
  holdsBinary,
  metadataOf,
  overLimitReason,
  stripBom,
  toSourceRecord,
} from './record-rules.ts';
import type { ScannedRecord } from './record-scanner.ts';
import type { RecordFields, RejectRecord, SourceRecord, SourceSlice } from './source-record.ts';

// The record types live in their own module so that the readers they describe (parquet,
// record-rules) need not import this one, which imports them.
export type { RecordFields, RejectRecord, SourceRecord, SourceSlice } from './source-record.ts';

/** Where the next unread record would start; a reader fault is reported there. */
interface Cursor {
  line: number;
  offset: number;
}

interface SliceStream {
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Offset of the first byte the stream yields, in the source's (decompressed) bytes. */
  readonly streamOffset: number;
  /** Records starting at or after this offset belong to a later slice. */
  readonly end: number;
}

/**
 * Streams the bytes of a slice. A staged part is read whole (it holds exactly the slice);
 * a gzip source is decompressed from its start (gzip slices always cover the whole
 * object); a plain range starts one byte early when `lookBehind` is set, as the line
 * split rule needs.
 */
function openSlice(
  store: ObjectStore,
  slice: SourceSlice,
  lookBehind: boolean,
  maxRatio = DEFAULT_MAX_DECOMPRESSION_RATIO,
): SliceStream {
  const pinned = slice.version === undefined ? {} : { version: slice.version };
  if (slice.staged) {
    return {
      chunks: store.readRange(slice.staged.key, 0),
      streamOffset: slice.staged.offset,
      end: slice.byteEnd,
    };
  }
  if (slice.compression === 'gzip') {
    const gunzip = gunzipBounded(store.readRange(slice.key, 0, undefined, pinned), maxRatio);
    return { chunks: gunzip, streamOffset: 0, end: Number.POSITIVE_INFINITY };
  }
  const streamOffset = lookBehind && slice.byteStart > 0 ? slice.byteStart - 1 : slice.byteStart;
  return {
    chunks: store.readRange(slice.key, streamOffset, undefined, pinned),
    streamOffset,
    end: slice.byteEnd,
  };
}

async function* jsonlRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
  cursor: Cursor,
): AsyncGenerator<SourceRecord> {
  const { chunks, streamOffset, end } = openSlice(store, slice, true, fields.maxDecompressionRatio);
  let line = slice.firstLine - 1;
  for await (const raw of readLines(chunks, {
    streamOffset,
    start: slice.byteStart,
    end,
    maxLineBytes: fields.maxRecordBytes,
  })) {
    line += 1;
    cursor.line = line + 1;
    cursor.offset = raw.next;
    const record = jsonlRecord(raw, line, slice.key, fields);
    if (record) yield record;
  }
}

/** A raw record as the readers scan it, before decoding. */
type RawRecord = Pick<ScannedRecord, 'offset' | 'bytes' | 'truncated' | 'length'>;

function rawReject(raw: RawRecord, line: number, reason: string): RejectRecord {
  return { kind: 'reject', reason, line, byteOffset: raw.offset, excerpt: excerptOf(raw.bytes) };
}

/** One JSONL line as a document or a reject; undefined for a blank line, which is not a record. */
export function jsonlRecord(
  raw: RawRecord,
  line: number,
  sourceKey: string,
  fields: RecordFields,
): SourceRecord | undefined {
  if (raw.truncated) return rawReject(raw, line, overLimitReason(raw.length, fields.maxRecordBytes));
  const text = decodeUtf8(raw.bytes);
  if (text === undefined) return rawReject(raw, line, 'invalid UTF-8');
  const body = line === 1 ? stripBom(text) : text;
  if (body.trim().length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    return rawReject(raw, line, `malformed JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    const got = Array.isArray(parsed) ? 'array' : parsed === null ? 'null' : typeof parsed;
    return rawReject(raw, line, `not a JSON object (got ${got})`);
  }
  return toSourceRecord(
    parsed as Record<string, unknown>,
    fields,
    sourceKey,
    line,
    raw.offset,
    excerptOf(raw.bytes),
  );
}

async function* csvRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
  cursor: Cursor,
): AsyncGenerator<SourceRecord> {
  const { chunks, streamOffset, end } = openSlice(store, slice, false, fields.maxDecompressionRatio);
  let header: string[] | undefined =
    slice.csvHeader === undefined ? undefined : parseCsvRecord(slice.csvHeader);
  for await (const raw of readCsvRecords(chunks, {
    start: streamOffset,
    end,
    firstLine: slice.firstLine,
    maxRecordBytes: fields.maxRecordBytes,
  })) {
    cursor.line = raw.line + 1;
    cursor.offset = raw.next;
    const read = csvRecord(raw, header, slice.key, fields);
    if (read === undefined) continue;
    if (read.kind === 'header') header = read.header;
    else yield read;
  }
}

/**
 * One CSV record: a document or a reject, the header when none is known yet, or undefined
 * for a blank line.
 */
export function csvRecord(
  raw: RawRecord & Pick<ScannedRecord, 'line' | 'unterminated'>,
  header: readonly string[] | undefined,
  sourceKey: string,
  fields: RecordFields,
): SourceRecord | { readonly kind: 'header'; readonly header: string[] } | undefined {
  const { line } = raw;
  if (raw.unterminated) return rawReject(raw, line, 'CSV record ends inside a quoted field');
  if (raw.truncated) return rawReject(raw, line, overLimitReason(raw.length, fields.maxRecordBytes));
  const decoded = decodeUtf8(raw.bytes);
  if (decoded === undefined) return rawReject(raw, line, 'invalid UTF-8');
  // A quoted field's CRLF reads as LF, as the record's own terminator does.
  const text = (raw.offset === 0 ? stripBom(decoded) : decoded).replace(/\r\n/g, '\n');
  const values = parseCsvRecord(text);
  if (values === undefined) return rawReject(raw, line, 'CSV record ends inside a quoted field');
  if (!header) return { kind: 'header', header: values };
  if (text.trim().length === 0) return undefined;
  const excerpt = text.slice(0, EXCERPT_CHARS);
  if (values.length !== header.length)
    return {
      ...rawReject(raw, line, `CSV row has ${values.length} fields, the header has ${header.length}`),
      excerpt,
    };
  const row: Record<string, unknown> = {};
  header.forEach((name, i) => {
    row[name] = values[i];
  });
  return toSourceRecord(row, fields, sourceKey, line, raw.offset, excerpt);
}

async function* textRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): AsyncGenerator<SourceRecord> {
  const { chunks } = openSlice(store, slice, false, fields.maxDecompressionRatio);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size <= fields.maxRecordBytes) parts.push(Buffer.from(chunk));
  }
  yield textDocument(Buffer.concat(parts), size, slice.key, fields);
}

/** A whole plain text file (its first `maxRecordBytes` at most, of `size`) as one document, or one reject. */
export function textDocument(
  bytes: Buffer,
  size: number,
  sourceKey: string,
  fields: RecordFields,
): SourceRecord {
  const reject = (reason: string): SourceRecord => ({
    kind: 'reject',
    reason,
    line: 1,
    byteOffset: 0,
    excerpt: excerptOf(bytes),
  });
  if (size > fields.maxRecordBytes)
    return reject(`document is ${size} bytes, over the limit of ${fields.maxRecordBytes} bytes`);
  const text = decodeUtf8(bytes);
  if (text === undefined) return reject('invalid UTF-8');
  const body = stripBom(text);
  if (body.trim().length === 0) return reject('empty document');
  if (holdsBinary(body)) return reject('binary data (NUL bytes): not a text document');
  if (fields.shape === 'row')
    return reject('a plain text file has no rows to score (use CSV, JSONL or Parquet)');
  return {
    kind: 'doc',
    id: sourceKey,
    text: body,
    metadata: metadataOf({}, fields.metadataFields),
    line: 1,
    byteOffset: 0,
  };
}

/**
 * Errors by which zlib and streams say a gzip source is corrupt or ends too early, and
 * by which a source is found to be a decompression bomb: each ends the source with one reject.
 */
export function isGzipFault(error: unknown): boolean {
  if (error instanceof DecompressionRatioExceeded) return true;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

export function gzipFaultReason(error: unknown): string {
  if (error instanceof DecompressionRatioExceeded) return error.message;
  return `corrupt or truncated gzip data: ${(error as Error).message}`;
}

/**
 * Streams the records of one slice. A corrupt or truncated gzip stream ends the slice
 * with one reject describing the fault, at the first record not read, keeping the
 * records read before it; a re-staged part reports the fault its staging met.
 */
export async function* readSourceRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): AsyncGenerator<SourceRecord> {
  if (slice.format === 'parquet') {
    yield* parquetRecords(store, slice, fields);
    return;
  }
  // Records over the size limit the planner left out of a staged part lie before it.
  for (const skipped of slice.staged?.rejects ?? []) yield { kind: 'reject', ...skipped };
  const cursor: Cursor = { line: slice.firstLine, offset: slice.byteStart };
  const records =
    slice.format === 'jsonl'
      ? jsonlRecords(store, slice, fields, cursor)
      : slice.format === 'csv'
        ? csvRecords(store, slice, fields, cursor)
        : textRecords(store, slice, fields);
  try {
    yield* records;
  } catch (error) {
    if (!isGzipFault(error)) throw error;
    yield {
      kind: 'reject',
      reason: gzipFaultReason(error),
      line: cursor.line,
      byteOffset: cursor.offset,
      excerpt: '',
    };
    return;
  }
  const fault = slice.staged?.fault;
  if (fault) yield { kind: 'reject', ...fault, excerpt: '' };
}
