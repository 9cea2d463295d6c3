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

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines by the split rule of Hadoop's LineRecordReader: a
 * range owns every line that starts inside it. When the range starts mid-file, the
 * stream must begin one byte early (`start - 1`) so a line starting exactly at
 * `start` is recognised; the partial line before the first newline is skipped. The
 * last owned line is read to its end even past `end`, and reading stops there.
 */
export async function* readLines(
  chunks: AsyncIterable<Uint8Array>,
  options: LineReadOptions,
): AsyncGenerator<RawLine> {
  const { start, end, maxLineBytes } = options;
  let position = options.streamOffset;
  // Skip the tail of the line owned by the previous range.
  let skipping = start > 0 && options.streamOffset < start;
  let parts: Buffer[] = [];
  let kept = 0;
  let lineStart = skipping ? -1 : position;
  let lineLength = 0;

  const finishLine = (): RawLine => {
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, kept);
    let length = lineLength;
    let body = bytes;
    if (body.length > 0 && body[body.length - 1] === CR && length === body.length) {
      body = body.subarray(0, body.length - 1);
      length -= 1;
    }
    const line = {
      offset: lineStart,
      bytes: body,
      truncated: lineLength > maxLineBytes,
      length,
      next: position,
    };
    parts = [];
    kept = 0;
    lineLength = 0;
    return line;
  };

  for await (const chunk of chunks) {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    while (from < buf.length) {
      if (skipping) {
        const nl = buf.indexOf(NEWLINE, from);
        if (nl === -1) {
          position += buf.length - from;
          from = buf.length;
          break;
        }
        position += nl - from + 1;
        from = nl + 1;
        skipping = false;
        lineStart = position;
        continue;
      }
      if (lineStart >= end) return;
      const nl = buf.indexOf(NEWLINE, from);
      const stop = nl === -1 ? buf.length : nl;
      const take = Math.min(stop - from, Math.max(0, maxLineBytes + 1 - kept));
      if (take > 0) {
        parts.push(buf.subarray(from, from + take));
        kept += take;
      }
      lineLength += stop - from;
      position += stop - from;
      if (nl === -1) {
        from = buf.length;
        break;
      }
      position += 1;
      from = nl + 1;
      yield finishLine();
      lineStart = position;
    }
  }
  if (!skipping && lineStart < end && lineLength > 0) yield finishLine();
}
