import { InputError } from '../../errors/errors.ts';
import type { InteractionIndex } from './interaction-index.ts';

const MAGIC = 0x49464c53; // "SLFI" little-endian
const VERSION = 1;

/**
 * The index as one little-endian binary buffer (the per-stage index file in S3):
 * a 32-byte header (magic, version, feedback, users, items, interactions), then the
 * int32 arrays, the float64 arrays (8-byte aligned), then the id tables as int32 byte
 * lengths and UTF-8 bytes. About 24 bytes per interaction; no parsing on load beyond
 * the ids (the arrays are views over one copy of the bytes).
 */
export function encodeInteractionIndex(index: InteractionIndex): Buffer {
  const encoder = new TextEncoder();
  const userBytes = index.userIds.map((id) => encoder.encode(id));
  const itemBytes = index.itemIds.map((id) => encoder.encode(id));
  const nUsers = index.userIds.length;
  const nItems = index.itemIds.length;
  const nnz = index.userItems.length;
  const ints = [index.userPtr, index.userItems, index.itemPtr, index.itemUsers];
  const floats = [index.userValues, index.itemValues, index.means, index.rawNorms, index.centredNorms];
  const intBytes = ints.reduce((sum, a) => sum + a.byteLength, 0);
  const floatStart = align8(32 + intBytes);
  const floatBytes = floats.reduce((sum, a) => sum + a.byteLength, 0);
  const idStart = floatStart + floatBytes;
  const idBytes = [...userBytes, ...itemBytes].reduce((sum, b) => sum + 4 + b.byteLength, 0);
  const buffer = Buffer.alloc(idStart + idBytes);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, index.feedback === 'explicit' ? 1 : 0, true);
  view.setUint32(12, nUsers, true);
  view.setUint32(16, nItems, true);
  view.setUint32(20, nnz, true);
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
  for (const bytes of [...userBytes, ...itemBytes]) {
    view.setInt32(at, bytes.byteLength, true);
    buffer.set(bytes, at + 4);
    at += 4 + bytes.byteLength;
  }
  return buffer;
}

/** Reads a buffer written by `encodeInteractionIndex`; a truncated or foreign file fails with one line. */
export function decodeInteractionIndex(bytes: Uint8Array, source = 'index'): InteractionIndex {
  const fail = (why: string) => new InputError(`${source}: not a readable recommend index (${why})`);
  if (bytes.byteLength < 32) throw fail('shorter than its header');
  // One aligned copy, so the typed arrays below can be views.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const view = new DataView(copy.buffer);
  if (view.getUint32(0, true) !== MAGIC) throw fail('wrong magic number');
  if (view.getUint32(4, true) !== VERSION)
    throw fail(`version ${view.getUint32(4, true)}, expected ${VERSION}`);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw fail('big-endian host');
  const feedback = view.getUint32(8, true) === 1 ? 'explicit' : 'implicit';
  const nUsers = view.getUint32(12, true);
  const nItems = view.getUint32(16, true);
  const nnz = view.getUint32(20, true);
  const intLengths = [nUsers + 1, nnz, nItems + 1, nnz];
  const floatLengths = [nnz, nnz, nUsers, nUsers, nUsers];
  const floatStart = align8(32 + 4 * intLengths.reduce((a, b) => a + b, 0));
  const idStart = floatStart + 8 * floatLengths.reduce((a, b) => a + b, 0);
  if (idStart > copy.byteLength) throw fail('truncated arrays');
  let at = 32;
  const ints = intLengths.map((length) => {
    const a = new Int32Array(copy.buffer, at, length);
    at += 4 * length;
    return a;
  });
  at = floatStart;
  const floats = floatLengths.map((length) => {
    const a = new Float64Array(copy.buffer, at, length);
    at += 8 * length;
    return a;
  });
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const ids = (count: number) => {
    const out: string[] = new Array(count);
    for (let k = 0; k < count; k++) {
      if (at + 4 > copy.byteLength) throw fail('truncated ids');
      const length = view.getInt32(at, true);
      if (length < 0 || at + 4 + length > copy.byteLength) throw fail('truncated ids');
      out[k] = decoder.decode(copy.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    return out;
  };
  const userIds = ids(nUsers);
  const itemIds = ids(nItems);
  if (at !== copy.byteLength) throw fail('trailing bytes');
  return {
    feedback,
    userIds,
    itemIds,
    userPtr: ints[0]!,
    userItems: ints[1]!,
    itemPtr: ints[2]!,
    itemUsers: ints[3]!,
    userValues: floats[0]!,
    itemValues: floats[1]!,
    means: floats[2]!,
    rawNorms: floats[3]!,
    centredNorms: floats[4]!,
  };
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
