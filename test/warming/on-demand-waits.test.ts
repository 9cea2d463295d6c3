import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import type { RunCapacityDeps } from '../../shared/capacity/run-capacity.ts';
import { type ComponentSweep, sweepCapacity } from '../../shared/capacity/sweep.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { EndpointUnavailable, EndpointWarming } from '../../shared/errors/errors.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { type ProcessUnitDeps, processUnit, type UnitOutcome } from '../../shared/work/process-unit.ts';
import { WARMING_POLL_SECONDS } from '../../shared/work/warming.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

/**
 * How the units of an on-demand run wait for their copies (docs/capacity.md, "Copies on
 * demand", "How a unit waits"), driven second by second through plan, the work function's
 * deliveries (as deployed: each on its last receive, to show a wait never spends one), the
 * capacity sweeper every minute, and finalize.
 */

const T0 = Date.parse('2026-12-07T03:00:00.000Z');
const COLD_START_SECONDS = 420;
const WARMUP_LIMIT_SECONDS = 1800;

/** Units due at a time: plan's at once, a deferred one after its delay. */
class TimedQueue implements WorkQueue {
  due: { unit: WorkUnit; at: number }[] = [];
  delays: { unitId: string; delaySeconds: number }[] = [];
  constructor(private readonly clock: () => number) {}
  async sendUnits(units: readonly WorkUnit[]) {
    for (const unit of units) this.due.push({ unit, at: this.clock() });
  }
  async sendUnitLater(unit: WorkUnit, delaySeconds: number) {
    this.delays.push({ unitId: unit.unitId, delaySeconds });
    this.due.push({ unit, at: this.clock() + delaySeconds });
  }
  async requestFinalize() {}
  /** The units due by now, taken off the queue. */
  take(): WorkUnit[] {
    const now = this.clock();
    const ready = this.due.filter((d) => d.at <= now).map((d) => d.unit);
    this.due = this.due.filter((d) => d.at > now);
    return ready;
  }
}

/** An embedding endpoint on an inference component: no capacity while no copy serves (SageMaker's answer). */
class ComponentEndpoint implements EmbeddingEndpoint {
  calls = 0;
  /** Every call fails (a 5xx a retry may fix), before any capacity check. */
  failing = false;
  constructor(
    private readonly control: LocalCapacityControl,
    private readonly component: string,
  ) {}
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    this.calls += 1;
    if (this.failing) throw new EndpointUnavailable('docs-embed answered 503');
    if ((await this.control.describe(this.component)).currentCopies < 1)
      throw new EndpointWarming('docs-embed', 'Inference Component has no capacity to process this request.');
    stats.endpointCalls += 1;
    return inputs.map((t) => Array.from({ length: 16 }, (_, i) => (t.length + i) / 100));
  }
}

const docs = Array.from({ length: 6 }, (_, i) => ({
  id: `d${i}`,
  text: `Paragraph ${i} about weirs and sluices. `.repeat(15 + i),
}));

