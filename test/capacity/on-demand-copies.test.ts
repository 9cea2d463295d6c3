import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { demandRunCapacity } from '../../shared/capacity/on-demand.ts';
import {
  acquireRunCapacity,
  type RunCapacityDeps,
  settleRunCapacity,
} from '../../shared/capacity/run-capacity.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { EndpointWarming } from '../../shared/errors/errors.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { type ProcessUnitDeps, processUnit } from '../../shared/work/process-unit.ts';
import { WARMING_POLL_SECONDS } from '../../shared/work/warming.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

const T0 = Date.parse('2026-12-07T03:00:00.000Z');
const COLD_START_SECONDS = 420;

/** Units sent, and units sent back to wait for capacity. */
class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  later: { unit: WorkUnit; delaySeconds: number }[] = [];
  finalizeRequests = 0;
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async sendUnitLater(unit: WorkUnit, delaySeconds: number) {
    this.later.push({ unit, delaySeconds });
  }
  async requestFinalize() {
    this.finalizeRequests += 1;
  }
  /** Everything waiting to be delivered, emptied. */
  take(): WorkUnit[] {
    const due = [...this.units, ...this.later.map((l) => l.unit)];
    this.units = [];
    this.later = [];
    return due;
  }
}

/** An embedding endpoint on an inference component: no capacity while no copy serves (SageMaker's answer). */
class ComponentEndpoint implements EmbeddingEndpoint {
  calls = 0;
  constructor(
    private readonly control: LocalCapacityControl,
    private readonly component: string,
  ) {}
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    this.calls += 1;
    if ((await this.control.describe(this.component)).currentCopies < 1)
      throw new EndpointWarming('docs-embed', 'Inference Component has no capacity to process this request.');
    stats.endpointCalls += 1;
    return inputs.map((t) => Array.from({ length: 16 }, (_, i) => (t.length + i) / 100));
  }
}

const docs = Array.from({ length: 12 }, (_, i) => ({
  id: `d${String(i).padStart(2, '0')}`,
  text: `Paragraph ${i} about sluices and locks. `.repeat(20 + i * 3),
}));

