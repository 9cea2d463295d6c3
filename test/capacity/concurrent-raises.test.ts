import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { neededCopies } from '../../shared/capacity/copies.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import {
  acquireRunCapacity,
  type CapacityAcquired,
  type ScaledIn,
  scaleInAtRelease,
} from '../../shared/capacity/run-capacity.ts';
import { type ComponentSweep, sweepCapacity } from '../../shared/capacity/sweep.ts';
import {
  decideWorkers,
  raiseWorkers,
  sweepWorkers,
  type WorkerScaling,
  type WorkersRaised,
  type WorkersSweep,
  workerScalingOf,
} from '../../shared/capacity/workers.ts';
import { pipelineConfig } from '../core/factories.ts';
import { MemoryWorkerConcurrency } from '../support/memory-worker-concurrency.ts';
import { aRunWithUnits, aSummary } from '../support/run-fixtures.ts';
import { Actor, gated } from './interleaving.ts';

const T0 = Date.parse('2026-12-07T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

// Two workers per copy, so the limit a lease set needs is easy to read: 2 x the copies.
const docs = pipelineConfig({
  endpoint: {
    name: 'embed',
    dimension: 16,
    capacity: {
      maxCopies: 16,
      workersPerCopy: 2,
      // A run of N x 60 units of work asks for N copies.
      workPerSecondPerCopy: 1,
      targetRunSeconds: 60,
      cooldown: 'always',
      cooldownSeconds: 300,
    },
  },
  workers: { maxConcurrency: 64 },
});
const embed = pipelineCapacityOf(docs)!;
const component = embed.componentName;

describe('concurrent raises of run-scoped capacity (issue 14)', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let runs: LocalRunStore;
  let control: LocalCapacityControl;
  let limit: MemoryWorkerConcurrency;
  let scaling: WorkerScaling;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-concurrent-raises-'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
    control = new LocalCapacityControl();
    limit = new MemoryWorkerConcurrency(2);
    scaling = workerScalingOf(limit, [docs], [embed]);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A running run holding a lease of `copies` (what plan leaves once its lease is taken). */
  async function aLease(copies: number, takenAt = 0): Promise<string> {
    const { run, units } = aRunWithUnits(2, { startedAt: iso(takenAt) });
    await runs.createRun(run, units);
    await leases.take({ runId: run.runId, component, copies, takenAt: iso(takenAt) });
    return run.runId;
  }

  /** A run that finished and released its lease at `seconds` (as finalize leaves it). */
  async function aReleasedLease(copies: number, seconds: number): Promise<void> {
    const { run, units } = aRunWithUnits(2, { startedAt: iso(0) });
    await runs.createRun(run, units);
    await leases.take({ runId: run.runId, component, copies, takenAt: iso(0) });
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(seconds) });
    await leases.release(component, run.runId, iso(seconds), 'finalize');
  }

  /** What every unreleased lease needs: the limit and copies must never end below these. */
  async function needs(): Promise<{ workers: number; copies: number }> {
    const held = (await leases.list(component))
      .filter((l) => l.releasedAt === undefined)
      .map((l) => l.copies);
    return {
      workers: decideWorkers({
        components: [{ capacity: embed.capacity, liveCopies: held }],
        workerLeases: [],
        ceiling: scaling.ceiling,
      }),
      copies: neededCopies(embed.capacity, held),
    };
  }

  /** The workers step of a plan whose lease is taken, its port calls parked by `actor`. */
  const planWorkers = (actor: Actor) =>
    actor.start(() => raiseWorkers(gated(actor, leases), { ...scaling, concurrency: gated(actor, limit) }));

  /** A whole plan step (lease, copies, workers), its port calls parked by `actor`. */
  const plan = (actor: Actor, runId: string, copies: number, withWorkers = false) =>
    actor.start(() =>
      acquireRunCapacity(
        {
          leases: gated(actor, leases),
          control: gated(actor, control),
          ...(withWorkers ? { workers: { ...scaling, concurrency: gated(actor, limit) } } : {}),
        },
        embed,
        runId,
        copies * 60,
        at(0),
      ),
    );

  /** The sweeper's component sweep, its port calls parked by `actor`. */
  const sweeper = (actor: Actor, now: Date) =>
    actor.start(() =>
      sweepCapacity(
        { leases: gated(actor, leases), control: gated(actor, control), runs: gated(actor, runs) },
        [embed],
        now,
      ),
    );

  describe('the work event source limit', () => {
    it('two plans: the stale lower set of the first is raised again to what both leases need', async () => {
      // Plan 1 reads the limit (2) and the leases {L1: 4 copies -> 8 workers}, then stalls.
      await aLease(4);
      const p1 = new Actor('plan 1');
      const first = planWorkers(p1);
      await p1.runUntil('set');
      // Plan 2 takes L2, reads {L1, L2} (16 workers) and sets 16 before plan 1's set lands.
      await aLease(4);
      const p2 = new Actor('plan 2');
      planWorkers(p2);
      expect(await p2.finish<WorkersRaised>()).toEqual({ before: 2, raisedTo: 16 });
      expect(limit.maximum).toBe(16);
      // Plan 1's set of 8 lands: the limit is below both leases until plan 1 checks its set.
      await p1.step('set');
      expect(limit.maximum).toBe(8);
      expect(await p1.finish<WorkersRaised>()).toEqual({ before: 2, raisedTo: 16, raisedAgain: 1 });
      await first;
      expect(limit.sets).toEqual([16, 8, 16]);
      expect(limit.maximum).toBe((await needs()).workers);
    });

    it('three plans, two stale sets landing in turn: the limit ends at what all three need', async () => {
      await aLease(2);
      const p1 = new Actor('plan 1');
      planWorkers(p1);
      await p1.runUntil('set'); // will set 4 ({L1})
      await aLease(2);
      const p2 = new Actor('plan 2');
      planWorkers(p2);
      await p2.runUntil('set'); // will set 8 ({L1, L2})
      await aLease(2);
      const p3 = new Actor('plan 3');
      planWorkers(p3);
      await p3.finish(); // sets 12 ({L1, L2, L3}) and checks it
      await p2.step('set'); // 8 lands
      await p1.step('set'); // 4 lands
      await p2.finish(); // its check finds 4 < 12: sets 12
      await p1.finish(); // its check finds 12: done
      expect(limit.maximum).toBe(12);
      expect(limit.maximum).toBe((await needs()).workers);
    });

    it('a sweeper lowering after its second look: a plan that found the old limit enough is raised back', async () => {
      // A run finished; its lease is released; the limit it needed (8) is still set.
      await aReleasedLease(4, 50);
      limit.maximum = 8;
      const sw = new Actor('sweeper');
      const result = sw.start(() =>
        sweepWorkers(
          { leases: gated(sw, leases), runs: gated(sw, runs) },
          { ...scaling, concurrency: gated(sw, limit) },
          [{ component, liveCopies: [] }],
          at(60),
        ),
      );
      await sw.runUntil('set'); // read the leases again: none held, so it lowers to 2
      // A plan takes a 4-copy lease and finds the limit (8) enough: it sets nothing.
      await aLease(4, 61);
      const p = new Actor('plan');
      planWorkers(p);
      expect(await p.finish<WorkersRaised>()).toEqual({ before: 8 });
      await sw.step('set');
      expect(limit.maximum).toBe(2);
      const swept = await sw.finish<WorkersSweep>();
      await result;
      expect(swept).toMatchObject({ set: { workers: 2 }, recheck: { before: 2, raisedTo: 8 } });
      expect(swept.error).toBeUndefined();
      expect(limit.maximum).toBe((await needs()).workers);
    });

    it("a sweeper raise that lands after a plan's higher raise is raised again", async () => {
      await aLease(2);
      const sw = new Actor('sweeper');
      sw.start(() =>
        sweepWorkers(
          { leases: gated(sw, leases), runs: gated(sw, runs) },
          { ...scaling, concurrency: gated(sw, limit) },
          [{ component, liveCopies: [2] }],
          at(30),
        ),
      );
      await sw.runUntil('set'); // will set 4 for the live lease it knows
      await aLease(3, 31);
      const p = new Actor('plan');
      planWorkers(p);
      await p.finish(); // sets 10
      await sw.step('set'); // 4 lands
      await sw.finish();
      expect(limit.maximum).toBe(10);
    });

    it('a whole plan (lease, copies, workers) racing another plan keeps both needs', async () => {
      const { run: r1, units: u1 } = aRunWithUnits(1);
      const { run: r2, units: u2 } = aRunWithUnits(1);
      await runs.createRun(r1, u1);
      await runs.createRun(r2, u2);
      const p1 = new Actor('plan 1');
      plan(p1, r1.runId, 3, true);
      await p1.runUntil('set'); // copies raised to 3, workers about to be set to 6
      const p2 = new Actor('plan 2');
      plan(p2, r2.runId, 5, true);
      await p2.finish(); // copies 8, workers 16
      await p1.finish<CapacityAcquired>();
      expect(limit.maximum).toBe(16);
      expect((await control.describe(component)).desiredCopies).toBe(8);
    });
  });

  describe('the copies of an inference component', () => {
    it('two plans: the stale lower copy count of the first is raised again', async () => {
      const p1 = new Actor('plan 1');
      const first = plan(p1, 'r-1', 2);
      await p1.runUntil('setCopies'); // will ask for 2 ({L1})
      const p2 = new Actor('plan 2');
      plan(p2, 'r-2', 3);
      expect(await p2.finish<CapacityAcquired>()).toMatchObject({ raisedTo: 5 });
      await p1.step('setCopies');
      expect((await control.describe(component)).desiredCopies).toBe(2);
      const acquired = await p1.finish<CapacityAcquired>();
      await first;
      expect(acquired).toMatchObject({ raisedTo: 5, raisedAgain: 1 });
      expect(control.requests.map((r) => r.copies)).toEqual([5, 2, 5]);
      expect((await control.describe(component)).desiredCopies).toBe((await needs()).copies);
    });

    it("finalize's scale-in lands after a plan found the copies up: the copies come back", async () => {
      await control.setCopies(component, 2);
      await aReleasedLease(2, 100);
      const fin = new Actor('finalize');
      fin.start(() => scaleInAtRelease({ leases: gated(fin, leases), control: gated(fin, control) }, embed));
      await fin.runUntil('setCopies'); // both looks found no lease held: will set 0
      const p = new Actor('plan');
      plan(p, 'r-new', 1);
      expect(await p.finish<CapacityAcquired>()).not.toHaveProperty('raisedTo'); // 2 copies were enough
      await fin.step('setCopies');
      expect((await control.describe(component)).desiredCopies).toBe(0);
      expect(await fin.finish<ScaledIn>()).toEqual({ copies: 0, raisedAgainTo: 1 });
      expect((await control.describe(component)).desiredCopies).toBe((await needs()).copies);
    });

    it('a component busy with the scale-in refuses the raise back: finalize reports it for the sweeper', async () => {
      await control.setCopies(component, 2);
      await aReleasedLease(2, 100);
      // As SageMaker: a component still Updating (the scale-in) refuses the next change.
      let updating = false;
      const busyAfterSet = {
        describe: (name: string) => control.describe(name),
        setCopies: async (name: string, copies: number) => {
          if (updating) return { applied: false as const, reason: 'inference component is being updated' };
          updating = true;
          return control.setCopies(name, copies);
        },
      };
      const fin = new Actor('finalize');
      fin.start(() =>
        scaleInAtRelease({ leases: gated(fin, leases), control: gated(fin, busyAfterSet) }, embed),
      );
      await fin.runUntil('setCopies');
      await aLease(1, 101);
      await fin.step('setCopies');
      expect(await fin.finish<ScaledIn>()).toEqual({
        copies: 0,
        raiseDeferred: expect.stringMatching(
          /^the inference component is busy .*: inference component is being updated; the capacity sweeper raises the copies$/,
        ),
      });
    });

    it("the sweeper's scale-in after the cooldown lands after a plan found the copies up: the copies come back", async () => {
      await control.setCopies(component, 2);
      await aReleasedLease(2, 100);
      const sw = new Actor('sweeper');
      sweeper(sw, at(100 + 300 + 1));
      await sw.runUntil('setCopies'); // cooldown over, no lease: will set 0
      const p = new Actor('plan');
      plan(p, 'r-new', 1);
      await p.finish();
      await sw.step('setCopies');
      const [swept] = await sw.finish<ComponentSweep[]>();
      expect(swept).toMatchObject({ set: { copies: 0 }, recheck: { raisedTo: 1 } });
      expect((await control.describe(component)).desiredCopies).toBe(1);
    });

    it("a sweeper raise that lands after a plan's higher raise is raised again", async () => {
      await aLease(1);
      const sw = new Actor('sweeper');
      sweeper(sw, at(30));
      await sw.runUntil('setCopies'); // will set 1 for the lease it saw
      const p = new Actor('plan');
      plan(p, 'r-2', 2);
      await p.finish(); // raises to 3
      await sw.step('setCopies'); // 1 lands
      await sw.finish();
      expect((await control.describe(component)).desiredCopies).toBe(3);
    });
  });

  describe('any interleaving', () => {
    /** Runs the actors, stepping the one `schedule` picks among those not finished, until all finish. */
    async function interleave(actors: readonly Actor[], schedule: readonly number[]): Promise<void> {
      let turn = 0;
      for (;;) {
        const waiting: Actor[] = [];
        for (const actor of actors) if (!(await actor.done())) waiting.push(actor);
        if (waiting.length === 0) return;
        const actor = waiting[(schedule[turn % schedule.length] ?? 0) % waiting.length]!;
        turn += 1;
        const call = await actor.at();
        if (call !== undefined) await actor.step(call);
      }
    }

    it('plans, a sweeper and finalize never leave the limit or the copies below what the unreleased leases need', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 3 }),
          fc.boolean(),
          fc.array(fc.nat({ max: 5 }), { minLength: 30, maxLength: 60 }),
          async (planCopies, withFinalize, schedule) => {
            const home = await mkdtemp(path.join(dir, 'run-'));
            leases = new LocalCapacityLeases(path.join(home, 'capacity'));
            runs = new LocalRunStore(path.join(home, 'runs'));
            control = new LocalCapacityControl();
            limit = new MemoryWorkerConcurrency(2);
            scaling = workerScalingOf(limit, [docs], [embed]);
            // A run that finished before: its copies and workers are still up, its lease released.
            await aReleasedLease(2, 10);
            await control.setCopies(component, 2);
            limit.maximum = 4;

            const actors: Actor[] = [];
            const results: Promise<unknown>[] = [];
            for (const [i, copies] of planCopies.entries()) {
              const { run, units } = aRunWithUnits(1, { startedAt: iso(20) });
              await runs.createRun(run, units);
              const actor = new Actor(`plan ${i + 1}`);
              actors.push(actor);
              results.push(plan(actor, run.runId, copies, true));
            }
            const sw = new Actor('sweeper');
            actors.push(sw);
            results.push(
              sw.start(async () => {
                const components = await sweepCapacity(
                  { leases: gated(sw, leases), control: gated(sw, control), runs: gated(sw, runs) },
                  [embed],
                  at(10 + 300 + 1),
                );
                return sweepWorkers(
                  { leases: gated(sw, leases), runs: gated(sw, runs) },
                  { ...scaling, concurrency: gated(sw, limit) },
                  components,
                  at(10 + 300 + 1),
                );
              }),
            );
            if (withFinalize) {
              const fin = new Actor('finalize');
              actors.push(fin);
              results.push(
                fin.start(() =>
                  scaleInAtRelease({ leases: gated(fin, leases), control: gated(fin, control) }, embed),
                ),
              );
            }
            await interleave(actors, schedule);
            const outcomes = await Promise.all(results);
            // Nothing was deferred for the sweeper to finish: every writer settled it itself.
            expect(JSON.stringify(outcomes)).not.toMatch(/deferred|error/);
            const need = await needs();
            expect((await control.describe(component)).desiredCopies).toBeGreaterThanOrEqual(need.copies);
            expect(limit.maximum).toBeGreaterThanOrEqual(need.workers);
          },
        ),
        { numRuns: 50, seed: 14 },
      );
    });
  });
});
