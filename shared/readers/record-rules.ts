import type { RecordFields, SourceRecord } from './source-record.ts';

/** Characters of a bad record kept in `rejects.excerpt`. */
export const EXCERPT_CHARS = 200;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function excerptOf(bytes: Buffer): string {
  return bytes
    .subarray(0, EXCERPT_CHARS * 4)
    .toString('utf8')
    .slice(0, EXCERPT_CHARS);
}

/** The text of UTF-8 bytes, or undefined when they are not valid UTF-8. */
export function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Text holding a NUL character is binary data, not a document: no text format uses it,
 * and a file of NUL bytes would otherwise be embedded as hundreds of empty-looking chunks.
 */
export function holdsBinary(text: string): boolean {
  return text.includes('\u0000');
}

export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The reason a record over `input.maxRecordBytes` is rejected with. */
export function overLimitReason(length: number, limit: number): string {
  return `record is ${length} bytes, over the limit of ${limit} bytes`;
}

/** A value as it goes into a string column: strings as they are, others as JSON. */
function columnValue(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

export function metadataOf(
  record: Record<string, unknown>,
  fields: readonly string[],
): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const field of fields) out[field] = columnValue(record[field]);
  return out;
}

/**
 * A record's id by the input contract: the id field as text, or `<sourceKey>:<line>` when
 * it is missing or empty; undefined when it holds something that cannot be an id.
 */
function recordIdOf(
  record: Record<string, unknown>,
  fields: RecordFields,
  sourceKey: string,
  line: number,
): string | undefined {
  const rawId = record[fields.idField];
  if (rawId === undefined || rawId === null || rawId === '') return `${sourceKey}:${line}`;
  if (typeof rawId === 'string' || typeof rawId === 'number' || typeof rawId === 'bigint')
    return String(rawId);
  return undefined;
}

/**
 * Turns one parsed record (a JSON object, a CSV row by header, a Parquet row) into a
 * document or a reject, applying the pipeline's id and text field rules.
 */
export function toDocument(
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
  if (holdsBinary(text)) return reject(`text field "${fields.textField}" holds binary data (NUL bytes)`);
  const id = recordIdOf(record, fields, sourceKey, line);
  if (id === undefined) return reject(`id field "${fields.idField}" must be a string or a number`);
  return { kind: 'doc', id, text, metadata: metadataOf(record, fields.metadataFields), line, byteOffset };
}

/** Turns one parsed record into a row for scoring: every field kept as read, the id by the same rule. */
export function toRow(
  record: Record<string, unknown>,
  fields: RecordFields,
  sourceKey: string,
  line: number,
  byteOffset: number,
  excerpt: string,
): SourceRecord {
  const id = recordIdOf(record, fields, sourceKey, line);
  if (id === undefined) {
    return {
      kind: 'reject',
      reason: `id field "${fields.idField}" must be a string or a number`,
      line,
      byteOffset,
      excerpt,
    };
  }
  return {
    kind: 'row',
    id,
    values: record,
    metadata: metadataOf(record, fields.metadataFields),
    line,
    byteOffset,
  };
}

/** A parsed record as the pipeline reads it: a document to embed, or a row to score. */
export function toSourceRecord(
  record: Record<string, unknown>,
  fields: RecordFields,
  sourceKey: string,
  line: number,
  byteOffset: number,
  excerpt: string,
): SourceRecord {
  return fields.shape === 'row'
    ? toRow(record, fields, sourceKey, line, byteOffset, excerpt)
    : toDocument(record, fields, sourceKey, line, byteOffset, excerpt);
}
