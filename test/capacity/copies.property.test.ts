import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copiesForRun, decideCopies, floorCopies, neededCopies } from '../../shared/capacity/copies.ts';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';
import { pipelineConfig } from '../core/factories.ts';

const DEFAULTS = pipelineConfig().endpoint.capacity;

const aCapacity = fc.record({
  mode: fc.constantFrom('run-scoped' as const, 'always-on' as const),
  minCopies: fc.integer({ min: 1, max: 64 }),
  maxCopies: fc.integer({ min: 1, max: 64 }),
  workPerSecondPerCopy: fc.option(fc.double({ min: 0.001, max: 1e6, noNaN: true }), { nil: undefined }),
  targetRunSeconds: fc.integer({ min: 60, max: 86_400 }),
  cooldownSeconds: fc.integer({ min: 0, max: 86_400 }),
  cooldown: fc.constantFrom('auto' as const, 'always' as const),
  warmupLimitSeconds: fc.constant(1800),
  leaseStaleSeconds: fc.constant(3600),
}) as fc.Arbitrary<CapacityConfig>;

const NOW = Date.parse('2026-03-01T12:00:00.000Z');

const aSituation = fc.record({
  capacity: aCapacity,
  liveCopies: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }),
  desiredCopies: fc.integer({ min: 0, max: 80 }),
  lastReleasedAt: fc.option(fc.integer({ min: NOW - 200_000_000, max: NOW }), { nil: undefined }),
});

describe('copiesForRun', () => {
  it('asks for 1 copy without a per-copy throughput to size by', () => {
    expect(copiesForRun(1e12, DEFAULTS)).toBe(1);
  });

  it('asks for enough copies to finish in targetRunSeconds', () => {
    const capacity = { ...DEFAULTS, workPerSecondPerCopy: 1000, targetRunSeconds: 600, maxCopies: 8 };
    expect(copiesForRun(600_000, capacity)).toBe(1);
    expect(copiesForRun(600_001, capacity)).toBe(2);
    expect(copiesForRun(3_000_000, capacity)).toBe(5);
    expect(copiesForRun(1e12, capacity)).toBe(8);
    expect(copiesForRun(0, capacity)).toBe(1);
  });

  it('always asks for between 1 and maxCopies', () => {
    fc.assert(
      fc.property(aCapacity, fc.double({ min: 0, max: 1e15, noNaN: true }), (capacity, work) => {
        const copies = copiesForRun(work, capacity);
        expect(Number.isInteger(copies)).toBe(true);
        expect(copies).toBeGreaterThanOrEqual(1);
        expect(copies).toBeLessThanOrEqual(capacity.maxCopies);
      }),
    );
  });
});

describe('decideCopies', () => {
  it('never goes below what the live leases need, nor above maxCopies', () => {
    fc.assert(
      fc.property(aSituation, (s) => {
        const { copies } = decideCopies({ ...s, now: NOW });
        const sum = s.liveCopies.reduce((a, b) => a + b, 0);
        expect(copies).toBeGreaterThanOrEqual(Math.min(s.capacity.maxCopies, sum));
        expect(copies).toBeLessThanOrEqual(s.capacity.maxCopies);
        expect(copies).toBe(Math.max(copies, neededCopies(s.capacity, s.liveCopies)));
      }),
    );
  });

  it('with no live lease, reaches 0 (run-scoped) or minCopies (always-on) once the cooldown has passed', () => {
    fc.assert(
      fc.property(aSituation, fc.integer({ min: 0, max: 10_000_000 }), (s, after) => {
        const released = s.lastReleasedAt;
        const now = (released ?? NOW) + s.capacity.cooldownSeconds * 1000 + after;
        const { copies, coolingDown } = decideCopies({ ...s, liveCopies: [], now });
        expect(coolingDown).toBe(false);
        expect(copies).toBe(floorCopies(s.capacity));
        if (s.capacity.mode === 'run-scoped') expect(copies).toBe(0);
      }),
    );
  });

  it('keeps the copies it has through the cooldown (capped at maxCopies)', () => {
    fc.assert(
      fc.property(aSituation, (s) => {
        fc.pre(s.capacity.cooldownSeconds > 0);
        const released = NOW - 1;
        const decision = decideCopies({ ...s, liveCopies: [], lastReleasedAt: released, now: NOW });
        expect(decision.coolingDown).toBe(true);
        expect(decision.copies).toBe(
          Math.max(floorCopies(s.capacity), Math.min(s.capacity.maxCopies, s.desiredCopies)),
        );
      }),
    );
  });

  it('scales a run-scoped component to 0 at once when nothing was ever released and no run holds it', () => {
    expect(
      decideCopies({
        capacity: DEFAULTS,
        liveCopies: [],
        desiredCopies: 3,
        lastReleasedAt: undefined,
        now: NOW,
      }),
    ).toEqual({ copies: 0, cooldownEndsAt: undefined, coolingDown: false });
  });
});
