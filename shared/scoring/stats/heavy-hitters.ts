/** Serialised {@link HeavyHitters}. */
export interface HeavyHittersState {
  readonly capacity: number;
  /** Items seen (with weights). */
  readonly total: number;
  /** Upper bound on how far any reported count is below the true count. */
  readonly maxUndercount: number;
  /** Items and counts, by count descending then item ascending. */
  readonly items: string[];
  readonly counts: number[];
}

/**
 * Frequent items of a stream in bounded memory: the Misra-Gries summary, in its
 * mergeable form (Agarwal et al., "Mergeable Summaries", 2012). Counters are exact until
 * more than `2 x capacity` distinct items are held; then the (capacity+1)-th largest
 * count is subtracted from every counter and those at or below zero are dropped, which
 * leaves at most `capacity` items. Each reduction lowers any count by at most the amount
 * subtracted, tracked in `maxUndercount`, which stays <= total / (capacity + 1): every
 * item more frequent than that is guaranteed to be kept.
 *
 * Merging adds counters and reduces the same way, so summaries of any split merge into
 * one with the same guarantee; with at most 2 x capacity distinct items in all, nothing
 * is ever reduced and the merge is exactly the summary of the whole.
 */
export class HeavyHitters {
  readonly capacity: number;
  total = 0;
  maxUndercount = 0;
  private readonly counters = new Map<string, number>();

  constructor(capacity = 1000) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  add(item: string, weight = 1): void {
    this.total += weight;
    this.counters.set(item, (this.counters.get(item) ?? 0) + weight);
    if (this.counters.size > 2 * this.capacity) this.reduce();
  }

  private reduce(): void {
    const counts = [...this.counters.values()].sort((a, b) => b - a);
    const cut = counts[this.capacity]!;
    for (const [item, count] of this.counters) {
      if (count <= cut) this.counters.delete(item);
      else this.counters.set(item, count - cut);
    }
    this.maxUndercount += cut;
  }

  merge(other: HeavyHitters | HeavyHittersState): this {
    const state = other instanceof HeavyHitters ? other.toJSON() : other;
    if (state.capacity !== this.capacity) {
      throw new RangeError(`cannot merge a summary of capacity ${state.capacity} into ${this.capacity}`);
    }
    this.total += state.total;
    this.maxUndercount += state.maxUndercount;
    for (let k = 0; k < state.items.length; k += 1) {
      const item = state.items[k]!;
      this.counters.set(item, (this.counters.get(item) ?? 0) + state.counts[k]!);
    }
    if (this.counters.size > 2 * this.capacity) this.reduce();
    return this;
  }

  /** Counted items, most frequent first; ties broken by item so the order is deterministic. */
  entries(): [string, number][] {
    return [...this.counters.entries()].sort(
      (a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
    );
  }

  /** The `k` most frequent items with at least `minCount` (estimated) occurrences. */
  top(k: number, minCount = 1): [string, number][] {
    return this.entries()
      .filter(([, count]) => count >= minCount)
      .slice(0, k);
  }

  get size(): number {
    return this.counters.size;
  }

  toJSON(): HeavyHittersState {
    const entries = this.entries();
    return {
      capacity: this.capacity,
      total: this.total,
      maxUndercount: this.maxUndercount,
      items: entries.map((e) => e[0]),
      counts: entries.map((e) => e[1]),
    };
  }

  static fromJSON(state: HeavyHittersState): HeavyHitters {
    return new HeavyHitters(state.capacity).merge(state);
  }
}
