import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EvaluationAccumulator,
  type EvaluationPartial,
  listMetrics,
  mergeEvaluation,
  splitHoldout,
  summarizeEvaluation,
} from '../../shared/jobs/recommend/evaluation.ts';
import { InteractionLogBuilder } from '../../shared/jobs/recommend/interaction-log.ts';
import { estimateUserWork, planNaiveShards, planWorkShards } from '../../shared/jobs/recommend/shard-plan.ts';
import { stableHash } from '../../shared/jobs/recommend/stable-hash.ts';
import { cfOver, interactions } from './recommend-support.ts';

describe('estimateUserWork', () => {
  it('sums the capped posting lengths of the items a user takes part through, plus 1', () => {
    // h held by a, b, c, d (cap 3 keeps 3 of them); x by a and b. A sampled user of h costs 1 + 3 (+ 2 with x).
    const cf = cfOver(
      interactions([
        ['a', 'h'],
        ['b', 'h'],
        ['c', 'h'],
        ['d', 'h'],
        ['a', 'x'],
        ['b', 'x'],
      ]),
      { feedback: 'implicit', similarity: 'cosine', maxItemUsers: 3 },
    );
    const work = estimateUserWork(cf.index, cf.postings);
    const h = cf.index.itemIds.indexOf('h');
    const sampled = new Set(
      cf.postings.itemUsers.subarray(cf.postings.itemPtr[h]!, cf.postings.itemPtr[h + 1]!),
    );
    const expected = cf.index.userIds.map(
      (id, u) => 1 + (sampled.has(u) ? 3 : 0) + (id === 'a' || id === 'b' ? 2 : 0),
    );
    expect(Array.from(work)).toEqual(expected);
  });
});

