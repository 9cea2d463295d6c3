import { InputError } from '../../errors/errors.ts';
import type { HoldOut } from './evaluation.ts';
import type { InteractionLog } from './interaction-log.ts';

const LOG_MAGIC = 0x474c4c53; // "SLLG" little-endian
const HOLDOUT_MAGIC = 0x4f484c53; // "SLHO" little-endian
const VERSION = 1;

/**
 * An ingest unit's deduplicated interactions as one little-endian buffer: a 32-byte header
 * (magic, version, feedback, users, items, interactions), the int32 arrays (userPtr,
 * items), the float64 arrays (values, timestamps with NaN for none; 8-byte aligned), then
 * the id tables (int32 byte length + UTF-8). About 20 bytes per interaction plus the ids.
 */
export function encodeInteractionLog(log: InteractionLog): Buffer {
  return encodeArrays(
    LOG_MAGIC,
    [log.feedback === 'explicit' ? 1 : 0, log.userIds.length, log.itemIds.length, log.items.length],
    [log.userPtr, log.items],
    [log.values, log.timestamps],
    [...log.userIds, ...log.itemIds],
  );
}

/** Reads a buffer written by {@link encodeInteractionLog}; a truncated or foreign file fails with one line. */
export function decodeInteractionLog(bytes: Uint8Array, source = 'interactions'): InteractionLog {
  const read = decodeArrays(bytes, LOG_MAGIC, source, ([, users, items, nnz]) => ({
    ints: [users! + 1, nnz!],
    floats: [nnz!, nnz!],
    ids: users! + items!,
  }));
  const [feedback, users] = read.header;
  return {
    feedback: feedback === 1 ? 'explicit' : 'implicit',
    userIds: read.ids.slice(0, users),
    itemIds: read.ids.slice(users),
    userPtr: read.ints[0]!,
    items: read.ints[1]!,
    values: read.floats[0]!,
    timestamps: read.floats[1]!,
  };
}

/** The held-out interactions (user and item indices of the run's index) as one buffer. */
export function encodeHoldOut(holdOut: HoldOut): Buffer {
  return encodeArrays(
    HOLDOUT_MAGIC,
    [holdOut.users, holdOut.userPtr.length - 1, holdOut.items.length, 0],
    [holdOut.userPtr, holdOut.items],
    [],
    [],
  );
}

export function decodeHoldOut(bytes: Uint8Array, source = 'holdout'): HoldOut {
  const read = decodeArrays(bytes, HOLDOUT_MAGIC, source, ([, rows, nnz]) => ({
    ints: [rows! + 1, nnz!],
    floats: [],
    ids: 0,
  }));
  return { users: read.header[0]!, userPtr: read.ints[0]!, items: read.ints[1]! };
}

function encodeArrays(
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
  view.setUint32(4, VERSION, true);
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

interface Layout {
  readonly ints: readonly number[];
  readonly floats: readonly number[];
  readonly ids: number;
}

function decodeArrays(
  bytes: Uint8Array,
  magic: number,
  source: string,
  layoutOf: (header: readonly number[]) => Layout,
): { header: number[]; ints: Int32Array[]; floats: Float64Array[]; ids: string[] } {
  const fail = (why: string) => new InputError(`${source}: not a readable recommend file (${why})`);
  if (bytes.byteLength < 32) throw fail('shorter than its header');
  // One aligned copy, so the typed arrays below can be views.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const view = new DataView(copy.buffer);
  if (view.getUint32(0, true) !== magic) throw fail('wrong magic number');
  if (view.getUint32(4, true) !== VERSION)
    throw fail(`version ${view.getUint32(4, true)}, expected ${VERSION}`);
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
