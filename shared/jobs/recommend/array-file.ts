import { InputError } from '../../errors/errors.ts';
import type { ObjectStore, ObjectWrite } from '../../ports/object-store.ts';

/**
 * The recommend stages' binary files (the ingest units' interaction logs, the run's index,
 * the holdout): one little-endian buffer of a 32-byte header (magic, version, four uint32
 * header values), int32 arrays, float64 arrays (8-byte aligned), then ids as int32 byte
 * lengths and UTF-8 bytes. Decoding returns views over the bytes when they are a whole
 * buffer of their own (the caller hands them over and changes them no more), else over
 * one aligned copy. {@link writeArrays} writes the same bytes piece by piece.
 */
export const ARRAY_FILE_VERSION = 1;

export function encodeArrays(
  magic: number,
  header: readonly number[],
  ints: readonly Int32Array[],
  floats: readonly Float64Array[],
  ids: readonly string[],
): Buffer {
  const encoder = new TextEncoder();
  const idBytes = ids.map((id) => encoder.encode(id));
  const intBytes = ints.reduce((sum, a) => sum + a.byteLength, 0);
  const floatStart = align8(32 + intBytes);
  const idStart = floatStart + floats.reduce((sum, a) => sum + a.byteLength, 0);
  const buffer = Buffer.alloc(idStart + idBytes.reduce((sum, b) => sum + 4 + b.byteLength, 0));
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  view.setUint32(0, magic, true);
  view.setUint32(4, ARRAY_FILE_VERSION, true);
  for (const [k, value] of header.entries()) view.setUint32(8 + 4 * k, value, true);
  let at = 32;
  for (const a of ints) {
    for (let k = 0; k < a.length; k++) view.setInt32(at + 4 * k, a[k]!, true);
    at += a.byteLength;
  }
  at = floatStart;
  for (const a of floats) {
    for (let k = 0; k < a.length; k++) view.setFloat64(at + 8 * k, a[k]!, true);
    at += a.byteLength;
  }
  for (const bytes of idBytes) {
    view.setInt32(at, bytes.byteLength, true);
    buffer.set(bytes, at + 4);
    at += 4 + bytes.byteLength;
  }
  return buffer;
}

/** Bytes handed to an {@link ObjectWrite} at a time by {@link writeArrays}. */
const WRITE_PIECE_BYTES = 4 * 1024 * 1024;

/**
 * The same bytes as {@link encodeArrays}, written piece by piece (at most a few MiB held
 * besides the arrays), so a large index is never encoded whole in memory. The arrays
 * must not change until the write is finished (the store may keep the views it was given).
 */
export async function writeArrays(
  out: ObjectWrite,
  magic: number,
  header: readonly number[],
  ints: readonly Int32Array[],
  floats: readonly Float64Array[],
  ids: readonly string[],
): Promise<void> {
  assertLittleEndian();
  const head = Buffer.alloc(32);
  head.writeUInt32LE(magic, 0);
  head.writeUInt32LE(ARRAY_FILE_VERSION, 4);
  for (const [k, value] of header.entries()) head.writeUInt32LE(value, 8 + 4 * k);
  await out.write(head);
  let at = 32;
  const writeArray = async (a: Int32Array | Float64Array) => {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let start = 0; start < bytes.byteLength; start += WRITE_PIECE_BYTES)
      await out.write(bytes.slice(start, Math.min(bytes.byteLength, start + WRITE_PIECE_BYTES)));
    at += a.byteLength;
  };
  for (const a of ints) await writeArray(a);
  const floatStart = align8(at);
  if (floatStart > at) await out.write(new Uint8Array(floatStart - at));
  at = floatStart;
  for (const a of floats) await writeArray(a);
  const encoder = new TextEncoder();
  let pieces: Uint8Array[] = [];
  let pending = 0;
  for (const id of ids) {
    const bytes = encoder.encode(id);
    const length = Buffer.alloc(4);
    length.writeInt32LE(bytes.byteLength, 0);
    pieces.push(length, bytes);
    pending += 4 + bytes.byteLength;
    if (pending >= WRITE_PIECE_BYTES) {
      await out.write(Buffer.concat(pieces));
      pieces = [];
      pending = 0;
    }
  }
  if (pending > 0) await out.write(Buffer.concat(pieces));
}

/** Where each section of a file with this layout starts (byte offsets). */
export function sectionsOf(layout: Layout): { ints: number[]; floats: number[]; idStart: number } {
  let at = 32;
  const ints = layout.ints.map((length) => {
    const start = at;
    at += 4 * length;
    return start;
  });
  at = align8(at);
  const floats = layout.floats.map((length) => {
    const start = at;
    at += 8 * length;
    return start;
  });
  return { ints, floats, idStart: at };
}

/** Bytes `[start, end)` of an object (to its end when `end` is omitted), in one buffer of their own. */
export async function readBytes(
  store: ObjectStore,
  key: string,
  start: number,
  end?: number,
): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of store.readRange(key, start, end)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Little-endian int32 values from bytes at any alignment. */
export function int32sOf(bytes: Uint8Array): Int32Array {
  const out = new Int32Array(bytes.byteLength >> 2);
  new Uint8Array(out.buffer).set(bytes.subarray(0, out.byteLength));
  return out;
}