describe('planWorkShards', () => {
  it('puts a power user alone and balances the rest (greedy)', () => {
    const work = Float64Array.from([10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const shards = planWorkShards(work, 2, 'greedy');
    expect(shards.map((s) => Array.from(s.users))).toEqual([[0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]);
    expect(shards.map((s) => s.estimatedWork)).toEqual([10, 10]);
  });

  it('cuts contiguous ranges where the running work crosses each share', () => {
    const work = Float64Array.from([1, 1, 1, 1, 4, 1, 1, 1, 1]);
    expect(planWorkShards(work, 2, 'contiguous').map((s) => Array.from(s.users))).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
    expect(planNaiveShards(work, 3).map((s) => Array.from(s.users))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
    ]);
  });

  it('covers every user exactly once, with no empty shard, whatever the work and method', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom('greedy', 'contiguous', 'naive'),
        (raw, count, method) => {
          const work = Float64Array.from(raw);
          const shards =
            method === 'naive' ? planNaiveShards(work, count) : planWorkShards(work, count, method);
          const seen = shards.flatMap((s) => Array.from(s.users)).sort((a, b) => a - b);
          expect(seen).toEqual(raw.map((_, u) => u));
          expect(shards.length).toBe(Math.min(count, raw.length));
          for (const s of shards) expect(s.users.length).toBeGreaterThan(0);
          const total = raw.reduce((a, b) => a + b, 0);
          if (method === 'greedy') {
            // List scheduling bound: no shard exceeds the mean by more than the heaviest user.
            const max = Math.max(...shards.map((s) => s.estimatedWork));
            expect(max).toBeLessThanOrEqual(total / shards.length + Math.max(...raw));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('splitHoldout', () => {
  it('holds out the latest interactions of users with at least minUserItems', () => {
    const builder = new InteractionLogBuilder('explicit');
    const rows = interactions([
      ['a', 'i1', 5, 100],
      ['a', 'i2', 4, 500],
      ['a', 'i3', 3, 300],
      ['a', 'i4', 2, 200],
      ['a', 'i5', 1, 400],
      ['b', 'i1', 5, 100],
    ]);
    for (const row of rows) builder.add(row);
    const { log } = builder.build();
    // a has 5 items: floor(0.4 · 5) = 2 held out: i2 (t 500) and i5 (t 400). b has 1 < 2: kept whole.
    const { train, holdOut } = splitHoldout(log, { holdoutFraction: 0.4, minUserItems: 2 });
    expect(holdOut.users).toBe(1);
    expect(Array.from(holdOut.items, (i) => log.itemIds[i])).toEqual(['i2', 'i5']);
    expect(Array.from(train.items, (i) => log.itemIds[i])).toEqual(['i1', 'i3', 'i4', 'i1']);
    expect(Array.from(train.values)).toEqual([5, 3, 2, 5]);
  });

  it('orders by stableHash(user, item) when there are no timestamps', () => {
    const builder = new InteractionLogBuilder('implicit');
    for (const row of interactions([
      ['a', 'p'],
      ['a', 'q'],
      ['a', 'r'],
    ]))
      builder.add(row);
    const { log } = builder.build();
    const highest = ['p', 'q', 'r'].sort((x, y) => stableHash('a', y) - stableHash('a', x))[0];
    const { holdOut } = splitHoldout(log, { holdoutFraction: 0.2, minUserItems: 2 });
    expect(Array.from(holdOut.items, (i) => log.itemIds[i])).toEqual([highest]);
  });
});

describe('offline metrics', () => {
  it('computes precision, recall and NDCG@N by hand', () => {
    // List [a b c d] (ids 0..3), held out {b, e}: 1 hit at rank 2.
    // precision 1/4, recall 1/2, DCG 1/log2(3), IDCG 1 + 1/log2(3): NDCG 0.630930 / 1.630930 = 0.386853
    const m = listMetrics([0, 1, 2, 3], new Set([1, 4]), 4);
    expect(m).toEqual({
      hits: 1,
      precision: 0.25,
      recall: 0.5,
      ndcg: expect.closeTo(1 / Math.log2(3) / (1 + 1 / Math.log2(3)), 12),
    });
  });

  it('summarizes coverage as distinct recommended items over the catalogue', () => {
    const acc = new EvaluationAccumulator(2, ['a', 'b', 'c', 'd']);
    acc.add(new Set([0]), [0, 1], [2, 3]);
    acc.add(new Set([1]), [0, 2], [2, 3]);
    const summary = summarizeEvaluation(acc.partial(), 4);
    expect(summary.users).toBe(2);
    expect(summary.cf).toEqual({ precision: 0.25, recall: 0.5, ndcg: 0.5, coverage: 0.75 });
    expect(summary.popular).toEqual({ precision: 0, recall: 0, ndcg: 0, coverage: 0.5 });
  });

  it('merges shard partials to the same result in any order and grouping', () => {
    const ids = Array.from({ length: 30 }, (_, i) => `item-${i}`);
    const userCase = fc.record({
      relevant: fc.uniqueArray(fc.integer({ min: 0, max: 29 }), { minLength: 1, maxLength: 6 }),
      cf: fc.uniqueArray(fc.integer({ min: 0, max: 29 }), { maxLength: 10 }),
      popular: fc.uniqueArray(fc.integer({ min: 0, max: 29 }), { maxLength: 10 }),
    });
    const partialOf = (
      users: { relevant: number[]; cf: number[]; popular: number[] }[],
    ): EvaluationPartial => {
      const acc = new EvaluationAccumulator(10, ids);
      for (const u of users) acc.add(new Set(u.relevant), u.cf, u.popular);
      return acc.partial();
    };
    fc.assert(
      fc.property(
        fc.array(fc.array(userCase, { maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        fc.integer(),
        (shards, seed) => {
          const partials = shards.map(partialOf);
          const reversed = [...partials].reverse();
          const rotated = partials.map((_, k) => partials[(k + Math.abs(seed)) % partials.length]!);
          const grouped = mergeEvaluation([
            mergeEvaluation(partials.slice(0, 2)),
            mergeEvaluation(partials.slice(2)),
          ]);
          const once = mergeEvaluation(partials);
          expect(mergeEvaluation(reversed)).toEqual(once);
          expect(mergeEvaluation(rotated)).toEqual(once);
          expect(grouped).toEqual(once);
          expect(once).toEqual(partialOf(shards.flat()));
        },
      ),
      { numRuns: 200 },
    );
  });
});
