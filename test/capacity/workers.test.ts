import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { type PipelineCapacity, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { acquireRunCapacity, acquireRunWorkers } from '../../shared/capacity/run-capacity.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import {
  decideWorkers,
  MIN_WORKERS,
  raiseWorkers,
  sweepWorkers,
  WORKERS_LEASE_COMPONENT,
  type WorkerScaling,
  workerScalingOf,
} from '../../shared/capacity/workers.ts';
import { type CapacityConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunState } from '../../shared/domain/types.ts';
import { pipelineConfig } from '../core/factories.ts';
import { MemoryWorkerConcurrency } from '../support/memory-worker-concurrency.ts';
import { aRunWithUnits, aSummary } from '../support/run-fixtures.ts';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

const capacityOf = (over: Partial<CapacityConfig> = {}): CapacityConfig =>
  pipelineConfig({ endpoint: { name: 'e', dimension: 16, capacity: over } }).endpoint.capacity;

describe('decideWorkers', () => {
  it('gives each component with a live lease its copies times workersPerCopy, plus in-worker leases', () => {
    expect(
      decideWorkers({
        components: [
          { capacity: capacityOf({ maxCopies: 4, workersPerCopy: 2 }), liveCopies: [1, 2] },
          { capacity: capacityOf({ maxCopies: 4 }), liveCopies: [1] },
        ],
        workerLeases: [5],
        ceiling: 100,
      }),
    ).toBe(3 * 2 + 1 + 5);
  });

  it('returns to the floor of 2 (Lambda least MaximumConcurrency) with no live lease', () => {
    expect(
      decideWorkers({
        components: [{ capacity: capacityOf(), liveCopies: [] }],
        workerLeases: [],
        ceiling: 8,
      }),
    ).toBe(MIN_WORKERS);
  });

  it('needs no workers for copies kept without a live lease (always-on at rest)', () => {
    const alwaysOn = capacityOf({ mode: 'always-on', minCopies: 3 });
    expect(
      decideWorkers({ components: [{ capacity: alwaysOn, liveCopies: [] }], workerLeases: [], ceiling: 8 }),
    ).toBe(2);
    // With a live lease the copies always-on keeps count: at least minCopies.
    expect(
      decideWorkers({ components: [{ capacity: alwaysOn, liveCopies: [1] }], workerLeases: [], ceiling: 8 }),
    ).toBe(3);
  });

  it('caps copies at maxCopies and the total at the ceiling', () => {
    const capacity = capacityOf({ maxCopies: 2 });
    expect(
      decideWorkers({ components: [{ capacity, liveCopies: [4, 4] }], workerLeases: [], ceiling: 8 }),
    ).toBe(2);
    expect(
      decideWorkers({ components: [{ capacity, liveCopies: [1] }], workerLeases: [8, 8], ceiling: 8 }),
    ).toBe(8);
  });

  it('holds for all inputs: between the floor and the ceiling, and never fewer for more leases', () => {
    const component = fc.record({
      capacity: fc
        .record({
          maxCopies: fc.integer({ min: 1, max: 64 }),
          workersPerCopy: fc.integer({ min: 1, max: 8 }),
          mode: fc.constantFrom('run-scoped' as const, 'always-on' as const),
        })
        .map((over) => capacityOf(over)),
      liveCopies: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 5 }),
    });
    fc.assert(
      fc.property(
        fc.array(component, { maxLength: 4 }),
        fc.array(fc.integer({ min: 2, max: 1000 }), { maxLength: 4 }),
        fc.integer({ min: 2, max: 1000 }),
        fc.integer({ min: 1, max: 64 }),
        (components, workerLeases, ceiling, extra) => {
          const workers = decideWorkers({ components, workerLeases, ceiling });
          expect(workers).toBeGreaterThanOrEqual(MIN_WORKERS);
          expect(workers).toBeLessThanOrEqual(Math.max(MIN_WORKERS, ceiling));
          const more = decideWorkers({ components, workerLeases: [...workerLeases, extra], ceiling });
          expect(more).toBeGreaterThanOrEqual(workers);
          if (components.every((c) => c.liveCopies.length === 0) && workerLeases.length === 0)
            expect(workers).toBe(MIN_WORKERS);
        },
      ),
    );
  });
});

