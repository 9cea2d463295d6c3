import { open, stat } from 'node:fs/promises';

/** A line of the data log: the same JSON lines every version of the local index wrote, so old logs load. */
export type ChunkRecord = { c: string; h: string; v: string; r: string };
export type DocRecord = { d: string; n: number; s?: string };

export const NEWLINE = 10;
export const NEWLINE_BYTES = Buffer.of(NEWLINE);
const SCAN_BLOCK_BYTES = 1024 * 1024;
/** Records closer than this in the log are read with one positional read. */
const READ_GAP_BYTES = 4096;
const READ_GROUP_MAX_BYTES = 1024 * 1024;

export function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

export function decodeVector(text: string): Float32Array | undefined {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0) return undefined;
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

export function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

export async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

const BACKSLASH = 92;

/**
 * The key of a data-log record, or undefined when the line is not one. Records start
 * with their key (`{"c":"<id>",` or `{"d":"<id>",`), so only that string is parsed when
 * the line has that shape; a lookup parses the whole record, and checks it, anyway.
 */
export function keyOfRecord(text: string): string | undefined {
  const kind = text.startsWith('{"c":"') ? 'c' : text.startsWith('{"d":"') ? 'd' : undefined;
  if (kind && text.endsWith('}')) {
    for (let end = text.indexOf('"', 6); end !== -1; end = text.indexOf('"', end + 1)) {
      let escapes = 0;
      while (text.charCodeAt(end - 1 - escapes) === BACKSLASH) escapes += 1;
      if (escapes % 2 === 1) continue;
      try {
        return `${kind}:${JSON.parse(text.slice(5, end + 1)) as string}`;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }
  try {
    const record = JSON.parse(text) as Partial<ChunkRecord & DocRecord>;
    if (typeof record.c === 'string') return `c:${record.c}`;
    if (typeof record.d === 'string') return `d:${record.d}`;
  } catch {
    // A torn record.
  }
  return undefined;
}

/**
 * Calls `onLine` with each whole line of `file` from byte `from`, and its offset and byte
 * length (no newline), reading blocks so memory stays flat. Returns where the last whole
 * line ends: bytes past it are a torn tail.
 */
export async function scanLines(
  file: string,
  from: number,
  onLine: (text: string, offset: number, length: number) => void | Promise<void>,
): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const block = Buffer.allocUnsafe(SCAN_BLOCK_BYTES);
    let position = from;
    let carry: Buffer | undefined;
    let end = from;
    for (;;) {
      const { bytesRead } = await handle.read(block, 0, block.length, position);
      if (bytesRead === 0) return end;
      const start = carry ? position - carry.length : position;
      const bytes = carry
        ? Buffer.concat([carry, block.subarray(0, bytesRead)])
        : block.subarray(0, bytesRead);
      position += bytesRead;
      let lineStart = 0;
      for (let nl = bytes.indexOf(NEWLINE); nl !== -1; nl = bytes.indexOf(NEWLINE, lineStart)) {
        const pending = onLine(bytes.toString('utf8', lineStart, nl), start + lineStart, nl - lineStart);
        if (pending) await pending;
        lineStart = nl + 1;
      }
      end = start + lineStart;
      carry = lineStart < bytes.length ? Buffer.from(bytes.subarray(lineStart)) : undefined;
    }
  } finally {
    await handle.close();
  }
}

/** Where a key's record is in the data log. */
export interface Span {
  readonly key: string;
  readonly offset: number;
  readonly length: number;
}

/** Spans in log order, grouped so that records a few KiB apart are read with one read. */
export function groupNearby(spans: readonly Span[]): Span[][] {
  const groups: Span[][] = [];
  let group: Span[] | undefined;
  for (const span of spans) {
    const first = group?.[0];
    const last = group?.at(-1);
    if (
      group &&
      first &&
      last &&
      span.offset - (last.offset + last.length) <= READ_GAP_BYTES &&
      span.offset + span.length - first.offset <= READ_GROUP_MAX_BYTES
    )
      group.push(span);
    else {
      group = [span];
      groups.push(group);
    }
  }
  return groups;
}
