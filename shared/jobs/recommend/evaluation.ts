import type { InteractionLog } from './interaction-log.ts';
import { compareIds } from './interaction-log.ts';
import { stableHash } from './stable-hash.ts';

/** Held-out interactions per user (item indices of the same log), in CSR form. */
export interface HoldOut {
  readonly userPtr: Int32Array;
  readonly items: Int32Array;
  readonly users: number;
}

/**
 * Splits off each eligible user's latest interactions: users with at least
 * `minUserItems` interactions lose max(1, floor(holdoutFraction * n)) of them, the latest
 * by timestamp (an absent timestamp counts as older than any present one); ties and logs
 * without timestamps are ordered by `stableHash(userId, itemId)`, highest first, then item id.
 * The training log keeps the same user and item indices.
 */
export function splitHoldout(
  log: InteractionLog,
  evaluation: { readonly holdoutFraction: number; readonly minUserItems: number },
): { train: InteractionLog; holdOut: HoldOut } {
  const nUsers = log.userIds.length;
  const trainPtr = new Int32Array(nUsers + 1);
  const holdPtr = new Int32Array(nUsers + 1);
  const trainItems: number[] = [];
  const trainValues: number[] = [];
  const trainTimes: number[] = [];
  const heldItems: number[] = [];
  let evaluated = 0;
  for (let u = 0; u < nUsers; u++) {
    const start = log.userPtr[u]!;
    const end = log.userPtr[u + 1]!;
    const n = end - start;
    const held = new Set<number>();
    if (evaluation.holdoutFraction > 0 && n >= evaluation.minUserItems) {
      const count = Math.max(1, Math.floor(evaluation.holdoutFraction * n));
      const entries = Array.from({ length: n }, (_, k) => {
        const e = start + k;
        const itemId = log.itemIds[log.items[e]!]!;
        return { e, t: log.timestamps[e]!, hash: stableHash(log.userIds[u]!, itemId), itemId };
      });
      entries.sort((a, b) => latestFirst(a.t, b.t) || b.hash - a.hash || compareIds(b.itemId, a.itemId));
      for (const entry of entries.slice(0, count)) held.add(entry.e);
      evaluated += 1;
    }
    for (let e = start; e < end; e++) {
      if (held.has(e)) heldItems.push(log.items[e]!);
      else {
        trainItems.push(log.items[e]!);
        trainValues.push(log.values[e]!);
        trainTimes.push(log.timestamps[e]!);
      }
    }
    trainPtr[u + 1] = trainItems.length;
    holdPtr[u + 1] = heldItems.length;
  }
  return {
    train: {
      ...log,
      userPtr: trainPtr,
      items: Int32Array.from(trainItems),
      values: Float64Array.from(trainValues),
      timestamps: Float64Array.from(trainTimes),
    },
    holdOut: { userPtr: holdPtr, items: Int32Array.from(heldItems), users: evaluated },
  };
}

function latestFirst(a: number, b: number): number {
  const hasA = !Number.isNaN(a);
  const hasB = !Number.isNaN(b);
  if (hasA !== hasB) return hasA ? -1 : 1;
  return hasA ? b - a : 0;
}

/**
 * Sums of one list source's metrics over users, mergeable in any order with exact
 * results: per-user precision, recall and NDCG are added as integer nano-units (exact
 * integer sums up to 9 million users), and catalogue coverage as the set of item ids.
 */
export interface MetricSums {
  readonly hits: number;
  readonly precisionNanos: number;
  readonly recallNanos: number;
  readonly ndcgNanos: number;
  /** Distinct item ids recommended, ascending. */
  readonly items: readonly string[];
}

export interface EvaluationPartial {
  readonly topN: number;
  readonly users: number;
  readonly cf: MetricSums;
  readonly popular: MetricSums;
}

export interface EvaluationSummary {
  readonly topN: number;
  readonly users: number;
  readonly cf: Metrics;
  readonly popular: Metrics;
}

export interface Metrics {
  readonly precision: number;
  readonly recall: number;
  readonly ndcg: number;
  readonly coverage: number;
}

const NANO = 1e9;

