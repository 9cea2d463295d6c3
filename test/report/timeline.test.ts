import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ratesOverTime, type TimedSpan, workerLanes } from '../../shared/report/timeline.ts';

const span = fc
  .record({
    start: fc.integer({ min: 0, max: 100_000 }),
    length: fc.integer({ min: 0, max: 20_000 }),
    worker: fc.integer({ min: 1, max: 4 }),
  })
  .map(({ start, length, worker }) => ({ start, end: start + length, worker }));

describe('workerLanes', () => {
  it('never puts two spans that overlap in one row, and gives each worker rows of its own', () => {
    fc.assert(
      fc.property(fc.array(span, { maxLength: 60 }), (raw) => {
        const spans: TimedSpan[] = raw.map((s, i) => ({ ...s, unitId: `u${i}` }));
        const { spans: placed, labels } = workerLanes(spans);
        expect(placed).toHaveLength(spans.length);
        const workerOfLane = new Map<number, number>();
        for (const s of placed) {
          expect(s.lane).toBeGreaterThanOrEqual(0);
          expect(s.lane).toBeLessThan(labels.length);
          expect(workerOfLane.get(s.lane) ?? s.worker).toBe(s.worker);
          workerOfLane.set(s.lane, s.worker);
        }
        for (const a of placed)
          for (const b of placed)
            if (a !== b && a.lane === b.lane) expect(a.end <= b.start || b.end <= a.start).toBe(true);
      }),
    );
  });

  it('labels a worker by the order it first started, with one row per unit it ran at once', () => {
    const { spans, labels } = workerLanes([
      { unitId: 'a', start: 0, end: 10, worker: 77 },
      { unitId: 'b', start: 5, end: 15, worker: 77 },
      { unitId: 'c', start: 1, end: 4, worker: 12 },
      { unitId: 'd', start: 12, end: 20, worker: 77 },
    ]);
    expect(labels).toEqual(['w1·1', 'w1·2', 'w2']);
    expect(Object.fromEntries(spans.map((s) => [s.unitId, s.lane]))).toEqual({ a: 0, b: 1, c: 2, d: 0 });
  });
});

describe('ratesOverTime', () => {
  it('keeps every unit’s amounts: rates times the bin width add up to the totals', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ s: span, records: fc.integer({ min: 0, max: 5000 }), tokens: fc.nat(1e6) }), {
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 90 }),
        (units, bins) => {
          const series = ratesOverTime(
            units.map((u) => ({ start: u.s.start, end: u.s.end, amounts: [u.records, u.tokens] })),
            2,
            bins,
          );
          for (const [m, total] of [
            [0, units.reduce((sum, u) => sum + u.records, 0)],
            [1, units.reduce((sum, u) => sum + u.tokens, 0)],
          ] as const) {
            const drawn = series.rates[m]!.reduce((sum, r) => sum + r * series.binSeconds, 0);
            expect(Math.abs(drawn - total)).toBeLessThanOrEqual(1e-6 * Math.max(1, total));
          }
          for (const series0 of series.rates) for (const r of series0) expect(r).toBeGreaterThanOrEqual(0);
        },
      ),
    );
  });

  it('spreads a unit evenly over the bins it spans', () => {
    // 2 s cut in 4 bins of 0.5 s; a unit of 100 records from 0.5 s to 1.5 s.
    const series = ratesOverTime(
      [
        { start: 500, end: 1500, amounts: [100] },
        { start: 0, end: 2000, amounts: [0] },
      ],
      1,
      4,
    );
    expect(series.binSeconds).toBe(0.5);
    expect(series.at).toEqual([0.25, 0.75, 1.25, 1.75]);
    expect(series.rates[0]).toEqual([0, 100, 100, 0]);
  });
});