describe('workers that follow the copies (plan and the sweeper)', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let runs: LocalRunStore;
  let control: LocalCapacityControl;
  let concurrency: MemoryWorkerConcurrency;
  const docs = pipelineConfig({
    endpoint: {
      name: 'embed',
      dimension: 16,
      capacity: { maxCopies: 4, cooldown: 'always', cooldownSeconds: 300 },
    },
    workers: { maxConcurrency: 8 },
  });
  const inWorker = parsePipelineConfig({
    name: 'score-in-worker',
    kind: 'score',
    featureSpec: { features: [{ column: 'x', type: 'numeric' }] },
    model: { endpointName: 'score-local', modelKey: 'models/m.json', hosting: 'in-worker' },
    workers: { maxConcurrency: 6 },
  });
  const embed = pipelineCapacityOf(docs)!;
  const component = embed.componentName;
  let scaling: WorkerScaling;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-workers-'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
    control = new LocalCapacityControl();
    // As deployed before the workers followed the copies: the stack's largest maxConcurrency.
    concurrency = new MemoryWorkerConcurrency(8);
    scaling = workerScalingOf(concurrency, [docs, inWorker], [embed]);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function aRunningRun(startedAt = 0): Promise<RunState> {
    const { run, units } = aRunWithUnits(2, { startedAt: iso(startedAt) });
    await runs.createRun(run, units);
    return run;
  }

  const sweep = async (now: Date, capacities: PipelineCapacity[] = [embed]) => {
    const components = await sweepCapacity({ leases, runs, control }, capacities, now);
    return sweepWorkers({ leases, runs }, scaling, components, now);
  };

  it('the sweeper lowers the deployed limit to what one copy needs: the floor of 2, not 8', async () => {
    const run = await aRunningRun();
    await acquireRunCapacity({ leases, control }, embed, run.runId, 1, at(0));
    const result = await sweep(at(30));
    expect(result).toMatchObject({ before: 8, workers: 2, set: { workers: 2, outcome: { applied: true } } });
    expect(concurrency.maximum).toBe(2);
  });

  it('plan raises the limit with the copies (copies x workersPerCopy) and never lowers it', async () => {
    concurrency.maximum = 2;
    const big = pipelineCapacityOf(
      pipelineConfig({
        endpoint: {
          name: 'embed',
          dimension: 16,
          capacity: { maxCopies: 4, workersPerCopy: 2, workPerSecondPerCopy: 1000, targetRunSeconds: 60 },
        },
      }),
    )!;
    const withBig = { ...scaling, capacities: [big] };
    const run = await aRunningRun();
    const acquired = await acquireRunCapacity(
      { leases, control, workers: withBig },
      big,
      run.runId,
      3 * 1000 * 60,
      at(0),
    );
    expect(acquired.lease.copies).toBe(3);
    expect(acquired.workers).toEqual({ before: 2, raisedTo: 6 });
    expect(concurrency.maximum).toBe(6);

    concurrency.maximum = 7;
    expect(await raiseWorkers(leases, withBig)).toEqual({ before: 7 });
    expect(concurrency.maximum).toBe(7);
  });

  it('an in-worker run holds workers of its own: the limit rises to its maxConcurrency, and falls once it finished', async () => {
    concurrency.maximum = 2;
    const run = await aRunningRun();
    const acquired = await acquireRunWorkers(
      { leases, control, workers: scaling },
      inWorker,
      run.runId,
      at(0),
    );
    expect(acquired?.lease).toMatchObject({ component: WORKERS_LEASE_COMPONENT, copies: 6 });
    expect(concurrency.maximum).toBe(6);
    expect(await sweep(at(60))).toMatchObject({ liveLeases: [run.runId], workers: 6 });

    // Finalize moves the run and leaves the workers lease to the sweeper.
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(100) });
    const after = await sweep(at(120));
    expect(after).toMatchObject({ released: [{ runId: run.runId, reason: 'run-finished' }], workers: 2 });
    expect(concurrency.maximum).toBe(2);
    expect((await leases.get(WORKERS_LEASE_COMPONENT, run.runId))?.releasedAt).toBe(iso(100));
  });

  it('without the workers port (local runs) no workers lease is taken', async () => {
    const run = await aRunningRun();
    expect(await acquireRunWorkers({ leases, control }, inWorker, run.runId, at(0))).toBeUndefined();
    expect(await leases.list(WORKERS_LEASE_COMPONENT)).toEqual([]);
  });

  it('a finalize that crashed before its release: the sweeper releases the lease and the workers return to the floor', async () => {
    concurrency.maximum = 2;
    const bigRun = await aRunningRun();
    await leases.take({ runId: bigRun.runId, component, copies: 4, takenAt: iso(0) });
    await raiseWorkers(leases, scaling);
    expect(concurrency.maximum).toBe(4);
    // The run moved to succeeded; its finalize died before releasing the lease.
    await runs.finishRun(bigRun.runId, { ...aSummary(bigRun), finishedAt: iso(500) });
    const result = await sweep(at(560));
    expect(result).toMatchObject({ liveLeases: [], workers: 2, set: { workers: 2 } });
    expect(concurrency.maximum).toBe(2);
  });

  it('a lease whose run is gone leaves nothing up: workers at the floor', async () => {
    await leases.take({ runId: 'r-gone', component: WORKERS_LEASE_COMPONENT, copies: 8, takenAt: iso(0) });
    const result = await sweep(at(60));
    expect(result).toMatchObject({ released: [{ runId: 'r-gone', reason: 'run-missing' }], workers: 2 });
    expect(concurrency.maximum).toBe(2);
  });

  it('does not lower while a component could not be swept', async () => {
    const run = await aRunningRun();
    await leases.take({ runId: run.runId, component, copies: 1, takenAt: iso(0) });
    const result = await sweepWorkers({ leases, runs }, scaling, [{ component }], at(30));
    expect(result).toMatchObject({ workers: 2, keptHigher: 'component-unknown' });
    expect(concurrency.maximum).toBe(8);
  });

  it('does not undo a raise for a lease taken while the sweep was looking', async () => {
    const components = await sweepCapacity({ leases, runs, control }, [embed], at(10));
    // A plan takes a 4-copy lease after the components were read.
    const run = await aRunningRun(20);
    await leases.take({ runId: run.runId, component, copies: 4, takenAt: iso(20) });
    const result = await sweepWorkers({ leases, runs }, scaling, components, at(30));
    expect(result).toMatchObject({ workers: 2, keptHigher: 'new-lease' });
    expect(concurrency.maximum).toBe(8);
    expect(await sweep(at(90))).toMatchObject({ workers: 4 });
  });

  it('a busy event source is no error: the next sweep sets the limit', async () => {
    concurrency.busy = true;
    const result = await sweep(at(30));
    expect(result.set).toEqual({ workers: 2, outcome: { applied: false, reason: expect.any(String) } });
    expect(result.error).toBeUndefined();
    concurrency.busy = false;
    expect((await sweep(at(90))).set).toEqual({ workers: 2, outcome: { applied: true } });
  });

  it('reports a failing event source without throwing', async () => {
    scaling = {
      ...scaling,
      concurrency: {
        current: async () => {
          throw new Error('AccessDeniedException');
        },
        set: async () => ({ applied: true }),
      },
    };
    expect(await sweep(at(30))).toMatchObject({ error: expect.stringContaining('AccessDeniedException') });
  });
});
