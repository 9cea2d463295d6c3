import type { SimilarityPostings } from './hot-item-cap.ts';
import { type InteractionIndex, itemUserCounts, popularityOrder } from './interaction-index.ts';
import type { NeighboursSettings } from './recommend-config.ts';

/** A row of the `recommendations` table. */
export interface RecommendationRow {
  readonly run_id: string;
  readonly pipeline: string;
  readonly user_id: string;
  /** 1-based. */
  readonly rank: number;
  readonly item_id: string;
  readonly score: number;
  readonly source: 'cf' | 'popular';
  /** Members of N(u) holding the item; 0 for popularity fill-in. */
  readonly neighbours: number;
}

/** One user's list by index (what evaluation reads), before it becomes table rows. */
export interface UserRecommendations {
  readonly user: number;
  readonly items: Int32Array;
  readonly scores: Float64Array;
  readonly neighbours: Int32Array;
  /** How many of the leading entries came from CF; the rest are popularity fill-in. */
  readonly cfCount: number;
}

export interface Neighbour {
  readonly user: number;
  /** s'(u, v): the shrunk similarity. */
  readonly similarity: number;
  /** n_uv over sampled pairs. */
  readonly common: number;
}

export type CfSettings = Pick<NeighboursSettings, 'k' | 'shrinkage' | 'minCommonItems' | 'minNeighbours'> & {
  readonly topN: number;
};

/**
 * User-based collaborative filtering for one shard of users, by the Recommendations
 * contract. Similarities accumulate over the item -> users postings (only pairs that
 * share an item are ever touched), so a user's cost is the work the planner estimated.
 * Scratch arrays are sized once per shard and reset sparsely per user.
 */
export class UserCfShard {
  private readonly dot: Float64Array;
  private readonly common: Int32Array;
  private readonly touchedUsers: Int32Array;
  private readonly candidateNumerator: Float64Array;
  private readonly candidateDenominator: Float64Array;
  private readonly candidateHolders: Int32Array;
  private readonly touchedItems: Int32Array;
  private readonly heldStamp: Int32Array;
  private readonly popular: Int32Array;
  private readonly popularity: Int32Array;
  /** Every similarity weight is 1 (implicit feedback with cosine): overlaps are the dot products. */
  private readonly unitWeights: boolean;
  private readonly best: CandidateHeap;
  /** Operations done so far: postings accumulated plus neighbour items scanned (the actual cost). */
  operations = 0;

  constructor(
    private readonly index: InteractionIndex,
    private readonly postings: SimilarityPostings,
    private readonly settings: CfSettings,
  ) {
    const nUsers = index.userIds.length;
    const nItems = index.itemIds.length;
    this.dot = new Float64Array(nUsers);
    this.common = new Int32Array(nUsers);
    this.touchedUsers = new Int32Array(nUsers);
    this.candidateNumerator = new Float64Array(nItems);
    this.candidateDenominator = new Float64Array(nItems);
    this.candidateHolders = new Int32Array(nItems);
    this.touchedItems = new Int32Array(nItems);
    this.heldStamp = new Int32Array(nItems);
    this.popular = popularityOrder(index);
    this.popularity = itemUserCounts(index);
    this.unitWeights = allOnes(postings.itemWeights) && allOnes(postings.userWeights);
    this.best = new CandidateHeap(settings.topN);
  }

  /** N(u): up to k users v != u with s' > 0 and n_uv >= minCommonItems, highest s' first, ties by user id. */
  neighboursOf(user: number): Neighbour[] {
    const { index, postings, settings } = this;
    const { dot, common, touchedUsers } = this;
    // Locals, so the hot loops below read no object properties.
    const userItems = index.userItems;
    const userSampled = postings.userSampled;
    const userWeights = postings.userWeights;
    const itemPtr = postings.itemPtr;
    const itemUsers = postings.itemUsers;
    const itemWeights = postings.itemWeights;
    let touched = 0;
    let operations = 0;
    for (let e = index.userPtr[user]!; e < index.userPtr[user + 1]!; e++) {
      if (userSampled[e] === 0) continue;
      const item = userItems[e]!;
      const start = itemPtr[item]!;
      const end = itemPtr[item + 1]!;
      operations += end - start;
      if (this.unitWeights) {
        // Every weight is 1 (implicit feedback, cosine): the dot product is the overlap count.
        for (let p = start; p < end; p++) {
          const other = itemUsers[p]!;
          const n = common[other]!;
          if (n === 0) touchedUsers[touched++] = other;
          common[other] = n + 1;
        }
        continue;
      }
      const weight = userWeights[e]!;
      for (let p = start; p < end; p++) {
        const other = itemUsers[p]!;
        const n = common[other]!;
        if (n === 0) touchedUsers[touched++] = other;
        common[other] = n + 1;
        dot[other]! += weight * itemWeights[p]!;
      }
    }
    this.operations += operations;
    const heap = new NeighbourHeap(settings.k);
    const norms = postings.norms;
    const normU = norms[user]!;
    const { minCommonItems, shrinkage } = settings;
    for (let t = 0; t < touched; t++) {
      const other = touchedUsers[t]!;
      const n = common[other]!;
      const d = this.unitWeights ? n : dot[other]!;
      common[other] = 0;
      dot[other] = 0;
      if (other === user || n < minCommonItems) continue;
      const normV = norms[other]!;
      if (normU === 0 || normV === 0) continue;
      const s = d / (normU * normV);
      const shrunk = (s * n) / (n + shrinkage);
      if (shrunk > 0) heap.offer(other, shrunk, n);
    }
    return heap.sorted();
  }

