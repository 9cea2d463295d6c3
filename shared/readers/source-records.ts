import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Compression, InputFormat } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { parseCsvRecord } from './csv.ts';
import { readLines } from './line-reader.ts';

/** What a reader yields for each input record: a document or a reject with its reason. */
export type SourceRecord =
  | {
      readonly kind: 'doc';
      readonly id: string;
      readonly text: string;
      readonly metadata: Record<string, string | null>;
      readonly line: number;
      readonly byteOffset: number;
    }
  | {
      readonly kind: 'reject';
      readonly reason: string;
      readonly line: number;
      readonly byteOffset: number;
      readonly excerpt: string;
    };

export interface SourceSlice {
  readonly key: string;
  readonly format: InputFormat;
  readonly compression: Compression;
  readonly byteStart: number;
  /** Exclusive; for a whole object, its size. */
  readonly byteEnd: number;
  readonly firstLine: number;
  readonly csvHeader?: string;
}

export interface RecordFields {
  readonly idField: string;
  readonly textField: string;
  readonly metadataFields: readonly string[];
  readonly maxRecordBytes: number;
}

const EXCERPT_CHARS = 200;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function excerptOf(bytes: Buffer): string {
  return bytes
    .subarray(0, EXCERPT_CHARS * 4)
    .toString('utf8')
    .slice(0, EXCERPT_CHARS);
}

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Streams the bytes of a slice, decompressing gzip (gzip slices always cover the whole object). */
function sliceBytes(
  store: ObjectStore,
  slice: SourceSlice,
): { chunks: AsyncIterable<Uint8Array>; streamOffset: number } {
  if (slice.compression === 'gzip') {
    const gunzip = Readable.from(store.readRange(slice.key, 0)).pipe(createGunzip());
    return { chunks: gunzip, streamOffset: 0 };
  }
  const streamOffset = slice.byteStart > 0 ? slice.byteStart - 1 : 0;
  return { chunks: store.readRange(slice.key, streamOffset), streamOffset };
}

function metadataOf(
  record: Record<string, unknown>,
  fields: readonly string[],
): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const field of fields) {
    const value = record[field];
    out[field] =
      value === undefined || value === null
        ? null
        : typeof value === 'string'
          ? value
          : JSON.stringify(value);
  }
  return out;
}

/** Turns one parsed object into a document or a reject, applying the id/text field rules. */
function toDocument(
  record: Record<string, unknown>,
  fields: RecordFields,
  sourceKey: string,
  line: number,
  byteOffset: number,
  excerpt: string,
): SourceRecord {
  const reject = (reason: string): SourceRecord => ({ kind: 'reject', reason, line, byteOffset, excerpt });
  const text = record[fields.textField];
  if (text === undefined || text === null) return reject(`missing text field "${fields.textField}"`);
  if (typeof text !== 'string') return reject(`text field "${fields.textField}" is not a string`);
  if (text.trim().length === 0) return reject(`text field "${fields.textField}" is empty`);
  const rawId = record[fields.idField];
  let id: string;
  if (rawId === undefined || rawId === null || rawId === '') id = `${sourceKey}:${line}`;
  else if (typeof rawId === 'string' || typeof rawId === 'number') id = String(rawId);
  else return reject(`id field "${fields.idField}" must be a string or a number`);
  return { kind: 'doc', id, text, metadata: metadataOf(record, fields.metadataFields), line, byteOffset };
}

