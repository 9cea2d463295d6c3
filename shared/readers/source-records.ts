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
    const reject = (reason: string): SourceRecord => ({
      kind: 'reject',
      reason,
      line,
      byteOffset: raw.offset,
      excerpt: excerptOf(raw.bytes),
    });
    if (raw.truncated) {
      yield reject(overLimitReason(raw.length, fields.maxRecordBytes));
      continue;
    }
    const text = decodeUtf8(raw.bytes);
    if (text === undefined) {
      yield reject('invalid UTF-8');
      continue;
    }
    const body = line === 1 ? stripBom(text) : text;
    if (body.trim().length === 0) continue; // a blank line is not a record
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      yield reject(`malformed JSON: ${(error as Error).message}`);
      continue;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      yield reject(
        `not a JSON object (got ${Array.isArray(parsed) ? 'array' : parsed === null ? 'null' : typeof parsed})`,
      );
      continue;
    }
    yield toSourceRecord(
      parsed as Record<string, unknown>,
      fields,
      slice.key,
      line,
      raw.offset,
      excerptOf(raw.bytes),
    );
  }
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
    const reject = (reason: string): RejectRecord => ({
      kind: 'reject',
      reason,
      line: raw.line,
      byteOffset: raw.offset,
      excerpt: excerptOf(raw.bytes),
    });
    if (raw.unterminated) {
      yield reject('CSV record ends inside a quoted field');
      continue;
    }
    if (raw.truncated) {
      yield reject(overLimitReason(raw.length, fields.maxRecordBytes));
      continue;
    }
    const decoded = decodeUtf8(raw.bytes);
    if (decoded === undefined) {
      yield reject('invalid UTF-8');
      continue;
    }
    // A quoted field's CRLF reads as LF, as the record's own terminator does.
    const text = (raw.offset === 0 ? stripBom(decoded) : decoded).replace(/\r\n/g, '\n');
    const values = parseCsvRecord(text);
    if (values === undefined) {
      yield reject('CSV record ends inside a quoted field');
      continue;
    }
    if (!header) {
      header = values;
      continue;
    }
    if (text.trim().length === 0) continue; // a blank line is not a record
    const excerpt = text.slice(0, EXCERPT_CHARS);
    if (values.length !== header.length) {
      yield { ...reject(`CSV row has ${values.length} fields, the header has ${header.length}`), excerpt };
      continue;
    }
    const row: Record<string, unknown> = {};
    header.forEach((name, i) => {
      row[name] = values[i];
    });
    yield toSourceRecord(row, fields, slice.key, raw.line, raw.offset, excerpt);
  }
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
  const bytes = Buffer.concat(parts);
  const reject = (reason: string): SourceRecord => ({
    kind: 'reject',
    reason,
    line: 1,
    byteOffset: 0,
    excerpt: excerptOf(bytes),
  });
  if (size > fields.maxRecordBytes) {
    yield reject(`document is ${size} bytes, over the limit of ${fields.maxRecordBytes} bytes`);
    return;
  }
  const text = decodeUtf8(bytes);
  if (text === undefined) {
    yield reject('invalid UTF-8');
    return;
  }
  const body = stripBom(text);
  if (body.trim().length === 0) {
    yield reject('empty document');
    return;
  }
  if (holdsBinary(body)) {
    yield reject('binary data (NUL bytes): not a text document');
    return;
  }
  if (fields.shape === 'row') {
    yield reject('a plain text file has no rows to score (use CSV, JSONL or Parquet)');
    return;
  }
  yield {
    kind: 'doc',
    id: slice.key,
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