/** Precision, recall and NDCG (binary relevance, log2 discount) of one ranked list against a user's held-out items. */
export function listMetrics(list: ArrayLike<number>, relevant: ReadonlySet<number>, topN: number) {
  let hits = 0;
  let dcg = 0;
  const length = Math.min(list.length, topN);
  for (let r = 0; r < length; r++) {
    if (relevant.has(list[r]!)) {
      hits += 1;
      dcg += 1 / Math.log2(r + 2);
    }
  }
  let ideal = 0;
  for (let r = 0; r < Math.min(relevant.size, topN); r++) ideal += 1 / Math.log2(r + 2);
  return {
    hits,
    precision: hits / topN,
    recall: relevant.size > 0 ? hits / relevant.size : 0,
    ndcg: ideal > 0 ? dcg / ideal : 0,
  };
}

/** Accumulates one shard's evaluation: feed it each evaluated user's CF and popularity lists. */
export class EvaluationAccumulator {
  private users = 0;
  private readonly sums = { cf: emptyCounter(), popular: emptyCounter() };

  constructor(
    private readonly topN: number,
    private readonly itemIds: readonly string[],
  ) {}

  add(relevant: ReadonlySet<number>, cfList: ArrayLike<number>, popularList: ArrayLike<number>): void {
    if (relevant.size === 0) return;
    this.users += 1;
    addList(this.sums.cf, cfList, relevant, this.topN);
    addList(this.sums.popular, popularList, relevant, this.topN);
  }

  partial(): EvaluationPartial {
    const out = (c: Counter): MetricSums => ({
      hits: c.hits,
      precisionNanos: c.precisionNanos,
      recallNanos: c.recallNanos,
      ndcgNanos: c.ndcgNanos,
      items: [...c.items].map((i) => this.itemIds[i]!).sort(compareIds),
    });
    return { topN: this.topN, users: this.users, cf: out(this.sums.cf), popular: out(this.sums.popular) };
  }
}

interface Counter {
  hits: number;
  precisionNanos: number;
  recallNanos: number;
  ndcgNanos: number;
  items: Set<number>;
}

function emptyCounter(): Counter {
  return { hits: 0, precisionNanos: 0, recallNanos: 0, ndcgNanos: 0, items: new Set() };
}

function addList(
  counter: Counter,
  list: ArrayLike<number>,
  relevant: ReadonlySet<number>,
  topN: number,
): void {
  const m = listMetrics(list, relevant, topN);
  counter.hits += m.hits;
  counter.precisionNanos += Math.round(m.precision * NANO);
  counter.recallNanos += Math.round(m.recall * NANO);
  counter.ndcgNanos += Math.round(m.ndcg * NANO);
  for (let r = 0; r < Math.min(list.length, topN); r++) counter.items.add(list[r]!);
}

/** Merges shard partials; the result does not depend on their order or grouping. */
export function mergeEvaluation(partials: readonly EvaluationPartial[]): EvaluationPartial {
  const topN = partials[0]?.topN ?? 0;
  const merge = (pick: (p: EvaluationPartial) => MetricSums): MetricSums => {
    const items = new Set<string>();
    let hits = 0;
    let precisionNanos = 0;
    let recallNanos = 0;
    let ndcgNanos = 0;
    for (const p of partials) {
      const s = pick(p);
      hits += s.hits;
      precisionNanos += s.precisionNanos;
      recallNanos += s.recallNanos;
      ndcgNanos += s.ndcgNanos;
      for (const item of s.items) items.add(item);
    }
    return { hits, precisionNanos, recallNanos, ndcgNanos, items: [...items].sort(compareIds) };
  };
  return {
    topN,
    users: partials.reduce((sum, p) => sum + p.users, 0),
    cf: merge((p) => p.cf),
    popular: merge((p) => p.popular),
  };
}

/** Means over evaluated users; coverage = distinct items recommended / items in the catalogue (fitted items). */
export function summarizeEvaluation(partial: EvaluationPartial, catalogueItems: number): EvaluationSummary {
  const metrics = (s: MetricSums): Metrics => {
    const per = (nanos: number) => (partial.users > 0 ? nanos / NANO / partial.users : 0);
    return {
      precision: per(s.precisionNanos),
      recall: per(s.recallNanos),
      ndcg: per(s.ndcgNanos),
      coverage: catalogueItems > 0 ? s.items.length / catalogueItems : 0,
    };
  };
  return {
    topN: partial.topN,
    users: partial.users,
    cf: metrics(partial.cf),
    popular: metrics(partial.popular),
  };
}
