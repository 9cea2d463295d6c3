/**
 * The part of a gzip source being re-staged: the decompressed bytes copied so far, where
 * the part starts in the source, and where its last complete record ends.
 */
export class OpenPart {
  private chunks: Buffer[] = [];
  /** Bytes copied into the part. */
  bytes = 0;
  /** Offset of the part's first byte in the source's decompressed stream. */
  start = 0;
  /** Line of the part's first record in the source. */
  firstLine = 1;
  /** Bytes of the part up to its last complete record. */
  recordEnd = 0;

  append(piece: Buffer): void {
    this.chunks.push(piece);
    this.bytes += piece.length;
  }

  /** Bytes of the record being read (copied since the last record end). */
  get openRecordBytes(): number {
    return this.bytes - this.recordEnd;
  }

  /** A record ended at the part's current end. */
  endRecord(): void {
    this.recordEnd = this.bytes;
  }

  /** Keeps the first `bytes` of the part: the records before an oversized one. */
  truncate(bytes: number): void {
    const kept: Buffer[] = [];
    let total = 0;
    for (const chunk of this.chunks) {
      if (total >= bytes) break;
      const take = Math.min(chunk.length, bytes - total);
      kept.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      total += take;
    }
    this.chunks = kept;
    this.bytes = total;
  }

  /** Up to `count` bytes from `offset`, copied (a record's excerpt). */
  bytesAt(offset: number, count: number): Buffer {
    return bytesOf(this.chunks, offset, count);
  }

  /** The first `bytes` of the part as one buffer, to be written. */
  body(bytes: number): Buffer {
    const body = Buffer.concat(this.chunks, this.bytes);
    return bytes < body.length ? body.subarray(0, bytes) : body;
  }

  /** The first `written` bytes went into a part: the next one starts after them, at `nextLine`. */
  advance(written: number, nextLine: number): void {
    this.start += written;
    this.firstLine = nextLine;
    this.chunks = [];
    this.bytes = 0;
    this.recordEnd = 0;
  }
}

/** Up to `count` bytes of `chunks` from `offset`, copied. */
export function bytesOf(chunks: readonly Buffer[], offset: number, count: number): Buffer {
  const out: Buffer[] = [];
  let skip = offset;
  let left = count;
  for (const chunk of chunks) {
    if (left <= 0) break;
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    const piece = chunk.subarray(skip, skip + left);
    out.push(piece);
    left -= piece.length;
    skip = 0;
  }
  return Buffer.concat(out);
}