async function* jsonlRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): AsyncGenerator<SourceRecord> {
  const { chunks, streamOffset } = sliceBytes(store, slice);
  const end = slice.compression === 'gzip' ? Number.POSITIVE_INFINITY : slice.byteEnd;
  let line = slice.firstLine - 1;
  for await (const raw of readLines(chunks, {
    streamOffset,
    start: slice.byteStart,
    end,
    maxLineBytes: fields.maxRecordBytes,
  })) {
    line += 1;
    const reject = (reason: string): SourceRecord => ({
      kind: 'reject',
      reason,
      line,
      byteOffset: raw.offset,
      excerpt: excerptOf(raw.bytes),
    });
    if (raw.truncated) {
      yield reject(`record is ${raw.length} bytes, over the limit of ${fields.maxRecordBytes} bytes`);
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
    yield toDocument(
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
): AsyncGenerator<SourceRecord> {
  const { chunks, streamOffset } = sliceBytes(store, slice);
  const end = slice.compression === 'gzip' ? Number.POSITIVE_INFINITY : slice.byteEnd;
  let header: string[] | undefined =
    slice.csvHeader === undefined ? undefined : parseCsvRecord(slice.csvHeader);
  let line = slice.firstLine - 1;
  let pending: { text: string; line: number; offset: number; bytes: number } | undefined;

  for await (const raw of readLines(chunks, {
    streamOffset,
    start: slice.byteStart,
    end,
    maxLineBytes: fields.maxRecordBytes,
  })) {
    line += 1;
    const rejectRaw = (reason: string): SourceRecord => ({
      kind: 'reject',
      reason,
      line,
      byteOffset: raw.offset,
      excerpt: excerptOf(raw.bytes),
    });
    if (raw.truncated) {
      pending = undefined;
      yield rejectRaw(`record is ${raw.length} bytes, over the limit of ${fields.maxRecordBytes} bytes`);
      continue;
    }
    let text = decodeUtf8(raw.bytes);
    if (text === undefined) {
      pending = undefined;
      yield rejectRaw('invalid UTF-8');
      continue;
    }
    if (line === 1) text = stripBom(text);
    const record = pending
      ? {
          text: `${pending.text}\n${text}`,
          line: pending.line,
          offset: pending.offset,
          bytes: pending.bytes + raw.length + 1,
        }
      : { text, line, offset: raw.offset, bytes: raw.length };
    if (record.bytes > fields.maxRecordBytes) {
      pending = undefined;
      yield {
        kind: 'reject',
        reason: `record is over the limit of ${fields.maxRecordBytes} bytes`,
        line: record.line,
        byteOffset: record.offset,
        excerpt: record.text.slice(0, EXCERPT_CHARS),
      };
      continue;
    }
    const values = parseCsvRecord(record.text);
    if (values === undefined) {
      pending = record;
      continue;
    }
    pending = undefined;
    if (!header) {
      header = values;
      continue;
    }
    if (record.text.trim().length === 0) continue;
    const excerpt = record.text.slice(0, EXCERPT_CHARS);
    if (values.length !== header.length) {
      yield {
        kind: 'reject',
        reason: `CSV row has ${values.length} fields, the header has ${header.length}`,
        line: record.line,
        byteOffset: record.offset,
        excerpt,
      };
      continue;
    }
    const obj: Record<string, unknown> = {};
    header.forEach((name, i) => {
      obj[name] = values[i];
    });
    yield toDocument(obj, fields, slice.key, record.line, record.offset, excerpt);
  }
  if (pending) {
    yield {
      kind: 'reject',
      reason: 'CSV record ends inside a quoted field',
      line: pending.line,
      byteOffset: pending.offset,
      excerpt: pending.text.slice(0, EXCERPT_CHARS),
    };
  }
}

async function* textRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): AsyncGenerator<SourceRecord> {
  const { chunks } = sliceBytes(store, slice);
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
 * Streams the records of one slice. Reading errors of the object itself (a corrupt gzip
 * stream, say) end the slice with one reject describing the fault, keeping the
 * records read before it.
 */
export async function* readSourceRecords(
  store: ObjectStore,
  slice: SourceSlice,
  fields: RecordFields,
): AsyncGenerator<SourceRecord> {
  const reader = slice.format === 'jsonl' ? jsonlRecords : slice.format === 'csv' ? csvRecords : textRecords;
  let last = { line: slice.firstLine, byteOffset: slice.byteStart };
  try {
    for await (const record of reader(store, slice, fields)) {
      last = { line: record.line, byteOffset: record.byteOffset };
      yield record;
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
      yield {
        kind: 'reject',
        reason: `corrupt or truncated gzip data: ${(error as Error).message}`,
        line: last.line + 1,
        byteOffset: last.byteOffset,
        excerpt: '',
      };
      return;
    }
    throw error;
  }
}
