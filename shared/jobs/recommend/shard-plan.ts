import type { SimilarityPostings } from './hot-item-cap.ts';
import type { InteractionIndex } from './interaction-index.ts';

/** One user shard: the users it computes (ascending) and their estimated work. */
export interface UserShard {
  readonly users: Int32Array;
  readonly estimatedWork: number;
}

/**
 * Estimated similarity work of each user: the sum of the (capped) posting lengths of
 * the items through which the user takes part in similarities, i.e. how many
 * (user, neighbour, item) products the shard will accumulate. At least 1, so a user
 * with no shared items still costs its share of the fill-in.
 */
export function estimateUserWork(
  index: InteractionIndex,
  postings: Pick<SimilarityPostings, 'itemPtr' | 'userSampled'>,
): Float64Array {
  const work = new Float64Array(index.userIds.length);
  for (let u = 0; u < work.length; u++) {
    let sum = 1;
    for (let e = index.userPtr[u]!; e < index.userPtr[u + 1]!; e++) {
      if (postings.userSampled[e] === 0) continue;
      const item = index.userItems[e]!;
      sum += postings.itemPtr[item + 1]! - postings.itemPtr[item]!;
    }
    work[u] = sum;
  }
  return work;
}

/** How many shards a plan wants: total work over the per-unit target, at least 1, at most one per user. */
export function shardCountFor(work: Float64Array, targetUnitWork: number): number {
  let total = 0;
  for (const w of work) total += w;
  return Math.max(1, Math.min(work.length, Math.ceil(total / targetUnitWork)));
}

/**
 * Cuts users into `shards` shards of about equal estimated work.
 * `greedy`: longest-processing-time first (heaviest user to the lightest shard, ties to the
 * lower shard), within 4/3 of the best possible maximum. `contiguous`: user-id ranges cut
 * where the running work crosses each multiple of total/shards (keeps unit messages to
 * two numbers, but one power user can make its range heavy).
 * Every user is in exactly one shard; no shard is empty when there are at least as many users.
 */
export function planWorkShards(
  work: Float64Array,
  shards: number,
  method: 'greedy' | 'contiguous' = 'greedy',
): UserShard[] {
  const count = Math.max(1, Math.min(shards, work.length));
  if (work.length === 0) return [];
  return method === 'greedy' ? greedyShards(work, count) : contiguousShards(work, count);
}

/** The naive plan the benchmark sets beside it: user-id ranges of equal user count. */
export function planNaiveShards(work: Float64Array, shards: number): UserShard[] {
  const count = Math.max(1, Math.min(shards, work.length));
  const result: UserShard[] = [];
  for (let s = 0; s < count; s++) {
    const start = Math.floor((s * work.length) / count);
    const end = Math.floor(((s + 1) * work.length) / count);
    result.push(rangeShard(work, start, end));
  }
  return result;
}

function greedyShards(work: Float64Array, count: number): UserShard[] {
  const order = Array.from({ length: work.length }, (_, u) => u);
  order.sort((a, b) => work[b]! - work[a]! || a - b);
  // Binary min-heap of (load, shard).
  const load = new Float64Array(count);
  const heap = Array.from({ length: count }, (_, s) => s);
  const less = (a: number, b: number) => load[a]! < load[b]! || (load[a] === load[b] && a < b);
  const members: number[][] = Array.from({ length: count }, () => []);
  for (const user of order) {
    const shard = heap[0]!;
    members[shard]!.push(user);
    load[shard]! += work[user]!;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let smallest = at;
      if (left < count && less(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < count && less(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === at) break;
      [heap[at], heap[smallest]] = [heap[smallest]!, heap[at]!];
      at = smallest;
    }
  }
  return members.map((users, s) => ({ users: Int32Array.from(users).sort(), estimatedWork: load[s]! }));
}

function contiguousShards(work: Float64Array, count: number): UserShard[] {
  let total = 0;
  for (const w of work) total += w;
  const result: UserShard[] = [];
  let start = 0;
  let running = 0;
  for (let s = 0; s < count; s++) {
    const remainingShards = count - s;
    if (remainingShards === 1) {
      result.push(rangeShard(work, start, work.length));
      break;
    }
    const bound = (total * (s + 1)) / count;
    let end = start + 1;
    running += work[start]!;
    // Leave at least one user for each later shard.
    while (end < work.length - (remainingShards - 1) && running + work[end]! / 2 <= bound) {
      running += work[end]!;
      end++;
    }
    result.push(rangeShard(work, start, end));
    start = end;
  }
  return result;
}

function rangeShard(work: Float64Array, start: number, end: number): UserShard {
  let estimatedWork = 0;
  const users = new Int32Array(end - start);
  for (let u = start; u < end; u++) {
    users[u - start] = u;
    estimatedWork += work[u]!;
  }
  return { users, estimatedWork };
}
