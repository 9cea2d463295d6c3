import type { ObjectWrite } from '../../ports/object-store.ts';
import { decodeArrays, encodeArrays, writeArrays } from './array-file.ts';
import type { InteractionIndex } from './interaction-index.ts';

const MAGIC = 0x49464c53; // "SLFI" little-endian

/**
 * The index as one little-endian binary buffer (the per-stage index file in S3), in the
 * recommend stages' array-file layout (array-file.ts): a 32-byte header (magic, version,
 * feedback, users, items, interactions), then the int32 arrays, the float64 arrays (8-byte
 * aligned), then the id tables as int32 byte lengths and UTF-8 bytes. About 24 bytes per
 * interaction; no parsing on load beyond the ids (the arrays are views over one copy of the bytes).
 */
export function encodeInteractionIndex(index: InteractionIndex): Buffer {
  return encodeArrays(MAGIC, ...indexSections(index));
}

/** The same bytes as {@link encodeInteractionIndex}, written piece by piece (the index is not copied whole). */
export function writeInteractionIndex(out: ObjectWrite, index: InteractionIndex): Promise<void> {
  return writeArrays(out, MAGIC, ...indexSections(index));
}

function indexSections(index: InteractionIndex): [number[], Int32Array[], Float64Array[], string[]] {
  return [
    [
      index.feedback === 'explicit' ? 1 : 0,
      index.userIds.length,
      index.itemIds.length,
      index.userItems.length,
    ],
    [index.userPtr, index.userItems, index.itemPtr, index.itemUsers],
    [index.userValues, index.itemValues, index.means, index.rawNorms, index.centredNorms],
    [...index.userIds, ...index.itemIds],
  ];
}

/** Reads a buffer written by `encodeInteractionIndex`; a truncated or foreign file fails with one line. */
export function decodeInteractionIndex(bytes: Uint8Array, source = 'index'): InteractionIndex {
  const read = decodeArrays(
    bytes,
    MAGIC,
    source,
    ([, users, items, nnz]) => ({
      ints: [users! + 1, nnz!, items! + 1, nnz!],
      floats: [nnz!, nnz!, users!, users!, users!],
      ids: users! + items!,
    }),
    'index',
  );
  const [feedback, users] = read.header;
  const [userPtr, userItems, itemPtr, itemUsers] = read.ints;
  const [userValues, itemValues, means, rawNorms, centredNorms] = read.floats;
  return {
    feedback: feedback === 1 ? 'explicit' : 'implicit',
    userIds: read.ids.slice(0, users),
    itemIds: read.ids.slice(users),
    userPtr: userPtr!,
    userItems: userItems!,
    itemPtr: itemPtr!,
    itemUsers: itemUsers!,
    userValues: userValues!,
    itemValues: itemValues!,
    means: means!,
    rawNorms: rawNorms!,
    centredNorms: centredNorms!,
  };
}
