import type { Interaction } from './interaction.ts';

export type Feedback = 'explicit' | 'implicit';

/**
 * Deduplicated interactions, one row per user (users and items indexed in ascending id
 * order, items ascending within a row): the input of the index and of the holdout.
 * `timestamps` holds NaN where an interaction had none.
 */
export interface InteractionLog {
  readonly feedback: Feedback;
  readonly userIds: readonly string[];
  readonly itemIds: readonly string[];
  readonly userPtr: Int32Array;
  readonly items: Int32Array;
  readonly values: Float64Array;
  readonly timestamps: Float64Array;
}

/** Ids are compared as strings, by UTF-16 code unit (JavaScript's `<`), the same order as ASCII bytes. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Collects interactions and deduplicates (user, item) pairs by the contract: explicit
 * feedback keeps the value with the latest timestamp, and the largest value when
 * timestamps tie or are absent (a present timestamp beats an absent one); implicit keeps
 * one (value 1, the latest timestamp).
 */
export class InteractionLogBuilder {
  private readonly userIndex = new Map<string, number>();
  private readonly itemIndex = new Map<string, number>();
  private users = new Int32Array(1024);
  private items = new Int32Array(1024);
  private values = new Float64Array(1024);
  private timestamps = new Float64Array(1024);
  private size = 0;

  constructor(readonly feedback: Feedback) {}

  add(interaction: Interaction): void {
    if (this.size === this.users.length) this.grow();
    this.users[this.size] = indexOf(this.userIndex, interaction.userId);
    this.items[this.size] = indexOf(this.itemIndex, interaction.itemId);
    this.values[this.size] = this.feedback === 'implicit' ? 1 : interaction.value;
    this.timestamps[this.size] = interaction.timestamp ?? Number.NaN;
    this.size += 1;
  }

  get added(): number {
    return this.size;
  }

  /** The deduplicated log, and how many input interactions were duplicates of a kept one. */
  build(): { log: InteractionLog; duplicates: number } {
    const userRank = ranks(this.userIndex);
    const itemRank = ranks(this.itemIndex);
    const nUsers = userRank.ids.length;
    // Counting sort by user, then each row by item, then keep one per (user, item).
    const counts = new Int32Array(nUsers + 1);
    for (let e = 0; e < this.size; e++) counts[userRank.rank[this.users[e]!]! + 1]! += 1;
    for (let u = 0; u < nUsers; u++) counts[u + 1]! += counts[u]!;
    const order = new Int32Array(this.size);
    const fill = counts.slice(0, nUsers);
    for (let e = 0; e < this.size; e++) order[fill[userRank.rank[this.users[e]!]!]!++] = e;
    const userPtr = new Int32Array(nUsers + 1);
    const items = new Int32Array(this.size);
    const values = new Float64Array(this.size);
    const timestamps = new Float64Array(this.size);
    let kept = 0;
    for (let u = 0; u < nUsers; u++) {
      const row = Array.from(order.subarray(counts[u]!, counts[u + 1]!));
      row.sort((a, b) => itemRank.rank[this.items[a]!]! - itemRank.rank[this.items[b]!]! || a - b);
      let previousItem = -1;
      for (const e of row) {
        const item = itemRank.rank[this.items[e]!]!;
        const value = this.values[e]!;
        const timestamp = this.timestamps[e]!;
        if (item === previousItem) {
          const last = kept - 1;
          if (replaces(timestamp, value, timestamps[last]!, values[last]!)) {
            values[last] = value;
            timestamps[last] = timestamp;
          }
          continue;
        }
        items[kept] = item;
        values[kept] = value;
        timestamps[kept] = timestamp;
        kept += 1;
        previousItem = item;
      }
      userPtr[u + 1] = kept;
    }
    return {
      log: {
        feedback: this.feedback,
        userIds: userRank.ids,
        itemIds: itemRank.ids,
        userPtr,
        items: items.slice(0, kept),
        values: values.slice(0, kept),
        timestamps: timestamps.slice(0, kept),
      },
      duplicates: this.size - kept,
    };
  }

  private grow(): void {
    const size = this.users.length * 2;
    this.users = resized(this.users, new Int32Array(size));
    this.items = resized(this.items, new Int32Array(size));
    this.values = resized(this.values, new Float64Array(size));
    this.timestamps = resized(this.timestamps, new Float64Array(size));
  }
}

/**
 * Does a duplicate (t, v) replace the kept (keptT, keptV)? Later timestamp wins; on a tie
 * or none, the larger value. A total order, so the pair kept does not depend on the order
 * the duplicates come in (the ingest merge relies on it across units).
 */
export function replaces(t: number, v: number, keptT: number, keptV: number): boolean {
  const has = !Number.isNaN(t);
  const keptHas = !Number.isNaN(keptT);
  if (has !== keptHas) return has;
  if (has && t !== keptT) return t > keptT;
  return v > keptV;
}

function indexOf(index: Map<string, number>, id: string): number {
  let found = index.get(id);
  if (found === undefined) {
    found = index.size;
    index.set(id, found);
  }
  return found;
}

/** Ids in ascending order, and for each first-seen index its rank in that order. */
function ranks(index: Map<string, number>): { ids: string[]; rank: Int32Array } {
  const ids = [...index.keys()].sort(compareIds);
  const rank = new Int32Array(ids.length);
  ids.forEach((id, r) => {
    rank[index.get(id)!] = r;
  });
  return { ids, rank };
}

function resized<T extends Int32Array | Float64Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
