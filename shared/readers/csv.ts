/**
 * RFC 4180 field splitting for one logical CSV record (which may span physical lines
 * when a quoted field holds newlines). Returns undefined while a quote is still open.
 * A quote opens a quoted field only at the start of a field; elsewhere it is text.
 */
export function parseCsvRecord(text: string): string[] | undefined {
  const fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
      } else {
        field += ch;
      }
    } else if (ch === '"' && field.length === 0) {
      inQuotes = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
    } else {
      field += ch;
    }
    i += 1;
  }
  if (inQuotes) return undefined;
  fields.push(field);
  return fields;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;

/** Scanner states: at a field's first byte, inside an unquoted field, inside quotes, just after a quote inside quotes. */
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_IN_QUOTED = 3;

/**
 * Finds where CSV records end, on raw bytes, by exactly the quoting rules of
 * {@link parseCsvRecord}: a newline ends a record unless it is inside a quoted field.
 * Quotes, commas and newlines are ASCII, so no UTF-8 decoding is needed and invalid
 * bytes cannot move a boundary. The planner and the reader both use this scanner from
 * the start of a file, which is what makes a planned cut a proven record start.
 */
export class CsvRecordBoundaries {
  private state = FIELD_START;
  /** Bytes of a leading UTF-8 BOM matched so far; 3 once past it (or when not at the file start). */
  private bom: number;

  constructor(atFileStart: boolean) {
    this.bom = atFileStart ? 0 : UTF8_BOM.length;
  }

  /** True when the bytes seen so far end inside a quoted field. */
  get insideQuotes(): boolean {
    return this.state === QUOTED;
  }

  /**
   * Index of the next newline in `buf`, at or after `from`, that ends a record; -1 when
   * `buf` ends first (the state carries over to the next buffer).
   */
  nextRecordEnd(buf: Uint8Array, from: number): number {
    const n = buf.length;
    let i = from;
    while (this.bom < UTF8_BOM.length && i < n) {
      if (buf[i] === UTF8_BOM[this.bom]) {
        this.bom += 1;
        i += 1;
      } else {
        // Not a BOM after all: the bytes taken so far were field text.
        if (this.bom > 0) this.state = UNQUOTED;
        this.bom = UTF8_BOM.length;
      }
    }
    while (i < n) {
      switch (this.state) {
        case QUOTED: {
          const q = buf.indexOf(QUOTE, i);
          if (q === -1) return -1;
          this.state = QUOTE_IN_QUOTED;
          i = q + 1;
          break;
        }
        case QUOTE_IN_QUOTED:
          if (buf[i] === QUOTE) {
            this.state = QUOTED; // an escaped quote
            i += 1;
          } else {
            this.state = UNQUOTED; // the quoted part ended; the byte is read again as unquoted
          }
          break;
        case FIELD_START: {
          const c = buf[i];
          if (c === LF) return i;
          if (c === QUOTE) this.state = QUOTED;
          else if (c !== COMMA) this.state = UNQUOTED;
          i += 1;
          break;
        }
        default: {
          // UNQUOTED: a quote reopens quoting only right after a comma; the byte before
          // `i` is never a comma in this state, so only quotes past `i` can qualify.
          const lf = buf.indexOf(LF, i);
          const stop = lf === -1 ? n : lf;
          let q = buf.indexOf(QUOTE, i + 1);
          while (q !== -1 && q < stop && buf[q - 1] !== COMMA) q = buf.indexOf(QUOTE, q + 1);
          if (q !== -1 && q < stop) {
            this.state = QUOTED;
            i = q + 1;
            break;
          }
          if (lf !== -1) {
            this.state = FIELD_START;
            return lf;
          }
          this.state = buf[n - 1] === COMMA ? FIELD_START : UNQUOTED;
          return -1;
        }
      }
    }
    return -1;
  }
}

/** One CSV record as bytes, before decoding, with where it starts. */
export interface RawCsvRecord {
  /** Byte offset of the record's first byte in the (decompressed) source. */
  readonly offset: number;
  /** 1-based physical line the record starts on. */
  readonly line: number;
  /** The record without its final newline (and CR); only its start when `truncated`. */
  readonly bytes: Buffer;
  readonly truncated: boolean;
  /** Full length in bytes, even when truncated. */
  readonly length: number;
  /** The source ended inside a quoted field of this record. */
  readonly unterminated: boolean;
  /** Offset just past the record's newline: where the next record starts. */
  readonly next: number;
}

export interface CsvReadOptions {
  /** Offset of the first byte the stream yields: a record start (the planner proves it). */
  readonly start: number;
  /** Records that START before `end` are yielded; the last one is read to its end. */
  readonly end: number;
  /** 1-based line number of the line starting at `start`. */
  readonly firstLine: number;
  /** Longer records are yielded truncated to this many bytes, never buffered whole. */
  readonly maxRecordBytes: number;
  /** The stream starts at the start of the file (a leading BOM is skipped). @default start === 0 */
  readonly atFileStart?: boolean;
}

const CR = 0x0d;

function countNewlines(buf: Uint8Array, from: number, to: number): number {
  let count = 0;
  let at = buf.indexOf(LF, from);
  while (at !== -1 && at < to) {
    count += 1;
    at = buf.indexOf(LF, at + 1);
  }
  return count;
}

/**
 * Splits a CSV byte stream into records (quoted fields may hold newlines), streaming:
 * a record over the limit is measured, not buffered. The stream must start at a record
 * start, which is why CSV units are only cut where the planner's scan found one.
 */
export async function* readCsvRecords(
  chunks: AsyncIterable<Uint8Array>,
  options: CsvReadOptions,
): AsyncGenerator<RawCsvRecord> {
  const { end, maxRecordBytes } = options;
  const scanner = new CsvRecordBoundaries(options.atFileStart ?? options.start === 0);
  let position = options.start;
  let line = options.firstLine;
  let recordStart = position;
  let recordLine = line;
  let parts: Buffer[] = [];
  let kept = 0;
  let length = 0;

  const finish = (terminated: boolean): RawCsvRecord => {
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, kept);
    let size = length;
    if (terminated && size === bytes.length && bytes.length > 0 && bytes[bytes.length - 1] === CR) {
      bytes = bytes.subarray(0, bytes.length - 1);
      size -= 1;
    }
    const record: RawCsvRecord = {
      offset: recordStart,
      line: recordLine,
      bytes,
      truncated: size > maxRecordBytes,
      length: size,
      unterminated: !terminated && scanner.insideQuotes,
      next: position,
    };
    parts = [];
    kept = 0;
    length = 0;
    recordStart = position;
    recordLine = line;
    return record;
  };

  for await (const chunk of chunks) {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    while (from < buf.length) {
      if (recordStart >= end) return;
      const lf = scanner.nextRecordEnd(buf, from);
      const stop = lf === -1 ? buf.length : lf;
      const take = Math.min(stop - from, Math.max(0, maxRecordBytes + 1 - kept));
      if (take > 0) {
        parts.push(buf.subarray(from, from + take));
        kept += take;
      }
      length += stop - from;
      line += countNewlines(buf, from, stop);
      position += stop - from;
      if (lf === -1) break;
      position += 1;
      line += 1;
      from = lf + 1;
      yield finish(true);
    }
  }
  if (recordStart < end && (length > 0 || scanner.insideQuotes)) yield finish(false);
}
