import { type RecordEnds, type ScannedRecord, scanRecords } from './record-scanner.ts';

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
export class CsvRecordBoundaries implements RecordEnds {
  readonly multiline = true;
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

/** One CSV record as bytes, before decoding, with where it starts (and the line it starts on, 1-based). */
export type RawCsvRecord = ScannedRecord;

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

/**
 * Splits a CSV byte stream into records (quoted fields may hold newlines), streaming:
 * a record over the limit is measured, not buffered. The stream must start at a record
 * start, which is why CSV units are only cut where the planner's scan found one.
 */
export function readCsvRecords(
  chunks: AsyncIterable<Uint8Array>,
  options: CsvReadOptions,
): AsyncGenerator<RawCsvRecord> {
  return scanRecords(chunks, {
    ends: new CsvRecordBoundaries(options.atFileStart ?? options.start === 0),
    streamOffset: options.start,
    start: options.start,
    end: options.end,
    firstLine: options.firstLine,
    maxRecordBytes: options.maxRecordBytes,
    stripFinalCr: false,
    crCountsToLimit: false,
  });
}
