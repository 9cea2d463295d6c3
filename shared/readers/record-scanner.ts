/**
 * Where records end in a byte stream, fed buffer by buffer (state may carry over from one
 * buffer to the next). A newline for JSONL and text ({@link NewlineEnds}); a newline
 * outside quotes for CSV (`CsvRecordBoundaries`).
 */
export interface RecordEnds {
  /**
   * Index of the next byte in `buf`, at or after `from`, that ends a record (a newline);
   * -1 when `buf` ends first.
   */
  nextRecordEnd(buf: Uint8Array, from: number): number;
  /** True when the bytes seen so far end inside a record only a later byte can end (an open quote). */
  readonly insideQuotes: boolean;
  /** Whether a record may hold newlines of its own (CSV's quoted fields): lines are then counted inside records. */
  readonly multiline: boolean;
}

const LF = 0x0a;
const CR = 0x0d;

/** Every newline ends a record: JSONL and text. */
export class NewlineEnds implements RecordEnds {
  readonly insideQuotes = false;
  readonly multiline = false;

  nextRecordEnd(buf: Uint8Array, from: number): number {
    return buf.indexOf(LF, from);
  }
}

/** One record as bytes, before decoding, with where it starts. */
export interface ScannedRecord {
  /** Byte offset of the record's first byte in the (decompressed) source. */
  readonly offset: number;
  /** Physical line the record starts on, counted from `firstLine`. */
  readonly line: number;
  /** The record without its newline (and CR); only its start when `truncated`. */
  readonly bytes: Buffer;
  /** True when the record was longer than the limit; `bytes` then holds only its start. */
  readonly truncated: boolean;
  /** Full length in bytes, even when truncated. */
  readonly length: number;
  /** The source ended inside a quoted field of this record. */
  readonly unterminated: boolean;
  /** Offset just past the record's newline: where the next record starts. */
  readonly next: number;
}

export interface ScanOptions {
  readonly ends: RecordEnds;
  /** Offset of the first byte the stream yields. */
  readonly streamOffset: number;
  /**
   * Records that START in `[start, end)` are yielded; the last one is read to its end even
   * past `end`. A stream that begins before `start` (one byte early, so a record starting
   * exactly at `start` is recognised) skips the partial record before its first newline:
   * only newline-ended records can be read from an arbitrary point.
   */
  readonly start: number;
  readonly end: number;
  /** Longer records are yielded truncated to this many bytes, never buffered whole. */
  readonly maxRecordBytes: number;
  /** Line number of the line starting at `streamOffset`. @default 1 */
  readonly firstLine?: number;
  /** Whether a CR before the end of the source ends a last record with no newline too (text lines). */
  readonly stripFinalCr: boolean;
  /**
   * Whether a CR before the newline counts toward `maxRecordBytes` (text lines: a line one
   * byte over the limit with its CR is truncated) or not (CSV).
   */
  readonly crCountsToLimit: boolean;
}

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
 * Splits a byte stream into records by the split rule of Hadoop's LineRecordReader: a
 * range owns every record that starts inside it. Streaming: a record over the limit is
 * measured, not buffered. The one scanner behind JSONL, text and CSV reading.
 */
export async function* scanRecords(
  chunks: AsyncIterable<Uint8Array>,
  options: ScanOptions,
): AsyncGenerator<ScannedRecord> {
  const { ends } = options;
  const scan = new RecordScan(options);
  for await (const chunk of chunks) {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    while (from < buf.length) {
      if (scan.skipping) {
        from = scan.skipPartial(buf, from);
        continue;
      }
      if (scan.pastRange) return;
      const lf = ends.nextRecordEnd(buf, from);
      scan.append(buf, from, lf === -1 ? buf.length : lf);
      if (lf === -1) break;
      from = lf + 1;
      yield scan.endRecord(true);
    }
  }
  if (scan.hasLastRecord) yield scan.endRecord(false);
}

/**
 * Where {@link scanRecords} stands: the stream position and line, and the record being
 * read (its first bytes, up to the limit, and its full length so far).
 */
export class RecordScan {
  private position: number;
  private line: number;
  /** True while reading the tail of the record owned by the previous range. */
  skipping: boolean;
  private recordStart: number;
  private recordLine: number;
  private parts: Buffer[] = [];
  private kept = 0;
  private length = 0;

  constructor(private readonly options: ScanOptions) {
    this.position = options.streamOffset;
    this.skipping = options.start > 0 && options.streamOffset < options.start;
    this.line = options.firstLine ?? 1;
    this.recordStart = this.skipping ? -1 : this.position;
    this.recordLine = this.line;
  }

  /** The record about to be read starts at or past the range's end: it belongs to the next range. */
  get pastRange(): boolean {
    return this.recordStart >= this.options.end;
  }

  /** The stream ended inside a record this range owns (no newline after it, or an open quote). */
  get hasLastRecord(): boolean {
    return !this.skipping && !this.pastRange && (this.length > 0 || this.options.ends.insideQuotes);
  }

  /** Skips to just past the next newline; returns where reading goes on (`buf.length` when none is in `buf`). */
  skipPartial(buf: Buffer, from: number): number {
    const lf = buf.indexOf(LF, from);
    if (lf === -1) {
      this.position += buf.length - from;
      return buf.length;
    }
    this.position += lf - from + 1;
    this.line += 1;
    this.skipping = false;
    this.recordStart = this.position;
    this.recordLine = this.line;
    return lf + 1;
  }

  /** Adds `buf[from, stop)` to the record being read: kept up to one byte past the limit, always measured. */
  append(buf: Buffer, from: number, stop: number): void {
    const take = Math.min(stop - from, Math.max(0, this.options.maxRecordBytes + 1 - this.kept));
    if (take > 0) {
      this.parts.push(buf.subarray(from, from + take));
      this.kept += take;
    }
    this.length += stop - from;
    if (this.options.ends.multiline) this.line += countNewlines(buf, from, stop);
    this.position += stop - from;
  }

  /** The record being read ends: at a newline (`terminated`, which is consumed) or at the end of the stream. */
  endRecord(terminated: boolean): ScannedRecord {
    if (terminated) {
      this.position += 1;
      this.line += 1;
    }
    const record = this.record(terminated);
    this.parts = [];
    this.kept = 0;
    this.length = 0;
    this.recordStart = this.position;
    this.recordLine = this.line;
    return record;
  }

  private record(terminated: boolean): ScannedRecord {
    const { options } = this;
    let bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.kept);
    let size = this.length;
    const limited = options.crCountsToLimit ? this.length : undefined;
    // A CR before the newline is not part of the record (nor, for text, a CR ending the source).
    if (
      (terminated || options.stripFinalCr) &&
      size === bytes.length &&
      bytes.length > 0 &&
      bytes.at(-1) === CR
    ) {
      bytes = bytes.subarray(0, bytes.length - 1);
      size -= 1;
    }
    return {
      offset: this.recordStart,
      line: this.recordLine,
      bytes,
      truncated: (limited ?? size) > options.maxRecordBytes,
      length: size,
      unterminated: !terminated && options.ends.insideQuotes,
      next: this.position,
    };
  }
}
