import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeavyHitters } from '../../shared/scoring/stats/heavy-hitters.ts';
import { Moments } from '../../shared/scoring/stats/moments.ts';
import { QuantileSketch } from '../../shared/scoring/stats/quantile-sketch.ts';

/** Cuts `values` into consecutive parts at the given (sorted, deduplicated) positions. */
function splitAt<T>(values: T[], cuts: number[]): T[][] {
  const positions = [...new Set(cuts.map((c) => c % (values.length + 1)))].sort((a, b) => a - b);
  const parts: T[][] = [];
  let start = 0;
  for (const p of [...positions, values.length]) {
    parts.push(values.slice(start, p));
    start = p;
  }
  return parts;
}

/** Merges parts in a shape chosen by `order`: left fold, right fold or pairwise tree. */
function mergeAll<S>(parts: S[], merge: (a: S, b: S) => S, order: number): S {
  if (order === 0) return parts.reduce((a, b) => merge(a, b));
  if (order === 1) return parts.reduceRight((a, b) => merge(b, a));
  let level = parts;
  while (level.length > 1) {
    const next: S[] = [];
    for (let i = 0; i < level.length; i += 2)
      next.push(i + 1 < level.length ? merge(level[i]!, level[i + 1]!) : level[i]!);
    level = next;
  }
  return level[0]!;
}

const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true });
const closeTo = (a: number, b: number, rel = 1e-9) =>
  Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));

describe('Moments', () => {
  it('fitting any split and merging in any order equals fitting the whole', () => {
    fc.assert(
      fc.property(
        fc.array(finite, { minLength: 1, maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 0, max: 2 }),
        (values, cuts, order) => {
          const whole = new Moments();
          for (const v of values) whole.add(v);
          const parts = splitAt(values, cuts).map((part) => {
            const m = new Moments();
            for (const v of part) m.add(v);
            return m;
          });
          const merged = mergeAll(parts, (a, b) => Moments.fromJSON(a.toJSON()).merge(b.toJSON()), order);
          expect(merged.count).toBe(whole.count);
          expect(merged.min).toBe(whole.min);
          expect(merged.max).toBe(whole.max);
          expect(closeTo(merged.mean, whole.mean)).toBe(true);
          expect(closeTo(merged.variance, whole.variance, 1e-7)).toBe(true);
        },
      ),
    );
  });

  it('stays accurate for large values with a small spread, where sums of squares cancel', () => {
    const m = new Moments();
    for (const v of [1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16]) m.add(v);
    expect(m.mean).toBe(1e9 + 10);
    expect(m.variance).toBe(22.5);
  });

  it('is empty-safe and survives JSON', () => {
    const m = new Moments();
    expect(m.variance).toBe(0);
    m.add(3);
    expect(JSON.parse(JSON.stringify(m))).toEqual({ count: 1, mean: 3, m2: 0, min: 3, max: 3 });
  });
});