/** Little-endian float64 values from bytes at any alignment. */
export function float64sOf(bytes: Uint8Array): Float64Array {
  const out = new Float64Array(bytes.byteLength >> 3);
  new Uint8Array(out.buffer).set(bytes.subarray(0, out.byteLength));
  return out;
}

/**
 * The header and id tables of a file in the store, read without its arrays (two range
 * reads): what a streaming reader needs before it reads the arrays window by window.
 */
export async function readHeaderAndIds(
  store: ObjectStore,
  key: string,
  magic: number,
  layoutOf: (header: readonly number[]) => Layout,
  what = 'file',
): Promise<{ header: number[]; layout: Layout; sections: ReturnType<typeof sectionsOf>; ids: string[] }> {
  const fail = (why: string) => new InputError(`${key}: not a readable recommend ${what} (${why})`);
  assertLittleEndian(fail);
  const head = await readBytes(store, key, 0, 32);
  if (head.byteLength < 32) throw fail('shorter than its header');
  if (head.readUInt32LE(0) !== magic) throw fail('wrong magic number');
  if (head.readUInt32LE(4) !== ARRAY_FILE_VERSION)
    throw fail(`version ${head.readUInt32LE(4)}, expected ${ARRAY_FILE_VERSION}`);
  const header = [0, 1, 2, 3].map((k) => head.readUInt32LE(8 + 4 * k));
  const layout = layoutOf(header);
  const sections = sectionsOf(layout);
  const info = await store.head(key);
  if (!info || info.size < sections.idStart) throw fail('truncated arrays');
  // Bounded by the size: an open-ended read at the end of the object is past it (a unit
  // whose rows were all rejects writes a log with no ids, ending where its ids would start).
  const idBytes = await readBytes(store, key, sections.idStart, info.size);
  const ids: string[] = new Array(layout.ids);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let at = 0;
  for (let k = 0; k < layout.ids; k++) {
    if (at + 4 > idBytes.byteLength) throw fail('truncated ids');
    const length = idBytes.readInt32LE(at);
    if (length < 0 || at + 4 + length > idBytes.byteLength) throw fail('truncated ids');
    ids[k] = decoder.decode(idBytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (at !== idBytes.byteLength) throw fail('trailing bytes');
  return { header, layout, sections, ids };
}

function assertLittleEndian(fail = (why: string) => new InputError(`recommend files: ${why}`)): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw fail('big-endian host');
}

export interface Layout {
  readonly ints: readonly number[];
  readonly floats: readonly number[];
  readonly ids: number;
}

export function decodeArrays(
  bytes: Uint8Array,
  magic: number,
  source: string,
  layoutOf: (header: readonly number[]) => Layout,
  what = 'file',
): { header: number[]; ints: Int32Array[]; floats: Float64Array[]; ids: string[] } {
  const fail = (why: string) => new InputError(`${source}: not a readable recommend ${what} (${why})`);
  if (bytes.byteLength < 32) throw fail('shorter than its header');
  // The typed arrays below are views: over the bytes themselves when they are a whole
  // buffer of their own (a file read whole), else over one aligned copy.
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const copy = own ? bytes : new Uint8Array(bytes.byteLength);
  if (!own) copy.set(bytes);
  const view = new DataView(copy.buffer);
  if (view.getUint32(0, true) !== magic) throw fail('wrong magic number');
  if (view.getUint32(4, true) !== ARRAY_FILE_VERSION)
    throw fail(`version ${view.getUint32(4, true)}, expected ${ARRAY_FILE_VERSION}`);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw fail('big-endian host');
  const header = [0, 1, 2, 3].map((k) => view.getUint32(8 + 4 * k, true));
  const layout = layoutOf(header);
  const floatStart = align8(32 + 4 * layout.ints.reduce((a, b) => a + b, 0));
  const idStart = floatStart + 8 * layout.floats.reduce((a, b) => a + b, 0);
  if (idStart > copy.byteLength) throw fail('truncated arrays');
  let at = 32;
  const ints = layout.ints.map((length) => {
    const a = new Int32Array(copy.buffer, at, length);
    at += 4 * length;
    return a;
  });
  at = floatStart;
  const floats = layout.floats.map((length) => {
    const a = new Float64Array(copy.buffer, at, length);
    at += 8 * length;
    return a;
  });
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const ids: string[] = new Array(layout.ids);
  for (let k = 0; k < layout.ids; k++) {
    if (at + 4 > copy.byteLength) throw fail('truncated ids');
    const length = view.getInt32(at, true);
    if (length < 0 || at + 4 + length > copy.byteLength) throw fail('truncated ids');
    ids[k] = decoder.decode(copy.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (at !== copy.byteLength) throw fail('trailing bytes');
  return { header, ints, floats, ids };
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
