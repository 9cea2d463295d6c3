import { describe, expect, it } from 'vitest';
import { simulateEndpoint } from '../../bench/simulated-day.ts';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';

const capacity: CapacityConfig = {
  mode: 'run-scoped',
  minCopies: 1,
  maxCopies: 4,
  targetRunSeconds: 100,
  cooldownSeconds: 120,
  cooldown: 'always',
  warmupLimitSeconds: 1800,
  leaseStaleSeconds: 3600,
};

describe('the simulated day’s endpoint (cooldown always)', () => {
  it('bills a run’s copy from its lease through the cold start, the work and the cooldown to the next sweep', () => {
    // 1,000 units of work at 10/s on one copy (ceil(1000 / (10 x 100)) = 1): serving at 50 s,
    // done at 150 s, cooldown to 270 s, scaled in by the sweep at 300 s.
    const day = simulateEndpoint({
      capacity,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [{ at: 0, work: 1000 }],
    });
    expect(day.runs).toEqual([
      { startedAt: 0, copies: 1, waitedSeconds: 50, finishedAt: 150, cooldown: 'always' },
    ]);
    expect(day.busySeconds).toBeCloseTo(100, 9);
    expect(day.billedSeconds).toBe(300);
    expect(day.billedToBusy).toBeCloseTo(3, 9);
  });

  it('lets a run that starts within the cooldown use the warm copy, with no second cold start', () => {
    const day = simulateEndpoint({
      capacity,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [
        { at: 0, work: 1000 },
        { at: 200, work: 1000 },
      ],
    });
    expect(day.runs[1]).toEqual({
      startedAt: 200,
      copies: 1,
      waitedSeconds: 0,
      finishedAt: 300,
      cooldown: 'always',
    });
    expect(day.coldStarts).toBe(1);
    // Released at 300 s, cooldown to 420 s, the sweep at 420 s scales in.
    expect(day.billedSeconds).toBe(420);
    expect(day.busySeconds).toBeCloseTo(200, 9);
  });

  it('asks for more copies for a bigger run, at most maxCopies, and shares the work between them', () => {
    const day = simulateEndpoint({
      capacity,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [{ at: 0, work: 10_000 }],
    });
    // ceil(10000 / 1000) = 10 copies wanted, 4 allowed: 250 s of work after the cold start.
    expect(day.runs[0]).toMatchObject({ copies: 4, finishedAt: 300 });
    expect(day.busySeconds).toBeCloseTo(1000, 9);
    // 4 copies from 0 s to the sweep at 420 s (cooldown ends at 420 s).
    expect(day.billedSeconds).toBe(4 * 420);
  });
});

describe('the simulated day’s endpoint (cooldown auto)', () => {
  const auto: CapacityConfig = { ...capacity, cooldown: 'auto' };

  it('scales a lone run to 0 at its release: no cooldown billed, no wait for the sweep', () => {
    const day = simulateEndpoint({
      capacity: auto,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [{ at: 0, work: 1000 }],
    });
    expect(day.runs).toEqual([
      { startedAt: 0, copies: 1, waitedSeconds: 50, finishedAt: 150, cooldown: 'none' },
    ]);
    // Billed from 0 s to the release at 150 s (always: to the sweep at 300 s).
    expect(day.billedSeconds).toBe(150);
  });

  it('keeps the cooldown when a schedule on the component ticks within it, so the next run finds the copy warm', () => {
    // Released at 00:02:30; a tick every minute is within 120 s.
    const day = simulateEndpoint({
      capacity: auto,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [
        { at: 0, work: 1000 },
        { at: 200, work: 1000 },
      ],
      schedules: [{ expression: 'cron(* * * * ? *)', timezone: 'UTC' }],
    });
    expect(day.runs.map((r) => [r.waitedSeconds, r.cooldown])).toEqual([
      [50, 'schedule'],
      [0, 'schedule'],
    ]);
    expect(day.coldStarts).toBe(1);
  });

  it('does not charge a second cold start to back-to-back runs once the history shows them', () => {
    // Each run: 100 s of work. Released at 150 s with no history: scaled in; the run at
    // 200 s pays a cold start and records the 50 s gap; from its release on the cooldown is
    // kept, and the runs after it find the copy warm.
    const day = simulateEndpoint({
      capacity: auto,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [
        { at: 0, work: 1000 },
        { at: 200, work: 1000 },
        { at: 400, work: 1000 },
        { at: 550, work: 1000 },
      ],
    });
    expect(day.runs.map((r) => [r.waitedSeconds, r.cooldown])).toEqual([
      [50, 'none'],
      [50, 'back-to-back'],
      [0, 'back-to-back'],
      [0, 'back-to-back'],
    ]);
    expect(day.coldStarts).toBe(2);
  });
});

describe('the simulated day’s endpoint as deployed (on demand, units retrying)', () => {
  it('raises an on-demand run’s copy at the sweep after its first unit asks, and starts the work at a unit’s next try', () => {
    // Plan at 0 s, the first unit asks at 1 s, the sweeper raises at 60 s; the copy serves at
    // 110 s; the unit tries at 1 + 30, 1 + 90, 1 + 210 s: the work starts at 211 s, done at 311 s.
    const day = simulateEndpoint({
      capacity,
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [{ at: 0, work: 1000 }],
      onDemand: true,
      tries: [30, 90, 210, 330],
    });
    expect(day.runs[0]).toMatchObject({ startedAt: 0, copies: 1, waitedSeconds: 211, finishedAt: 311 });
    // Billed from the raise (60 s) through the idle 101 s, the work and the cooldown to 431 s,
    // scaled in by the sweep at 480 s.
    expect(day.billedSeconds).toBe(480 - 60);
    expect(day.busySeconds).toBeCloseTo(100, 9);
  });

  it('finds a copy raised at plan at the first try after it serves', () => {
    const day = simulateEndpoint({
      capacity: { ...capacity, cooldown: 'auto' },
      perCopyPerSecond: 10,
      coldStartSeconds: 50,
      runs: [{ at: 0, work: 1000 }],
      tries: [30, 90],
    });
    // Serving at 50 s, found at 91 s, done at 191 s; no cooldown kept (auto, no schedule).
    expect(day.runs[0]).toMatchObject({ waitedSeconds: 91, finishedAt: 191, cooldown: 'none' });
    expect(day.billedSeconds).toBe(191);
  });
});
