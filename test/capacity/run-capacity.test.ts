import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { CapacityControlError } from '../../shared/capacity/errors.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import {
  acquireRunCapacity,
  releaseRunCapacity,
  scaleInAtRelease,
  settleRunCapacity,
} from '../../shared/capacity/run-capacity.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CapacityControl } from '../../shared/ports/capacity-control.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';

const T0 = Date.parse('2026-12-07T01:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

describe('run-scoped capacity in plan and finalize', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let control: LocalCapacityControl;
  const config = pipelineConfig({
    endpoint: {
      name: 'docs-embed',
      dimension: 16,
      capacity: {
        maxCopies: 3,
        workPerSecondPerCopy: 1,
        targetRunSeconds: 60,
        cooldownSeconds: 300,
        cooldown: 'always',
      },
    },
  });
  const capacity = pipelineCapacityOf(config)!;
  const component = capacity.componentName;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-run-capacity-'));
    leases = new LocalCapacityLeases(dir);
    control = new LocalCapacityControl();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  describe('acquireRunCapacity (plan)', () => {
    it('takes the lease with copies sized from the estimate and raises the copies to it', async () => {
      const acquired = await acquireRunCapacity({ leases, control }, capacity, 'r-1', 100, at(0));
      // 100 units of work at 1 per second per copy in 60 s: 2 copies.
      expect(acquired.lease).toEqual({ runId: 'r-1', component, copies: 2, takenAt: iso(0) });
      expect(acquired).toMatchObject({ before: { desiredCopies: 0, currentCopies: 0 }, raisedTo: 2 });
      expect(control.requests).toEqual([{ component, copies: 2 }]);
    });

    it('adds the copies of overlapping runs, capped at maxCopies, and never lowers them', async () => {
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 100, at(0));
      const second = await acquireRunCapacity({ leases, control }, capacity, 'r-2', 100, at(10));
      expect(second.raisedTo).toBe(3);
      await control.setCopies(component, 3);
      const third = await acquireRunCapacity({ leases, control }, capacity, 'r-3', 1, at(20));
      expect(third.raisedTo).toBeUndefined();
      expect((await control.describe(component)).desiredCopies).toBe(3);
    });

    it('keeps the first lease when a plan is retried', async () => {
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 100, at(0));
      const again = await acquireRunCapacity({ leases, control }, capacity, 'r-1', 1, at(50));
      expect(again.lease).toEqual({ runId: 'r-1', component, copies: 2, takenAt: iso(0) });
    });

    it('marks the lease ready at once when copies already serve (a run within the cooldown)', async () => {
      await control.setCopies(component, 1);
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 1, at(0));
      expect((await leases.get(component, 'r-1'))?.readyAt).toBe(iso(0));
    });

    it('keeps the lease and reports, not throws, when the control plane fails', async () => {
      const failing: CapacityControl = {
        describe: async () => {
          throw new CapacityControlError(component, 'throttled', true);
        },
        setCopies: async () => ({ applied: true }),
      };
      const acquired = await acquireRunCapacity({ leases, control: failing }, capacity, 'r-1', 1, at(0));
      expect(acquired.error).toBe('throttled');
      expect(await leases.get(component, 'r-1')).toBeDefined();
    });

    it('reports a raise SageMaker defers (component busy) for the sweeper to finish', async () => {
      const busy: CapacityControl = {
        describe: (name) => control.describe(name),
        setCopies: async () => ({ applied: false, reason: 'in Updating status' }),
      };
      const acquired = await acquireRunCapacity({ leases, control: busy }, capacity, 'r-1', 1, at(0));
      expect(acquired.deferred).toBe(
        'the inference component is busy with a change that can take minutes (not waited on): in Updating status; the capacity sweeper raises the copies',
      );
      expect(acquired.raisedTo).toBeUndefined();
    });
  });

  describe('settleRunCapacity and releaseRunCapacity (finalize)', () => {
    it('charges copies x (held + cooldown), releases at the time reported, the same on a redelivered finalize', async () => {
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 100, at(0));
      await leases.markReady(component, 'r-1', iso(240));
      const first = await settleRunCapacity(leases, capacity, 'r-1', at(900));
      expect(first).toEqual({
        summary: {
          component,
          copies: 2,
          takenAt: iso(0),
          readyAt: iso(240),
          releasedAt: iso(900),
          warmupSeconds: 240,
          cooldown: { seconds: 300, reason: 'always' },
        },
        endpointSeconds: 2 * (900 + 300),
        instanceType: 'ml.g5.xlarge',
        cooldown: { keep: true, reason: 'always' },
      });
      // Settling reads only: the lease is still held until the release after the move.
      expect((await leases.get(component, 'r-1'))?.releasedAt).toBeUndefined();
      await releaseRunCapacity(leases, 'r-1', first!.summary);
      await releaseRunCapacity(leases, 'r-1', { ...first!.summary, releasedAt: iso(1000) });
      expect(await leases.get(component, 'r-1')).toMatchObject({
        releasedAt: iso(900),
        releasedBy: 'finalize',
      });
      expect(await settleRunCapacity(leases, capacity, 'r-1', at(1000))).toEqual(first);
      // Releasing lowers nothing: the sweeper scales in after the cooldown.
      expect((await control.describe(component)).desiredCopies).toBe(2);
    });

    it('reports a lease the sweeper released as leaked at its release time', async () => {
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 1, at(0));
      await leases.release(component, 'r-1', iso(3600), 'sweeper');
      expect((await settleRunCapacity(leases, capacity, 'r-1', at(5000)))?.summary.releasedAt).toBe(
        iso(3600),
      );
    });

    it('charges a renewed lease (a redriven run) its earlier hold too', async () => {
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 1, at(0));
      const released = (await leases.release(component, 'r-1', iso(600), 'finalize'))!;
      await leases.renew(released, iso(7200), 900);
      const settled = await settleRunCapacity(leases, capacity, 'r-1', at(7500));
      expect(settled?.endpointSeconds).toBe(900 + 300 + 300);
      expect(settled?.summary).toMatchObject({ takenAt: iso(7200), priorSeconds: 900 });
    });

    it('charges no cooldown to a run that handed its capacity over', async () => {
      await acquireRunCapacity({ leases, control }, capacity, 'r-1', 1, at(0));
      const settled = await settleRunCapacity(leases, capacity, 'r-1', at(60), { handedOver: true });
      expect(settled?.endpointSeconds).toBe(60);
      expect(settled?.summary.handedOver).toBe(true);
    });

    it('returns nothing for a run that holds no lease', async () => {
      expect(await settleRunCapacity(leases, capacity, 'r-none', at(60))).toBeUndefined();
    });
  });

  describe('planRun and finalizeRun', () => {
    const noQueue: WorkQueue = { sendUnits: async () => {}, requestFinalize: async () => {} };

    it('plan takes the lease once the run is stored; finalize of a failed run releases it and prices the endpoint by it', async () => {
      const store = new MemoryObjectStore(50);
      const runs = new LocalRunStore(path.join(dir, 'runs'));
      await store.put('incoming/docs/a.jsonl', jsonl([{ id: 'd1', text: 'one two three' }]));
      const runId = 'r-20261207T010000Z-aaaaaa';
      const sent: string[] = [];
      const queue: WorkQueue = {
        sendUnits: async (units) => {
          // The lease exists before any unit is on its way.
          expect(await leases.get(component, runId)).toBeDefined();
          sent.push(...units.map((u) => u.unitId));
        },
        requestFinalize: async () => {},
      };
      const plan = await planRun({ store, runs, queue, capacity: { leases, control } }, config, {
        runId,
        trigger: 'local',
        keys: ['incoming/docs/a.jsonl'],
        now: at(0),
      });
      expect(plan.capacity).toMatchObject({ lease: { runId, component, copies: 1 }, raisedTo: 1 });
      expect(sent).toHaveLength(1);

      // The unit dies: finalize still releases.
      await runs.failUnit(runId, plan.units[0]!.unitId, 'endpoint stayed cold past warmupLimitSeconds');
      const deps = {
        store,
        runs,
        queue: noQueue,
        pipelines: new Map([[config.name, config]]),
        capacity: { leases, control },
        costing: { region: 'us-east-1', estimate: false },
      };
      const summary = await finalizeRun(deps, runId, at(600));
      expect(summary?.status).toBe('failed');
      expect(summary?.capacity).toEqual({
        component,
        copies: 1,
        takenAt: iso(0),
        releasedAt: iso(600),
        cooldown: { seconds: 300, reason: 'always' },
      });
      const hourly = pricesFor('us-east-1').sagemakerInstanceHour['ml.g5.xlarge']!.usd;
      expect(summary?.cost?.usage).toMatchObject({
        instanceType: 'ml.g5.xlarge',
        endpointSeconds: 600 + 300,
      });
      expect(summary?.cost?.endpoint).toBeCloseTo((900 / 3600) * hourly, 6);
      expect(await leases.get(component, runId)).toMatchObject({
        releasedAt: iso(600),
        releasedBy: 'finalize',
      });
      expect((await leases.state(component)).lastReleasedAt).toBe(iso(600));
    });

    it('takes no lease for a run with no units (it is finalized at once)', async () => {
      const store = new MemoryObjectStore(50);
      const runs = new LocalRunStore(path.join(dir, 'runs'));
      await store.put('incoming/docs/a.jsonl', jsonl([{ id: 'd1', text: 'one' }]));
      const plan = await planRun({ store, runs, queue: noQueue, capacity: { leases, control } }, config, {
        runId: 'r-20261207T010000Z-bbbbbb',
        trigger: 'local',
        keys: ['incoming/docs/missing.jsonl'],
        now: at(0),
      });
      expect(plan.units).toHaveLength(0);
      expect(plan.capacity).toBeUndefined();
      expect(await leases.list(component)).toEqual([]);
    });
  });

  describe('cooldown auto: finalize scales in at release when no run is likely to follow', () => {
    const autoConfig = pipelineConfig({
      endpoint: {
        name: 'docs-embed',
        dimension: 16,
        capacity: { maxCopies: 3, workPerSecondPerCopy: 1, targetRunSeconds: 60, cooldownSeconds: 300 },
      },
    });
    const auto = pipelineCapacityOf(autoConfig)!;
    const noQueue: WorkQueue = { sendUnits: async () => {}, requestFinalize: async () => {} };

    it('charges no cooldown without a schedule or back-to-back history, and one when a schedule ticks within it', async () => {
      await acquireRunCapacity({ leases, control }, auto, 'r-1', 100, at(0));
      const lone = await settleRunCapacity(leases, auto, 'r-1', at(900));
      expect(lone).toMatchObject({ endpointSeconds: 2 * 900, cooldown: { keep: false, reason: 'none' } });
      expect(lone?.summary.cooldown).toEqual({ seconds: 0, reason: 'none' });
      // 01:15 + 300 s reaches the 01:20 tick.
      const scheduled = await settleRunCapacity(leases, auto, 'r-1', at(900), {
        schedules: [{ expression: 'cron(20 * * * ? *)', timezone: 'UTC' }],
      });
      expect(scheduled).toMatchObject({
        endpointSeconds: 2 * (900 + 300),
        cooldown: { keep: true, reason: 'schedule' },
      });
    });

    it('charges the cooldown to a run whose component had back-to-back runs', async () => {
      await acquireRunCapacity({ leases, control }, auto, 'r-1', 1, at(0));
      await leases.release(component, 'r-1', iso(100), 'finalize');
      // Taken 200 s after the release: within the 300 s cooldown.
      await acquireRunCapacity({ leases, control }, auto, 'r-2', 1, at(300));
      const settled = await settleRunCapacity(leases, auto, 'r-2', at(400));
      expect(settled).toMatchObject({
        endpointSeconds: 100 + 300,
        cooldown: { keep: true, reason: 'back-to-back' },
      });
    });

    it('sets 0 copies when no lease is held; leaves them while another lease holds copies', async () => {
      await acquireRunCapacity({ leases, control }, auto, 'r-1', 1, at(0));
      await acquireRunCapacity({ leases, control }, auto, 'r-2', 1, at(10));
      await leases.release(component, 'r-1', iso(100), 'finalize');
      expect(await scaleInAtRelease({ leases, control }, auto)).toEqual({ skipped: 'leases-held' });
      expect((await control.describe(component)).desiredCopies).toBe(2);
      await leases.release(component, 'r-2', iso(200), 'finalize');
      expect(await scaleInAtRelease({ leases, control }, auto)).toEqual({ copies: 0 });
      expect((await control.describe(component)).desiredCopies).toBe(0);
      expect(await scaleInAtRelease({ leases, control }, auto)).toEqual({ skipped: 'at-floor' });
    });

    it('reads the leases again before lowering: a plan that took a lease meanwhile keeps its copies', async () => {
      await acquireRunCapacity({ leases, control }, auto, 'r-1', 1, at(0));
      await leases.release(component, 'r-1', iso(100), 'finalize');
      const racing: CapacityControl = {
        describe: async (name) => {
          const copies = await control.describe(name);
          // A plan takes its lease between finalize's first look and its describe.
          await leases.take({ runId: 'r-2', component, copies: 1, takenAt: iso(101) });
          return copies;
        },
        setCopies: (name, copies) => control.setCopies(name, copies),
      };
      expect(await scaleInAtRelease({ leases, control: racing }, auto)).toEqual({ skipped: 'leases-held' });
      expect((await control.describe(component)).desiredCopies).toBe(1);
    });

    it('reports a control-plane failure instead of throwing (the sweeper scales in)', async () => {
      await acquireRunCapacity({ leases, control }, auto, 'r-1', 1, at(0));
      await leases.release(component, 'r-1', iso(100), 'finalize');
      const denied: CapacityControl = {
        describe: (name) => control.describe(name),
        setCopies: async (name) => {
          throw new CapacityControlError(name, 'AccessDenied', false);
        },
      };
      expect((await scaleInAtRelease({ leases, control: denied }, auto)).error).toMatch(/AccessDenied/);
    });

    it('finalizeRun releases, then scales in at once, and prices no cooldown', async () => {
      const store = new MemoryObjectStore(50);
      const runs = new LocalRunStore(path.join(dir, 'runs'));
      await store.put('incoming/docs/a.jsonl', jsonl([{ id: 'd1', text: 'one two three' }]));
      const runId = 'r-20261207T010000Z-cccccc';
      const plan = await planRun({ store, runs, queue: noQueue, capacity: { leases, control } }, autoConfig, {
        runId,
        trigger: 'local',
        keys: ['incoming/docs/a.jsonl'],
        now: at(0),
      });
      expect((await control.describe(component)).desiredCopies).toBe(1);
      await runs.failUnit(runId, plan.units[0]!.unitId, 'endpoint stayed cold');
      const scaled: unknown[] = [];
      const summary = await finalizeRun(
        {
          store,
          runs,
          queue: noQueue,
          pipelines: new Map([[autoConfig.name, autoConfig]]),
          capacity: { leases, control },
          costing: { region: 'us-east-1', estimate: false },
          onScaledIn: (...args) => scaled.push(args),
        },
        runId,
        at(600),
      );
      expect(summary?.capacity?.cooldown).toEqual({ seconds: 0, reason: 'none' });
      expect(summary?.cost?.usage).toMatchObject({ endpointSeconds: 600 });
      expect((await control.describe(component)).desiredCopies).toBe(0);
      expect(scaled).toEqual([[runId, component, { copies: 0 }]]);
      // A redelivered request changes nothing more.
      expect(
        await finalizeRun({ store, runs, capacity: { leases, control } }, runId, at(700)),
      ).toBeUndefined();
      expect(control.requests.map((r) => r.copies)).toEqual([1, 0]);
    });
  });
});