describe('copies on demand: an incremental embed run raises its copies only when a unit has chunks to embed', () => {
  let dir: string;
  let seconds: number;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let leases: LocalCapacityLeases;
  let control: LocalCapacityControl;
  let chunkIndex: MemoryChunkIndex;
  let endpoint: ComponentEndpoint;
  const config = pipelineConfig({
    endpoint: {
      name: 'docs-embed',
      dimension: 16,
      capacity: { maxCopies: 4, workPerSecondPerCopy: 10, targetRunSeconds: 60, cooldownSeconds: 300 },
    },
    chunking: { maxTokens: 64, overlapTokens: 8 },
    batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
    // Many small units: several of them meet the cold endpoint at once.
    planning: { targetUnitTokens: 1500 },
  });
  const capacity = pipelineCapacityOf(config)!;
  const component = capacity.componentName;
  const now = () => new Date(T0 + seconds * 1000);
  const capacityDeps = (): RunCapacityDeps => ({ leases, control, onDemandCopies: true });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-on-demand-'));
    seconds = 0;
    store = new MemoryObjectStore(97);
    runs = new LocalRunStore(path.join(dir, 'runs'));
    queue = new RecordingQueue();
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    control = new LocalCapacityControl({ warmupMs: COLD_START_SECONDS * 1000, now: () => now().getTime() });
    chunkIndex = new MemoryChunkIndex();
    endpoint = new ComponentEndpoint(control, component);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function plan(runId: string) {
    await store.put('incoming/docs/a.jsonl', jsonl(docs));
    return planRun({ store, runs, queue, capacity: capacityDeps() }, config, {
      runId,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: now(),
    });
  }

  /** Delivers every unit waiting, all at once (concurrent workers), as the deployed work function: it can mark, not set. */
  async function deliver(workerDeps: Partial<ProcessUnitDeps> = { capacityDemand: { leases } }) {
    const deps: ProcessUnitDeps = {
      store,
      runs,
      queue,
      endpoint,
      chunkIndex,
      tokenCounter: new EstimatingTokenCounter(),
      ...workerDeps,
    };
    return Promise.all(
      queue
        .take()
        .map((unit) => processUnit(deps, config, unit, { isLastAttempt: false, now: () => now().getTime() })),
    );
  }

  const sweep = () => sweepCapacity({ leases, control, runs }, [capacity], now());

  const finalize = (runId: string) =>
    finalizeRun(
      {
        store,
        runs,
        queue,
        chunkIndex,
        pipelines: new Map([[config.name, config]]),
        capacity: capacityDeps(),
        costing: { region: 'us-east-1', estimate: false },
      },
      runId,
      now(),
    );

  it('raises once for a run with new chunks (at the sweep after its units asked), then never for a re-drop of the same text: endpoint cost 0', async () => {
    // Run 1: every chunk is new.
    const first = await plan('r-20261207T030000Z-aaaaaa');
    expect(first.units.length).toBeGreaterThanOrEqual(3);
    expect(first.capacity).toMatchObject({ onDemand: true, lease: { onDemand: true } });
    expect(first.capacity?.raisedTo).toBeUndefined();
    expect(control.requests).toEqual([]);
    const copies = first.capacity!.lease.copies;

    // Every unit asks at once and meets no capacity: one mark, each waits on the queue.
    const waiting = await deliver();
    expect(waiting.map((o) => o.status)).toEqual(first.units.map(() => 'deferred'));
    expect(await leases.get(component, first.run.runId)).toMatchObject({ neededAt: now().toISOString() });
    expect(control.requests).toEqual([]);

    // The sweeper's next pass raises the copies the lease wants, once; a second pass sets nothing.
    seconds = 45;
    await sweep();
    seconds = 60;
    await sweep();
    expect(control.requests).toEqual([{ component, copies }]);

    // Copies serve after the cold start; the units waiting run and the run finishes.
    seconds = 45 + COLD_START_SECONDS;
    const done = await deliver();
    expect(done.every((o) => o.status === 'succeeded')).toBe(true);
    expect(endpoint.calls).toBeGreaterThan(first.units.length);
    seconds = 500;
    const summary1 = await finalize(first.run.runId);
    expect(summary1?.status).toBe('succeeded');
    expect(summary1?.capacity).toMatchObject({
      copiesRaised: 'on-demand',
      neededAt: new Date(T0).toISOString(),
      raisedAt: new Date(T0 + 45_000).toISOString(),
    });
    // Charged from when the sweeper asked for the copies, not from the mark (SageMaker bills
    // nothing for the 45 s wait): copies x (500 - 45), no cooldown (auto, nothing follows).
    expect(summary1?.cost?.usage).toMatchObject({ endpointSeconds: copies * (500 - 45) });
    expect(summary1?.cost?.endpoint).toBeGreaterThan(0);
    // Finalize scales in at release.
    expect(control.requests).toEqual([
      { component, copies },
      { component, copies: 0 },
    ]);

    // Run 2, the next night: the same text, every chunk carried forward.
    seconds = 86_400;
    const calls = endpoint.calls;
    const second = await plan('r-20261208T030000Z-bbbbbb');
    expect(second.capacity).toMatchObject({ onDemand: true });
    const outcomes = await deliver();
    expect(outcomes.every((o) => o.status === 'succeeded')).toBe(true);
    expect(endpoint.calls).toBe(calls);
    seconds += 60;
    const [swept] = await sweep();
    expect(swept).toMatchObject({ liveLeases: [second.run.runId], copies: 0 });
    // The workers still follow the lease's copies: its units run (and compare) without any.
    expect(swept?.liveCopies).toEqual([second.capacity!.lease.copies]);
    seconds += 60;
    const summary2 = await finalize(second.run.runId);
    expect(summary2?.status).toBe('succeeded');
    expect(summary2?.counts.skippedUnchanged).toBeGreaterThan(0);
    expect(summary2?.capacity).toMatchObject({ copiesRaised: 'never', cooldown: { seconds: 0 } });
    expect(summary2?.capacity?.neededAt).toBeUndefined();
    expect(summary2?.cost?.usage.endpointSeconds ?? 0).toBe(0);
    expect(summary2?.cost?.endpoint).toBe(0);
    // Never raised: no request since run 1's scale-in.
    expect(control.requests).toHaveLength(2);
  });

  it('with a control plane, the worker that marks the lease raises the copies itself, exactly once for many units at once', async () => {
    const planned = await plan('r-20261207T030000Z-cccccc');
    expect(planned.units.length).toBeGreaterThanOrEqual(3);
    const outcomes = await deliver({ capacityDemand: { leases, control } });
    expect(outcomes.every((o) => o.status === 'deferred')).toBe(true);
    expect(control.requests).toEqual([{ component, copies: planned.capacity!.lease.copies }]);
    // Units wait WARMING_POLL_SECONDS between tries, the first wait as the sixth.
    for (const o of outcomes) expect(o).toMatchObject({ delaySeconds: WARMING_POLL_SECONDS });
    const unit = { ...planned.units[0]!, warmingSince: now().getTime(), warmingDeferrals: 6 };
    queue.units = [unit];
    const [late] = await deliver({ capacityDemand: { leases, control } });
    expect(late).toMatchObject({ status: 'deferred', delaySeconds: WARMING_POLL_SECONDS });
    // The sweeper finds them raised: it sets nothing more.
    seconds = 60;
    await sweep();
    expect(control.requests).toHaveLength(1);
  });

  it('demandRunCapacity: of many concurrent asks one marks and raises; a plan-raised lease is never marked', async () => {
    await acquireRunCapacity({ leases, control }, capacity, 'r-od', 1200, now(), true);
    const asks = await Promise.all(
      Array.from({ length: 8 }, () => demandRunCapacity({ leases, control }, capacity, 'r-od', now())),
    );
    expect(asks.filter((a) => a.marked)).toHaveLength(1);
    expect(asks.find((a) => a.marked)?.raised).toMatchObject({ raisedTo: 2 });
    expect(control.requests).toEqual([{ component, copies: 2 }]);
    // A lease plan raised (not on demand) holds its copies already: nothing to mark.
    await acquireRunCapacity({ leases, control }, capacity, 'r-plan', 600, now());
    expect(await demandRunCapacity({ leases, control }, capacity, 'r-plan', now())).toEqual({
      marked: false,
    });
    expect((await leases.get(component, 'r-plan'))?.neededAt).toBeUndefined();
    expect(await demandRunCapacity({ leases, control }, capacity, 'r-none', now())).toEqual({
      marked: false,
    });
  });

  it('a non-incremental run, or plan without on-demand workers, raises at plan as before', async () => {
    const full = pipelineConfig({ ...config, incremental: { enabled: false } });
    const fullCapacity = pipelineCapacityOf(full)!;
    const plain = await acquireRunCapacity(capacityDeps(), fullCapacity, 'r-full', 600, now(), false);
    expect(plain.onDemand).toBeUndefined();
    expect(plain.lease).toEqual({ runId: 'r-full', component, copies: 1, takenAt: now().toISOString() });
    expect(control.requests).toEqual([{ component, copies: 1 }]);

    await store.put('incoming/docs/a.jsonl', jsonl(docs));
    const viaPlan = await planRun({ store, runs, queue, capacity: capacityDeps() }, full, {
      runId: 'r-20261207T030000Z-dddddd',
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: now(),
    });
    expect(viaPlan.capacity?.onDemand).toBeUndefined();
    expect(viaPlan.capacity?.lease.onDemand).toBeUndefined();
    // An incremental run whose plan has no workers that ask (local runs) is raised at plan too.
    const local = await planRun({ store, runs, queue, capacity: { leases, control } }, config, {
      runId: 'r-20261207T030000Z-eeeeee',
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: now(),
    });
    expect(local.capacity?.onDemand).toBeUndefined();
    expect(local.capacity?.lease.onDemand).toBeUndefined();
    // It looked at the copies and raised them to what the three leases need (capped at maxCopies).
    expect(local.capacity?.before).toBeDefined();
    expect((await control.describe(component)).desiredCopies).toBe(4);
  });

  it('the safety net still scales to zero when no live lease holds copies, and a never-needed lease is charged nothing', async () => {
    // Copies left up (a crashed finalize of an earlier run), and a live on-demand lease that never needed them.
    await control.setCopies(component, 2);
    await acquireRunCapacity(capacityDeps(), capacity, 'r-od', 1200, now(), true);
    await runs.createRun(
      {
        runId: 'r-od',
        pipeline: config.name,
        status: 'running',
        trigger: 'local',
        startedAt: now().toISOString(),
        inputKeys: [],
        totalUnits: 1,
        succeededUnits: 0,
        failedUnits: 0,
      } as never,
      [],
    );
    seconds = 60;
    const [swept] = await sweep();
    expect(swept).toMatchObject({
      liveLeases: ['r-od'],
      copies: 0,
      set: { copies: 0 },
      capacityWithoutRun: true,
    });
    expect((await control.describe(component)).desiredCopies).toBe(0);
    // Not marked ready: it held no copies.
    expect((await leases.get(component, 'r-od'))?.readyAt).toBeUndefined();
    // And with no lease at all, as before.
    await control.setCopies(component, 1);
    await leases.release(component, 'r-od', now().toISOString(), 'sweeper');
    seconds = 600;
    const [after] = await sweep();
    expect(after).toMatchObject({ liveLeases: [], set: { copies: 0 } });
    const settled = await settleRunCapacity(leases, capacity, 'r-od', now());
    expect(settled).toMatchObject({ endpointSeconds: 0, summary: { copiesRaised: 'never' } });
  });

  it('a lease needed after it was taken is charged from then, and a renewed one holds no copies until needed again', async () => {
    await acquireRunCapacity(capacityDeps(), capacity, 'r-od', 1200, now(), true);
    seconds = 100;
    expect(await leases.markNeeded(component, 'r-od', now().toISOString())).toBe(true);
    expect(await leases.markNeeded(component, 'r-od', now().toISOString())).toBe(false);
    seconds = 700;
    const settled = await settleRunCapacity(leases, capacity, 'r-od', now());
    // No raise recorded when (a lease stored before `raisedAt`, or one no look counted):
    // charged from the mark, 2 copies x (700 - 100) s, no cooldown kept (auto, nothing follows).
    expect(settled).toMatchObject({ endpointSeconds: 2 * 600, summary: { copiesRaised: 'on-demand' } });
    const released = await leases.release(component, 'r-od', now().toISOString(), 'finalize');
    const renewed = await leases.renew(released!, new Date(T0 + 800_000).toISOString(), 600);
    expect(renewed).toMatchObject({ onDemand: true, copies: 2 });
    expect(renewed?.neededAt).toBeUndefined();
    // Released leases are not marked.
    await leases.release(component, 'r-od', new Date(T0 + 900_000).toISOString(), 'finalize');
    expect(await leases.markNeeded(component, 'r-od', new Date(T0 + 950_000).toISOString())).toBe(false);
  });
});
