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
  const { ends, start, end, maxRecordBytes } = options;
  let position = options.streamOffset;
  // Skip the tail of the record owned by the previous range.
  let skipping = start > 0 && options.streamOffset < start;
  let line = options.firstLine ?? 1;
  let recordStart = skipping ? -1 : position;
  let recordLine = line;
  let parts: Buffer[] = [];
  let kept = 0;
  let length = 0;

  const finish = (terminated: boolean): ScannedRecord => {
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, kept);
    let size = length;
    const limited = options.crCountsToLimit ? length : undefined;
    if (
      (terminated || options.stripFinalCr) &&
      size === bytes.length &&
      bytes.length > 0 &&
      bytes[bytes.length - 1] === CR
    ) {
      bytes = bytes.subarray(0, bytes.length - 1);
      size -= 1;
    }
    const record: ScannedRecord = {
      offset: recordStart,
      line: recordLine,
      bytes,
      truncated: (limited ?? size) > maxRecordBytes,
      length: size,
      unterminated: !terminated && ends.insideQuotes,
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
      if (skipping) {
        const lf = buf.indexOf(LF, from);
        if (lf === -1) {
          position += buf.length - from;
          break;
        }
        position += lf - from + 1;
        from = lf + 1;
        line += 1;
        skipping = false;
        recordStart = position;
        recordLine = line;
        continue;
      }
      if (recordStart >= end) return;
      const lf = ends.nextRecordEnd(buf, from);
      const stop = lf === -1 ? buf.length : lf;
      const take = Math.min(stop - from, Math.max(0, maxRecordBytes + 1 - kept));
      if (take > 0) {
        parts.push(buf.subarray(from, from + take));
        kept += take;
      }
      length += stop - from;
      if (ends.multiline) line += countNewlines(buf, from, stop);
      position += stop - from;
      if (lf === -1) break;
      position += 1;
      line += 1;
      from = lf + 1;
      yield finish(true);
    }
  }
  if (!skipping && recordStart < end && (length > 0 || ends.insideQuotes)) yield finish(false);
}
