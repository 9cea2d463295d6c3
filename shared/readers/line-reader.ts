import { NewlineEnds, scanRecords } from './record-scanner.ts';

/** A physical line of a byte stream, without its terminator. */
export interface RawLine {
  /** Byte offset of the line's first byte in the (decompressed) source. */
  readonly offset: number;
  readonly bytes: Buffer;
  /** True when the line was longer than the limit; `bytes` then holds only its start. */
  readonly truncated: boolean;
  /** Full length of the line in bytes, even when truncated. */
  readonly length: number;
  /** Offset just past the line's newline: where the next line starts. */
  readonly next: number;
}

export interface LineReadOptions {
  /** Offset of the first byte the stream yields. */
  readonly streamOffset: number;
  /** The unit's range: lines that START in `[start, end)` are yielded. */
  readonly start: number;
  readonly end: number;
  /** Longer lines are yielded truncated to this many bytes, never buffered whole. */
  readonly maxLineBytes: number;
}

/**
 * Splits a byte stream into lines by the split rule of Hadoop's LineRecordReader: a
 * range owns every line that starts inside it. When the range starts mid-file, the
 * stream must begin one byte early (`start - 1`) so a line starting exactly at
 * `start` is recognised; the partial line before the first newline is skipped. The
 * last owned line is read to its end even past `end`, and reading stops there.
 */
export function readLines(
  chunks: AsyncIterable<Uint8Array>,
  options: LineReadOptions,
): AsyncGenerator<RawLine> {
  return scanRecords(chunks, {
    ends: new NewlineEnds(),
    streamOffset: options.streamOffset,
    start: options.start,
    end: options.end,
    maxRecordBytes: options.maxLineBytes,
    stripFinalCr: true,
    crCountsToLimit: true,
  });
}
