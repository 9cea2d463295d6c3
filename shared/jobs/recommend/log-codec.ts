import { decodeArrays, encodeArrays, type Layout } from './array-file.ts';
import type { HoldOut } from './evaluation.ts';
import type { InteractionLog } from './interaction-log.ts';

export const LOG_MAGIC = 0x474c4c53; // "SLLG" little-endian
const HOLDOUT_MAGIC = 0x4f484c53; // "SLHO" little-endian

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

/** The sections of an interactions file from its header: userPtr, items; values, timestamps; user then item ids. */
export const logLayoutOf = ([, users, items, nnz]: readonly number[]): Layout => ({
  ints: [users! + 1, nnz!],
  floats: [nnz!, nnz!],
  ids: users! + items!,
});

/** Reads a buffer written by {@link encodeInteractionLog}; a truncated or foreign file fails with one line. */
export function decodeInteractionLog(bytes: Uint8Array, source = 'interactions'): InteractionLog {
  const read = decodeArrays(bytes, LOG_MAGIC, source, logLayoutOf);
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
