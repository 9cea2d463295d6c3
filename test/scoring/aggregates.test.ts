import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../events/generate-samples.ts';
import { fitBetaPrior, rateMap, WEAK_PRIOR_STRENGTH } from '../../shared/scoring/aggregates/beta-prior.ts';
import {
  finalizeSegments,
  OTHER_SEGMENT,
  positiveOf,
  type SegmentAggregatesState,
  SegmentAggregator,
  segmentSalt,
  segmentValuesOf,
} from '../../shared/scoring/aggregates/segment-aggregates.ts';

interface Row {
  region: string;
  score: number;
  outcome: boolean | undefined;
}

const aggregate = (rows: Row[]) => {
  const agg = new SegmentAggregator({ segmentColumns: ['region'] });
  for (const r of rows) agg.add([r.region], r.score, r.outcome);
  return agg;
};

/** A Beta(a, b) draw from a seeded uniform source (Johnk's method for a, b < 1 is not needed here). */
function betaDraw(rand: () => number, a: number, b: number): number {
  const gamma = (shape: number): number => {
    // Marsaglia-Tsang for shape >= 1.
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const u1 = 1 - rand();
      const u2 = rand();
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      const v = (1 + c * z) ** 3;
      if (v > 0 && Math.log(1 - rand()) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
    }
  };
  const x = gamma(a);
  return x / (x + gamma(b));
}

describe('fitBetaPrior', () => {
  it('recovers the prior that generated the segment rates', () => {
    const rand = seededRandom(7);
    const counts = Array.from({ length: 400 }, () => {
      const p = betaDraw(rand, 2, 8);
      const trials = 40;
      let positives = 0;
      for (let i = 0; i < trials; i += 1) if (rand() < p) positives += 1;
      return { positives, trials };
    });
    const prior = fitBetaPrior(counts);
    expect(prior.method).toBe('moments');
    expect(prior.alpha / (prior.alpha + prior.beta)).toBeCloseTo(0.2, 1);
    // True strength 10; the moment estimate is noisy but of the right size.
    expect(prior.alpha + prior.beta).toBeGreaterThan(6);
    expect(prior.alpha + prior.beta).toBeLessThan(16);
  });

  it('falls back to a weak prior at the smoothed pooled rate when there are too few segments', () => {
    const prior = fitBetaPrior([
      { positives: 1, trials: 10 },
      { positives: 0, trials: 3 },
    ]);
    expect(prior.method).toBe('weak');
    expect(prior.alpha + prior.beta).toBe(WEAK_PRIOR_STRENGTH);
    expect(prior.alpha / (prior.alpha + prior.beta)).toBeCloseTo(2 / 15, 12);
    expect(fitBetaPrior([])).toMatchObject({ alpha: 1, beta: 1, method: 'weak', segments: 0 });
  });

  it('shrinks all the way to the pooled rate when segments differ no more than noise', () => {
    const counts = Array.from({ length: 10 }, () => ({ positives: 5, trials: 50 }));
    const prior = fitBetaPrior(counts);
    expect(prior.alpha + prior.beta).toBe(500);
    expect(rateMap({ positives: 0, trials: 2 }, prior)).toBeCloseTo(50 / 502, 12);
  });
});

