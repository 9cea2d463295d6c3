import { InputError } from '../../errors/errors.ts';

/**
 * The recommend stages' binary files (the ingest units' interaction logs, the run's index,
 * the holdout): one little-endian buffer of a 32-byte header (magic, version, four uint32
 * header values), int32 arrays, float64 arrays (8-byte aligned), then ids as int32 byte
 * lengths and UTF-8 bytes. Decoding makes one aligned copy and returns views over it.
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
  // One aligned copy, so the typed arrays below can be views.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
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