  /** u's top N: CF candidates by score (ties by item id), then the most popular unseen items. */
  recommend(user: number): UserRecommendations {
    const { index, settings } = this;
    const neighbours = this.neighboursOf(user);
    const stamp = user + 1;
    for (let e = index.userPtr[user]!; e < index.userPtr[user + 1]!; e++)
      this.heldStamp[index.userItems[e]!] = stamp;
    const explicit = index.feedback === 'explicit';
    const { userPtr, userItems, userValues, means } = index;
    const { heldStamp, candidateHolders, candidateNumerator, candidateDenominator, touchedItems } = this;
    let touched = 0;
    for (const { user: other, similarity } of neighbours) {
      const mean = means[other]!;
      const magnitude = Math.abs(similarity);
      const start = userPtr[other]!;
      const end = userPtr[other + 1]!;
      for (let e = start; e < end; e++) {
        const item = userItems[e]!;
        if (heldStamp[item] === stamp) continue;
        const holders = candidateHolders[item]!;
        if (holders === 0) touchedItems[touched++] = item;
        candidateHolders[item] = holders + 1;
        candidateNumerator[item]! += explicit ? similarity * (userValues[e]! - mean) : similarity;
        candidateDenominator[item]! += magnitude;
      }
      this.operations += end - start;
    }
    // The N best candidates (score descending, ties by item ascending) kept in a bounded heap.
    const best = this.best;
    best.clear();
    const meanU = index.means[user]!;
    for (let t = 0; t < touched; t++) {
      const item = this.touchedItems[t]!;
      const holders = this.candidateHolders[item]!;
      if (holders >= settings.minNeighbours) {
        const numerator = this.candidateNumerator[item]!;
        const score = explicit ? meanU + numerator / this.candidateDenominator[item]! : numerator;
        best.offer(item, score, holders);
      }
      this.candidateHolders[item] = 0;
      this.candidateNumerator[item] = 0;
      this.candidateDenominator[item] = 0;
    }
    const ranked = best.sorted();
    const topN = settings.topN;
    const cfCount = ranked.length;
    const items: number[] = [];
    const scores: number[] = [];
    const holders: number[] = [];
    for (let r = 0; r < cfCount; r++) {
      const slot = ranked[r]!;
      items.push(best.items[slot]!);
      scores.push(best.scores[slot]!);
      holders.push(best.holders[slot]!);
      this.heldStamp[best.items[slot]!] = stamp;
    }
    for (let p = 0; p < this.popular.length && items.length < topN; p++) {
      const item = this.popular[p]!;
      if (this.heldStamp[item] === stamp) continue;
      items.push(item);
      scores.push(this.popularity[item]!);
      holders.push(0);
    }
    return {
      user,
      items: Int32Array.from(items),
      scores: Float64Array.from(scores),
      neighbours: Int32Array.from(holders),
      cfCount,
    };
  }
}

/** Table rows for one user's list. */
export function recommendationRows(
  index: InteractionIndex,
  list: UserRecommendations,
  run: { readonly runId: string; readonly pipeline: string },
): RecommendationRow[] {
  return Array.from(list.items, (item, r) => ({
    run_id: run.runId,
    pipeline: run.pipeline,
    user_id: index.userIds[list.user]!,
    rank: r + 1,
    item_id: index.itemIds[item]!,
    score: list.scores[r]!,
    source: r < list.cfCount ? 'cf' : 'popular',
    neighbours: list.neighbours[r]!,
  }));
}

/** The popularity baseline's list for a user: the N most popular items the user does not hold. */
export function popularityList(
  index: InteractionIndex,
  popular: Int32Array,
  user: number,
  topN: number,
): number[] {
  const held = new Set(index.userItems.subarray(index.userPtr[user]!, index.userPtr[user + 1]!));
  const list: number[] = [];
  for (let p = 0; p < popular.length && list.length < topN; p++)
    if (!held.has(popular[p]!)) list.push(popular[p]!);
  return list;
}