describe('segment aggregates', () => {
  const rand = seededRandom(3);
  const rows: Row[] = [];
  for (let s = 0; s < 20; s += 1) {
    for (let i = 0; i < 100; i += 1)
      rows.push({ region: `big-${s}`, score: rand(), outcome: rand() < 0.1 + s / 100 });
  }
  rows.push({ region: 'tiny-none', score: 0.2, outcome: false });
  rows.push({ region: 'tiny-none', score: 0.3, outcome: false });
  rows.push({ region: 'tiny-all', score: 0.9, outcome: true });
  rows.push({ region: 'unknown-outcome', score: 0.5, outcome: undefined });

  const { prior, segments } = finalizeSegments(aggregate(rows));
  const byRegion = new Map(segments.map((s) => [s.segment.region, s]));

  it('does not report tiny segments as 0% or 100% under MAP, while MLE does', () => {
    const none = byRegion.get('tiny-none')!;
    const all = byRegion.get('tiny-all')!;
    expect(prior.method).toBe('moments');
    expect(none.rateMle).toBe(0);
    expect(all.rateMle).toBe(1);
    const pooled = prior.alpha / (prior.alpha + prior.beta);
    expect(none.rateMap).toBeGreaterThan(0);
    expect(none.rateMap).toBeLessThan(pooled);
    expect(all.rateMap).toBeLessThan(1);
    expect(all.rateMap).toBeGreaterThan(pooled);
  });

  it('barely moves the rate of big segments', () => {
    for (const s of segments.filter((x) => x.segment.region?.startsWith('big-'))) {
      expect(Math.abs(s.rateMap - s.rateMle!)).toBeLessThan(0.05);
    }
  });

  it('reports count, mean and quantiles of the score', () => {
    const none = byRegion.get('tiny-none')!;
    expect(none.count).toBe(2);
    expect(none.scoreMean).toBeCloseTo(0.25, 12);
    expect(none.scoreQuantiles.p50).toBeCloseTo(0.2, 2);
    expect(Object.keys(none.scoreQuantiles)).toEqual(['p10', 'p50', 'p90']);
    const unknown = byRegion.get('unknown-outcome')!;
    expect(unknown).toMatchObject({ trials: 0, positives: 0, rateMle: null });
    expect(unknown.rateMap).toBeCloseTo(prior.alpha / (prior.alpha + prior.beta), 12);
  });

  it('merges partials associatively and in any order, with salted parts of a hot segment', () => {
    const rowArb = fc.record({
      region: fc.constantFrom('a', 'b', 'hot'),
      score: fc.double({ min: 0, max: 1, noNaN: true }),
      outcome: fc.option(fc.boolean(), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(rowArb), fc.array(rowArb), fc.array(rowArb), (x, y, z) => {
        const [a, b, c] = [x, y, z].map((part) => aggregate(part).toJSON());
        const left = SegmentAggregator.fromJSON(a!).merge(b!).merge(c!).toJSON();
        const right = SegmentAggregator.fromJSON(a!).merge(SegmentAggregator.fromJSON(b!).merge(c!)).toJSON();
        const swapped = SegmentAggregator.fromJSON(c!).merge(a!).merge(b!).toJSON();
        const whole = aggregate([...x, ...y, ...z]).toJSON();
        for (const other of [right, swapped, whole]) expectSameAggregates(left, other);
      }),
    );
  });

  it('keeps memory bounded: past maxSegments, new segments go to __other__', () => {
    const agg = new SegmentAggregator({ segmentColumns: ['id'], maxSegments: 3, quantiles: false });
    for (let i = 0; i < 10; i += 1) agg.add([`s${i}`], 0.5, true);
    const state = agg.toJSON();
    expect(agg.size).toBe(4);
    expect(state.segments.find((s) => s.segment[0] === OTHER_SEGMENT)?.count).toBe(7);
    expect(state.segments.every((s) => s.sketch === null)).toBe(true);
  });

  it('refuses to merge aggregates over other segment columns', () => {
    const other = new SegmentAggregator({ segmentColumns: ['country'] });
    expect(() => aggregate([]).merge(other)).toThrow(/cannot merge aggregates over \["country"\]/);
  });
});

function expectSameAggregates(a: SegmentAggregatesState, b: SegmentAggregatesState): void {
  expect(b.segments.map((s) => s.segment)).toEqual(a.segments.map((s) => s.segment));
  a.segments.forEach((sa, i) => {
    const sb = b.segments[i]!;
    expect([sb.count, sb.trials, sb.positives, sb.score.count]).toEqual([
      sa.count,
      sa.trials,
      sa.positives,
      sa.score.count,
    ]);
    // Bins add exactly; float moments agree to rounding.
    expect(sb.sketch).toEqual(sa.sketch);
    expect(Math.abs(sb.score.mean - sa.score.mean)).toBeLessThan(1e-12);
    expect(Math.abs(sb.score.m2 - sa.score.m2)).toBeLessThan(1e-9);
  });
}

describe('segment helpers', () => {
  it('reads segment values as text, null when missing', () => {
    expect(segmentValuesOf({ a: 'x', b: 3, c: '', d: null }, ['a', 'b', 'c', 'd', 'e'])).toEqual([
      'x',
      '3',
      null,
      null,
      null,
    ]);
  });

  it('reads the outcome column, or the score against a threshold', () => {
    expect(positiveOf({ y: '1' }, 0, { outcomeColumn: 'y' })).toBe(true);
    expect(positiveOf({ y: 'No' }, 0, { outcomeColumn: 'y' })).toBe(false);
    expect(positiveOf({ y: 0.5 }, 0, { outcomeColumn: 'y' })).toBeUndefined();
    expect(positiveOf({}, 0.7, { threshold: 0.5 })).toBe(true);
    expect(positiveOf({}, 0.7, {})).toBeUndefined();
  });

  it('salts a unit into a stable bucket', () => {
    expect(segmentSalt('u-0001', 8)).toBe(segmentSalt('u-0001', 8));
    expect(new Set(Array.from({ length: 64 }, (_, i) => segmentSalt(`u-${i}`, 8))).size).toBe(8);
  });
});
