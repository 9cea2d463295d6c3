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
 * The sample of a hot item keeps the `maxItemUsers` users with the lowest
 * `stableHash(itemId, userId)` (ties by user id): reproducible anywhere, independent of
 * input order, and a different sample per item so no user is dropped from every item.
 */
export function similarityPostings(
  index: InteractionIndex,
  similarity: Similarity,
  maxItemUsers: number,
): SimilarityPostings {
  const nItems = index.itemIds.length;
  const nUsers = index.userIds.length;
  const sampledUsersOf: (Int32Array | undefined)[] = new Array(nItems);
  const itemPtr = new Int32Array(nItems + 1);
  let cappedItems = 0;
  for (let i = 0; i < nItems; i++) {
    const start = index.itemPtr[i]!;
    const end = index.itemPtr[i + 1]!;
    let kept = end - start;
    if (kept > maxItemUsers) {
      cappedItems += 1;
      const itemId = index.itemIds[i]!;
      const postings = Array.from(index.itemUsers.subarray(start, end), (user) => ({
        user,
        hash: stableHash(itemId, index.userIds[user]!),
      }));
      postings.sort((a, b) => a.hash - b.hash || a.user - b.user);
      sampledUsersOf[i] = Int32Array.from(postings.slice(0, maxItemUsers), (p) => p.user).sort();
      kept = maxItemUsers;
    }
    itemPtr[i + 1] = itemPtr[i]! + kept;
  }
  const itemUsers = new Int32Array(itemPtr[nItems]!);
  const itemWeights = new Float64Array(itemPtr[nItems]!);
  // Membership of (user, item) in the sample: walk each item's full postings against its sorted sample.
  const sampledEntry = new Uint8Array(index.itemUsers.length);
  for (let i = 0; i < nItems; i++) {
    const start = index.itemPtr[i]!;
    const end = index.itemPtr[i + 1]!;
    const sample = sampledUsersOf[i];
    let out = itemPtr[i]!;
    let s = 0;
    for (let p = start; p < end; p++) {
      const user = index.itemUsers[p]!;
      if (sample !== undefined) {
        while (s < sample.length && sample[s]! < user) s++;
        if (s >= sample.length || sample[s] !== user) continue;
      }
      sampledEntry[p] = 1;
      itemUsers[out] = user;
      itemWeights[out] = weightOf(index, similarity, user, index.itemValues[p]!);
      out++;
    }
  }
  // Carry the flags over to the user -> item side: item postings list users in ascending order.
  const userSampled = new Uint8Array(index.userItems.length);
  const userWeights = new Float64Array(index.userItems.length);
  const cursor = index.itemPtr.slice(0, nItems);
  for (let u = 0; u < nUsers; u++) {
    for (let e = index.userPtr[u]!; e < index.userPtr[u + 1]!; e++) {
      const item = index.userItems[e]!;
      userSampled[e] = sampledEntry[cursor[item]!++]!;
      userWeights[e] = weightOf(index, similarity, u, index.userValues[e]!);
    }
  }
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