describe('QuantileSketch', () => {
  const exactQuantile = (sorted: number[], q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;

  it('answers every quantile within its relative accuracy of the exact value', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(finite, fc.double({ min: 1e-6, max: 10, noNaN: true }), fc.constant(0)), {
          minLength: 1,
          maxLength: 300,
        }),
        fc.constantFrom(0.01, 0.001),
        (values, accuracy) => {
          const sketch = new QuantileSketch({ relativeAccuracy: accuracy });
          for (const v of values) sketch.add(v);
          const sorted = [...values].sort((a, b) => a - b);
          for (const q of [0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1]) {
            const exact = exactQuantile(sorted, q);
            const estimate = sketch.quantile(q);
            if (Math.abs(exact) < 1e-9) expect(estimate).toBe(0);
            else
              expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(accuracy * Math.abs(exact) * (1 + 1e-9));
          }
        },
      ),
    );
  });

  it('merges any split into exactly the sketch of the whole', () => {
    fc.assert(
      fc.property(
        fc.array(finite, { minLength: 1, maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 0, max: 2 }),
        (values, cuts, order) => {
          const whole = new QuantileSketch();
          for (const v of values) whole.add(v);
          const parts = splitAt(values, cuts).map((part) => {
            const s = new QuantileSketch();
            for (const v of part) s.add(v);
            return s;
          });
          const merged = mergeAll(
            parts,
            (a, b) => QuantileSketch.fromJSON(a.toJSON()).merge(b.toJSON()),
            order,
          );
          expect(merged.toJSON()).toEqual(whole.toJSON());
        },
      ),
    );
  });

  it('keeps memory bounded by folding the smallest magnitudes, and still answers high quantiles', () => {
    const sketch = new QuantileSketch({ relativeAccuracy: 0.01, maxBins: 64 });
    const values = Array.from({ length: 5000 }, (_, i) => 10 ** (i / 500 - 4));
    for (const v of values) sketch.add(v);
    expect(sketch.binCount).toBeLessThanOrEqual(64);
    const exact = exactQuantile(values, 0.99);
    expect(Math.abs(sketch.quantile(0.99) - exact)).toBeLessThanOrEqual(0.01 * exact * (1 + 1e-9));
  });

  it('ignores non-finite values and is NaN when empty', () => {
    const sketch = new QuantileSketch();
    expect(sketch.quantile(0.5)).toBeNaN();
    sketch.add(Number.NaN);
    sketch.add(Number.POSITIVE_INFINITY);
    expect(sketch.count).toBe(0);
    expect(() => new QuantileSketch().merge(new QuantileSketch({ relativeAccuracy: 0.02 }))).toThrow(
      /cannot merge/,
    );
  });
});

describe('HeavyHitters', () => {
  const items = fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'), {
    minLength: 1,
    maxLength: 300,
  });

  it('merges any split into exactly the summary of the whole while distinct items fit', () => {
    fc.assert(
      fc.property(
        items,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 0, max: 2 }),
        (values, cuts, order) => {
          const whole = new HeavyHitters(8);
          for (const v of values) whole.add(v);
          const parts = splitAt(values, cuts).map((part) => {
            const h = new HeavyHitters(8);
            for (const v of part) h.add(v);
            return h;
          });
          const merged = mergeAll(
            parts,
            (a, b) => HeavyHitters.fromJSON(a.toJSON()).merge(b.toJSON()),
            order,
          );
          expect(merged.toJSON()).toEqual(whole.toJSON());
        },
      ),
    );
  });

  it('never undercounts by more than its bound, and the bound is at most total / (capacity + 1)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        (raw, cuts) => {
          // Skewed: small numbers are frequent.
          const values = raw.map((n) => `c${Math.floor((n * n) / 60)}`);
          const parts = splitAt(values, cuts).map((part) => {
            const h = new HeavyHitters(3);
            for (const v of part) h.add(v);
            return h;
          });
          const merged = parts.reduce((a, b) => a.merge(b));
          const truth = new Map<string, number>();
          for (const v of values) truth.set(v, (truth.get(v) ?? 0) + 1);
          const estimate = new Map(merged.entries());
          expect(merged.size).toBeLessThanOrEqual(6);
          expect(merged.maxUndercount).toBeLessThanOrEqual(values.length / 4);
          for (const [item, count] of truth) {
            const e = estimate.get(item) ?? 0;
            expect(e).toBeLessThanOrEqual(count);
            expect(count - e).toBeLessThanOrEqual(merged.maxUndercount);
          }
        },
      ),
    );
  });

  it('orders by count, then by item, so top-K is deterministic', () => {
    const h = new HeavyHitters(10);
    for (const v of ['b', 'a', 'c', 'c', 'b', 'd']) h.add(v);
    expect(h.top(3)).toEqual([
      ['b', 2],
      ['c', 2],
      ['a', 1],
    ]);
    expect(h.top(10, 2).map(([item]) => item)).toEqual(['b', 'c']);
  });
});