function allOnes(values: Float64Array): boolean {
  for (let k = 0; k < values.length; k++) if (values[k] !== 1) return false;
  return true;
}

/**
 * Keeps the N best candidates by score (descending), ties by item (ascending), in typed
 * arrays: a binary heap whose root is the worst kept one, so a user's candidates cost no
 * objects and no full sort.
 */
class CandidateHeap {
  readonly items: Int32Array;
  readonly scores: Float64Array;
  readonly holders: Int32Array;
  /** Heap of slots. */
  private readonly heap: Int32Array;
  private size = 0;

  constructor(private readonly capacity: number) {
    this.items = new Int32Array(capacity);
    this.scores = new Float64Array(capacity);
    this.holders = new Int32Array(capacity);
    this.heap = new Int32Array(capacity);
  }

  clear(): void {
    this.size = 0;
  }

  offer(item: number, score: number, holders: number): void {
    if (this.capacity === 0) return;
    if (this.size < this.capacity) {
      const slot = this.size;
      this.items[slot] = item;
      this.scores[slot] = score;
      this.holders[slot] = holders;
      this.heap[this.size++] = slot;
      this.siftUp(this.size - 1);
      return;
    }
    const root = this.heap[0]!;
    if (!this.better(item, score, this.items[root]!, this.scores[root]!)) return;
    this.items[root] = item;
    this.scores[root] = score;
    this.holders[root] = holders;
    this.siftDown(0);
  }

  /** The kept slots, best first. */
  sorted(): number[] {
    const slots = Array.from(this.heap.subarray(0, this.size));
    return slots.sort((a, b) =>
      this.better(this.items[a]!, this.scores[a]!, this.items[b]!, this.scores[b]!) ? -1 : 1,
    );
  }

  private better(itemA: number, scoreA: number, itemB: number, scoreB: number): boolean {
    return scoreA > scoreB || (scoreA === scoreB && itemA < itemB);
  }

  /** Is heap position a worse than b (belongs nearer the root)? */
  private worse(a: number, b: number): boolean {
    const sa = this.heap[a]!;
    const sb = this.heap[b]!;
    return this.better(this.items[sb]!, this.scores[sb]!, this.items[sa]!, this.scores[sa]!);
  }

  private swap(a: number, b: number): void {
    const slot = this.heap[a]!;
    this.heap[a] = this.heap[b]!;
    this.heap[b] = slot;
  }

  private siftUp(at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.worse(at, parent)) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private siftDown(at: number): void {
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let worst = at;
      if (left < this.size && this.worse(left, worst)) worst = left;
      if (right < this.size && this.worse(right, worst)) worst = right;
      if (worst === at) return;
      this.swap(at, worst);
      at = worst;
    }
  }
}

/**
 * Keeps the k best neighbours: a binary heap whose root is the worst kept one (lowest s',
 * then highest user index), so each offer costs O(log k).
 */
class NeighbourHeap {
  private readonly users: number[] = [];
  private readonly sims: number[] = [];
  private readonly commons: number[] = [];

  constructor(private readonly k: number) {}

  offer(user: number, similarity: number, common: number): void {
    if (this.users.length < this.k) {
      this.users.push(user);
      this.sims.push(similarity);
      this.commons.push(common);
      this.siftUp(this.users.length - 1);
      return;
    }
    if (!this.better(user, similarity, this.users[0]!, this.sims[0]!)) return;
    this.users[0] = user;
    this.sims[0] = similarity;
    this.commons[0] = common;
    this.siftDown(0);
  }

  sorted(): Neighbour[] {
    const result = this.users.map((user, i) => ({
      user,
      similarity: this.sims[i]!,
      common: this.commons[i]!,
    }));
    return result.sort((a, b) => b.similarity - a.similarity || a.user - b.user);
  }

  private better(userA: number, simA: number, userB: number, simB: number): boolean {
    return simA > simB || (simA === simB && userA < userB);
  }

  /** Is slot a worse than slot b (belongs nearer the root)? */
  private worse(a: number, b: number): boolean {
    return this.better(this.users[b]!, this.sims[b]!, this.users[a]!, this.sims[a]!);
  }

  private swap(a: number, b: number): void {
    const user = this.users[a]!;
    const sim = this.sims[a]!;
    const common = this.commons[a]!;
    this.users[a] = this.users[b]!;
    this.sims[a] = this.sims[b]!;
    this.commons[a] = this.commons[b]!;
    this.users[b] = user;
    this.sims[b] = sim;
    this.commons[b] = common;
  }

  private siftUp(at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.worse(at, parent)) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private siftDown(at: number): void {
    const size = this.users.length;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let worst = at;
      if (left < size && this.worse(left, worst)) worst = left;
      if (right < size && this.worse(right, worst)) worst = right;
      if (worst === at) return;
      this.swap(at, worst);
      at = worst;
    }
  }
}