describe('the waits of an on-demand run', () => {
  let dir: string;
  let seconds: number;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: TimedQueue;
  let leases: LocalCapacityLeases;
  let control: LocalCapacityControl;
  let chunkIndex: MemoryChunkIndex;
  let endpoint: ComponentEndpoint;
  let sweeps: ComponentSweep[];
  const config = pipelineConfig({
    endpoint: {
      name: 'docs-embed',
      dimension: 16,
      capacity: { maxCopies: 2, cooldownSeconds: 300, warmupLimitSeconds: WARMUP_LIMIT_SECONDS },
    },
    chunking: { maxTokens: 64, overlapTokens: 8 },
    planning: { targetUnitTokens: 1500 },
  });
  const capacity = pipelineCapacityOf(config)!;
  const component = capacity.componentName;
  const nowMs = () => T0 + seconds * 1000;
  const capacityDeps = (): RunCapacityDeps => ({ leases, control, onDemandCopies: true });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-on-demand-waits-'));
    seconds = 0;
    store = new MemoryObjectStore(31);
    runs = new LocalRunStore(path.join(dir, 'runs'));
    queue = new TimedQueue(() => seconds);
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    control = new LocalCapacityControl({ warmupMs: COLD_START_SECONDS * 1000, now: nowMs });
    chunkIndex = new MemoryChunkIndex();
    endpoint = new ComponentEndpoint(control, component);
    sweeps = [];
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function plan(runId: string) {
    await store.put('incoming/docs/a.jsonl', jsonl(docs));
    const planned = await planRun({ store, runs, queue, capacity: capacityDeps() }, config, {
      runId,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date(nowMs()),
    });
    return planned;
  }

  /**
   * Every delivery on its last receive: a unit that waits must not need another one. A
   * delivery that throws (the unit was marked failed first) is `threw`.
   */
  async function deliverDue(): Promise<(UnitOutcome | { status: 'threw' })[]> {
    const deps: ProcessUnitDeps = {
      store,
      runs,
      queue,
      endpoint,
      chunkIndex,
      tokenCounter: new EstimatingTokenCounter(),
      capacityDemand: { leases },
    };
    return Promise.all(
      queue.take().map((unit) =>
        processUnit(deps, config, unit, { isLastAttempt: true, now: nowMs }).catch(() => ({
          status: 'threw' as const,
        })),
      ),
    );
  }

  /**
   * Time passes second by second until `until` or the queue is empty: the sweeper every
   * minute (while `sweeping`), units delivered when due. Returns every outcome.
   */
  async function runUntil(until: number, options: { sweeping?: boolean; from?: number } = {}) {
    const outcomes: { at: number; outcome: UnitOutcome | { status: 'threw' } }[] = [];
    for (seconds = options.from ?? seconds; seconds <= until; seconds += 1) {
      if ((options.sweeping ?? true) && seconds % 60 === 0)
        sweeps.push(...(await sweepCapacity({ leases, control, runs }, [capacity], new Date(nowMs()))));
      for (const outcome of await deliverDue()) outcomes.push({ at: seconds, outcome });
      if (queue.due.length === 0) break;
    }
    return outcomes;
  }

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
      new Date(nowMs()),
    );

  it('the warm-up limit counts from the first unit that met no copies, not from plan: units first delivered past the limit still succeed', async () => {
    const planned = await plan('r-20261207T030000Z-aaaaaa');
    expect(planned.capacity).toMatchObject({ onDemand: true });
    // The units wait in the queue past the warm-up limit (workers busy elsewhere), the sweeper running.
    const delivered = WARMUP_LIMIT_SECONDS + 200;
    for (const d of queue.due) d.at = delivered;
    const outcomes = await runUntil(delivered + 1200);
    expect(queue.due).toEqual([]);
    const lease = await leases.get(component, planned.run.runId);
    expect(lease?.neededAt).toBe(new Date(T0 + delivered * 1000).toISOString());
    // Asked for at the sweep on the minute after the mark (the wait for it is not charged).
    expect(lease?.raisedAt).toBe(new Date(T0 + (Math.floor(delivered / 60) + 1) * 60_000).toISOString());
    expect(lease?.releasedAt).toBeUndefined();
    // Each unit waited (never failed), then succeeded once a copy served.
    expect(outcomes.filter((o) => o.outcome.status === 'failed')).toEqual([]);
    expect(outcomes.filter((o) => o.outcome.status === 'succeeded')).toHaveLength(planned.units.length);
    // The sweep after the first ask raised the copies, once; served within the cold start and a poll.
    expect(control.requests).toEqual([{ component, copies: 1 }]);
    const lastSuccess = Math.max(
      ...outcomes.filter((o) => o.outcome.status === 'succeeded').map((o) => o.at),
    );
    expect(lastSuccess - delivered).toBeLessThanOrEqual(60 + COLD_START_SECONDS + WARMING_POLL_SECONDS);
    // No sweep ever saw copies up without a run.
    expect(sweeps.some((s) => s.capacityWithoutRun)).toBe(false);
    const summary = await finalize(planned.run.runId);
    expect(summary?.status).toBe('succeeded');
    expect(summary?.capacity).toMatchObject({ copiesRaised: 'on-demand' });
    expect(summary?.stats.warmingDeferrals).toBeGreaterThan(0);
  });

  it('with no sweeper, each unit waits on its last receive with tries 20 s apart, and fails only past the warm-up limit', async () => {
    const planned = await plan('r-20261207T030000Z-bbbbbb');
    const outcomes = await runUntil(WARMUP_LIMIT_SECONDS + 400, { sweeping: false });
    expect(control.requests).toEqual([]);
    const deferred = outcomes.filter((o) => o.outcome.status === 'deferred');
    const failed = outcomes.filter((o) => o.outcome.status === 'failed');
    expect(failed).toHaveLength(planned.units.length);
    for (const { at } of failed) expect(at).toBeGreaterThan(WARMUP_LIMIT_SECONDS);
    for (const { at } of failed) expect(at).toBeLessThanOrEqual(WARMUP_LIMIT_SECONDS + 2);
    // 20 s apart up to the limit, the last wait ending just after it: 91 waits a unit, none
    // spending a receive (each delivery was its last).
    expect(deferred.length).toBe(planned.units.length * 91);
    for (const unit of planned.units) {
      const waits = queue.delays.filter((d) => d.unitId === unit.unitId).map((d) => d.delaySeconds);
      expect(waits).toEqual([...Array.from({ length: 90 }, () => WARMING_POLL_SECONDS), 1]);
      const stored = await runs.getUnit(planned.run.runId, unit.unitId);
      expect(stored?.status).toBe('failed');
      expect(stored?.lastError).toContain('had no capacity for 1800 s');
    }
  });

  it('a run that needs no copy: nothing marked or raised, no alarm, the lease released and the endpoint charged 0', async () => {
    const first = await plan('r-20261207T030000Z-cccccc');
    await runUntil(COLD_START_SECONDS + 600);
    expect((await finalize(first.run.runId))?.status).toBe('succeeded');
    const raised = control.requests.length;
    const calls = endpoint.calls;

    seconds = 86_400;
    sweeps = [];
    const second = await plan('r-20261208T030000Z-dddddd');
    await runUntil(seconds + 180);
    expect(endpoint.calls).toBe(calls);
    const summary = await finalize(second.run.runId);
    expect(summary?.status).toBe('succeeded');
    expect(summary?.capacity).toMatchObject({ copiesRaised: 'never', cooldown: { seconds: 0 } });
    expect(summary?.cost?.usage.endpointSeconds ?? 0).toBe(0);
    const lease = await leases.get(component, second.run.runId);
    expect(lease?.neededAt).toBeUndefined();
    expect(lease?.releasedBy).toBe('finalize');
    // Never raised, never flagged, and the sweeps after the release set nothing.
    await runUntil(seconds + 600, { from: seconds });
    expect(control.requests).toHaveLength(raised);
    expect(sweeps.length).toBeGreaterThan(0);
    expect(sweeps.some((s) => s.capacityWithoutRun || s.set !== undefined)).toBe(false);
  });
  it('a redriven run whose lease is still released when its units first ask: they wait, mark once the sweeper holds it again, and are charged both holds', async () => {
    const planned = await plan('r-20261207T030000Z-eeeeee');
    endpoint.failing = true;
    // Every unit marks the lease needed, then fails for good (its last receive).
    const failedFirst = await runUntil(0, { sweeping: false });
    expect(failedFirst.map((o) => o.outcome.status)).toEqual(planned.units.map(() => 'threw'));
    seconds = 20;
    const failedRun = await finalize(planned.run.runId);
    expect(failedRun?.status).toBe('failed');
    expect(failedRun?.capacity).toMatchObject({ copiesRaised: 'on-demand' });
    const firstHold = failedRun!.cost!.usage.endpointSeconds!;
    expect(firstHold).toBe(planned.capacity!.lease.copies * 20);

    // Redriven 80 s later: the sweeper holds the lease again at its next pass, not before.
    seconds = 100;
    endpoint.failing = false;
    const reopening = await runs.reopenFailedRun(planned.run.runId);
    expect(reopening.reopened).toBe(true);
    await queue.sendUnits(planned.units);
    const outcomes = await runUntil(100 + 1200);
    expect(queue.due).toEqual([]);
    expect(outcomes.filter((o) => o.outcome.status === 'failed')).toEqual([]);
    expect(outcomes.filter((o) => o.outcome.status === 'succeeded')).toHaveLength(planned.units.length);
    expect(sweeps.find((s) => s.renewed.length > 0)?.renewed).toEqual([planned.run.runId]);
    const lease = await leases.get(component, planned.run.runId);
    expect(lease?.releasedAt).toBeUndefined();
    // The first delivery (at 100) found the lease released; a later one marked it once the
    // renewal at 120 held it again (its try at 120 comes after that sweep).
    expect(Date.parse(lease!.neededAt!)).toBeGreaterThanOrEqual(T0 + 120_000);
    expect(control.requests).toEqual([{ component, copies: planned.capacity!.lease.copies }]);

    const summary = await finalize(planned.run.runId);
    expect(summary?.status).toBe('succeeded');
    expect(summary?.capacity).toMatchObject({ copiesRaised: 'on-demand', priorSeconds: 20 });
    // The second hold is charged from the sweep that raised the copies (the first after the
    // mark: a sweep in the mark's second runs before it), not from the mark: SageMaker bills
    // the copy from that set.
    const neededAt = (Date.parse(lease!.neededAt!) - T0) / 1000;
    const raisedAt = (Date.parse(lease!.raisedAt!) - T0) / 1000;
    expect(raisedAt).toBe(Math.floor(neededAt / 60) * 60 + 60);
    expect(raisedAt).toBeGreaterThan(neededAt);
    expect(summary?.capacity?.raisedAt).toBe(lease!.raisedAt);
    const secondHold = (seconds - raisedAt) * planned.capacity!.lease.copies;
    expect(summary?.cost?.usage.endpointSeconds).toBeCloseTo(firstHold + secondHold, 6);
  });
});
