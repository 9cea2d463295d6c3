import { compareIds, type Feedback, type InteractionLog } from './interaction-log.ts';
import type { Similarity } from './recommend-config.ts';

/**
 * The fitted interactions in compressed sparse rows both ways (user -> items and
 * item -> users, with values), plus what every shard needs: user means, the norms of
 * raw and of centred values (over all of a user's items), and item popularity.
 * User and item indices follow ascending id order, so index order is id order.
 */
export interface InteractionIndex {
  readonly feedback: Feedback;
  readonly userIds: readonly string[];
  readonly itemIds: readonly string[];
  readonly userPtr: Int32Array;
  readonly userItems: Int32Array;
  readonly userValues: Float64Array;
  readonly itemPtr: Int32Array;
  readonly itemUsers: Int32Array;
  readonly itemValues: Float64Array;
  readonly means: Float64Array;
  readonly rawNorms: Float64Array;
  readonly centredNorms: Float64Array;
}

/** Builds the index from a deduplicated log (its rows are already sorted by item). */
export function buildInteractionIndex(log: InteractionLog): InteractionIndex {
  const nUsers = log.userIds.length;
  const nItems = log.itemIds.length;
  const nnz = log.items.length;
  const itemPtr = new Int32Array(nItems + 1);
  for (let e = 0; e < nnz; e++) itemPtr[log.items[e]! + 1]! += 1;
  for (let i = 0; i < nItems; i++) itemPtr[i + 1]! += itemPtr[i]!;
  const fill = itemPtr.slice(0, nItems);
  const itemUsers = new Int32Array(nnz);
  const itemValues = new Float64Array(nnz);
  const means = new Float64Array(nUsers);
  const rawNorms = new Float64Array(nUsers);
  const centredNorms = new Float64Array(nUsers);
  for (let u = 0; u < nUsers; u++) {
    const start = log.userPtr[u]!;
    const end = log.userPtr[u + 1]!;
    let sum = 0;
    let squares = 0;
    for (let e = start; e < end; e++) {
      const value = log.values[e]!;
      sum += value;
      squares += value * value;
      const slot = fill[log.items[e]!]!++;
      itemUsers[slot] = u;
      itemValues[slot] = value;
    }
    const mean = end > start ? sum / (end - start) : 0;
    let centred = 0;
    for (let e = start; e < end; e++) centred += (log.values[e]! - mean) ** 2;
    means[u] = mean;
    rawNorms[u] = Math.sqrt(squares);
    centredNorms[u] = Math.sqrt(centred);
  }
  return {
    feedback: log.feedback,
    userIds: log.userIds,
    itemIds: log.itemIds,
    userPtr: log.userPtr,
    userItems: log.items,
    userValues: log.values,
    itemPtr,
    itemUsers,
    itemValues,
    means,
    rawNorms,
    centredNorms,
  };
}

/** Number of users holding each item. */
export function itemUserCounts(index: InteractionIndex): Int32Array {
  const counts = new Int32Array(index.itemIds.length);
  for (let i = 0; i < counts.length; i++) counts[i] = index.itemPtr[i + 1]! - index.itemPtr[i]!;
  return counts;
}

/** Items held by at least one user, most distinct users first, ties by item id ascending. */
export function popularityOrder(index: InteractionIndex): Int32Array {
  const counts = itemUserCounts(index);
  const order: number[] = [];
  for (let i = 0; i < counts.length; i++) if (counts[i]! > 0) order.push(i);
  // Index order is id order, so ties by index are ties by id.
  order.sort((a, b) => counts[b]! - counts[a]! || a - b);
  return Int32Array.from(order);
}

/** The value a similarity multiplies: r_ui for cosine, r_ui - mu_u for pearson. */
export function weightOf(
  index: InteractionIndex,
  similarity: Similarity,
  user: number,
  value: number,
): number {
  return similarity === 'pearson' ? value - index.means[user]! : value;
}

export function normsOf(index: InteractionIndex, similarity: Similarity): Float64Array {
  return similarity === 'pearson' ? index.centredNorms : index.rawNorms;
}

/** Finds a user's index by id (binary search over the sorted ids); -1 when absent. */
export function userIndexOf(index: InteractionIndex, userId: string): number {
  let low = 0;
  let high = index.userIds.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const order = compareIds(index.userIds[mid]!, userId);
    if (order === 0) return mid;
    if (order < 0) low = mid + 1;
    else high = mid - 1;
  }
  return -1;
}
