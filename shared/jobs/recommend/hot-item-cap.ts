import { type InteractionIndex, normsOf, weightOf } from './interaction-index.ts';
import type { Similarity } from './recommend-config.ts';
import { stableHash } from './stable-hash.ts';

/**
 * What the similarity pass reads: item -> users postings of similarity weights (r_ui, or
 * r_ui - mu_u for pearson), with every item held by more than `maxItemUsers` users cut
 * to a deterministic sample of that many, and for each user -> item entry whether the
 * user is in that item's sample. Norms stay exact (over all of a user's items).
 */
export interface SimilarityPostings {
  readonly similarity: Similarity;
  readonly itemPtr: Int32Array;
  readonly itemUsers: Int32Array;
  readonly itemWeights: Float64Array;
  /** Aligned with `index.userItems`: 1 when the user is in the item's (sampled) postings. */
  readonly userSampled: Uint8Array;
  /** Aligned with `index.userItems`. */
  readonly userWeights: Float64Array;
  readonly norms: Float64Array;
  /** Items held by more than `maxItemUsers` users (sampled). */
  readonly cappedItems: number;
  readonly maxItemUsers: number;
}

/**
 * Which interactions take part in similarities under the cap, without the weights: the
 * capped posting lengths (`itemPtr`) and, for each entry of either side of the index,
 * whether it is in its item's sample. What the shard planner needs; the similarity pass
 * adds the weights ({@link similarityPostings}).
 */
export interface HotItemSample {
  readonly itemPtr: Int32Array;
  /** Aligned with `index.itemUsers`. */
  readonly sampledEntry: Uint8Array;
  /** Aligned with `index.userItems`. */
  readonly userSampled: Uint8Array;
  readonly cappedItems: number;
}

/**
 * The sample of a hot item keeps the `maxItemUsers` users with the lowest
 * `stableHash(itemId, userId)` (ties by user id): reproducible anywhere, independent of
 * input order, and a different sample per item so no user is dropped from every item.
 */
export function hotItemSample(index: InteractionIndex, maxItemUsers: number): HotItemSample {
  const nItems = index.itemIds.length;
  const nUsers = index.userIds.length;
  const itemPtr = new Int32Array(nItems + 1);
  const sampledEntry = new Uint8Array(index.itemUsers.length);
  let cappedItems = 0;
  for (let i = 0; i < nItems; i++) {
    const start = index.itemPtr[i]!;
    const end = index.itemPtr[i + 1]!;
    let kept = end - start;
    if (kept > maxItemUsers) {
      cappedItems += 1;
      const itemId = index.itemIds[i]!;
      const hashes = new Float64Array(kept);
      const order = new Int32Array(kept);
      for (let p = start; p < end; p++) {
        hashes[p - start] = stableHash(itemId, index.userIds[index.itemUsers[p]!]!);
        order[p - start] = p - start;
      }
      // Postings list users ascending, so ties by position are ties by user.
      order.sort((a, b) => hashes[a]! - hashes[b]! || a - b);
      for (let k = 0; k < maxItemUsers; k++) sampledEntry[start + order[k]!] = 1;
      kept = maxItemUsers;
    } else sampledEntry.fill(1, start, end);
    itemPtr[i + 1] = itemPtr[i]! + kept;
  }
  // Carry the flags over to the user -> item side: item postings list users in ascending order.
  const userSampled = new Uint8Array(index.userItems.length);
  const cursor = index.itemPtr.slice(0, nItems);
  for (let u = 0; u < nUsers; u++)
    for (let e = index.userPtr[u]!; e < index.userPtr[u + 1]!; e++)
      userSampled[e] = sampledEntry[cursor[index.userItems[e]!]!++]!;
  return { itemPtr, sampledEntry, userSampled, cappedItems };
}

/** The similarity pass's postings: the sample with the weights of its entries. */
export function similarityPostings(
  index: InteractionIndex,
  similarity: Similarity,
  maxItemUsers: number,
): SimilarityPostings {
  const { itemPtr, sampledEntry, userSampled, cappedItems } = hotItemSample(index, maxItemUsers);
  const nItems = index.itemIds.length;
  const nUsers = index.userIds.length;
  const itemUsers = new Int32Array(itemPtr[nItems]!);
  const itemWeights = new Float64Array(itemPtr[nItems]!);
  let out = 0;
  for (let p = 0; p < index.itemUsers.length; p++) {
    if (sampledEntry[p] === 0) continue;
    const user = index.itemUsers[p]!;
    itemUsers[out] = user;
    itemWeights[out] = weightOf(index, similarity, user, index.itemValues[p]!);
    out++;
  }
  const userWeights = new Float64Array(index.userItems.length);
  for (let u = 0; u < nUsers; u++)
    for (let e = index.userPtr[u]!; e < index.userPtr[u + 1]!; e++)
      userWeights[e] = weightOf(index, similarity, u, index.userValues[e]!);
  return {
    similarity,
    itemPtr,
    itemUsers,
    itemWeights,
    userSampled,
    userWeights,
    norms: normsOf(index, similarity),
    cappedItems,
    maxItemUsers,
  };
}
