import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { EndpointWarming } from '../../shared/errors/errors.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { nextWarmingStep, warmingPolicyOf } from '../../shared/work/warming.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { lengthVector } from '../support/length-vector.ts';

/** An endpoint with no capacity for its first `coldCalls` calls, then serving. */
class ColdEndpoint implements EmbeddingEndpoint {
  calls = 0;
  constructor(private coldCalls: number) {}
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    this.calls += 1;
    stats.endpointCalls += 1;
    if (this.coldCalls > 0) {
      this.coldCalls -= 1;
      throw new EndpointWarming('sluice-docs-embed', 'endpoint sluice-docs-embed has no capacity yet');
    }
    return inputs.map((t) => lengthVector(t));
  }
}

class DelayingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  later: { unit: WorkUnit; delaySeconds: number }[] = [];
  finalizeRequests: string[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize(runId: string) {
    this.finalizeRequests.push(runId);
  }
  async sendUnitLater(unit: WorkUnit, delaySeconds: number) {
    this.later.push({ unit, delaySeconds });
  }
}

const RUN_ID = 'r-20261207T030000Z-abcdef';
const T0 = Date.parse('2026-12-07T03:00:00Z');

describe('nextWarmingStep', () => {
  const config = pipelineConfig();
  const policy = warmingPolicyOf(config);
  const unit = { unitId: 'u1' } as WorkUnit;

  it("tries every 20 s by default (WARMING_POLL_SECONDS), within the pipeline's warm-up limit", () => {
    expect(policy).toEqual({ firstDelaySeconds: 20, maxDelaySeconds: 20, limitSeconds: 1800 });
    const delays: number[] = [];
    let current = unit;
    let now = T0;
    for (let step = nextWarmingStep(current, 'sluice-docs-embed', now, policy); step.kind === 'wait'; ) {
      delays.push(step.delaySeconds);
      current = step.unit;
      now += step.delaySeconds * 1000;
      step = nextWarmingStep(current, 'sluice-docs-embed', now, policy);
    }
    // 90 waits of 20 s reach the limit exactly; one more of 1 s ends just past it, for one
    // more try, and the unit gives up then.
    expect(delays).toEqual([...Array.from({ length: 90 }, () => 20), 1]);
    expect(now).toBe(T0 + 1801_000);
  });

  it("waits 30 s, then doubles up to 900 s when told to, within the pipeline's warm-up limit", () => {
    const policy = warmingPolicyOf(config, { firstDelaySeconds: 30, maxDelaySeconds: 900 });
    const delays: number[] = [];
    let current = unit;
    let now = T0;
    for (let step = nextWarmingStep(current, 'sluice-docs-embed', now, policy); step.kind === 'wait'; ) {
      expect(step.unit.warmingSince).toBe(T0);
      expect(step.unit.warmingDeferrals).toBe(delays.length + 1);
      delays.push(step.delaySeconds);
      current = step.unit;
      now += step.delaySeconds * 1000;
      step = nextWarmingStep(current, 'sluice-docs-embed', now, policy);
    }
    // The sixth wait (960 s) would end past the limit: it ends just after it instead, for
    // one more try, and the unit gives up then.
    expect(delays).toEqual([30, 60, 120, 240, 480, 1800 - 930 + 1]);
    expect(now).toBe(T0 + 1801_000);
  });

  it('gives up past the limit with one line naming the endpoint and the setting', () => {
    const waiting = { ...unit, warmingSince: T0, warmingDeferrals: 6 };
    const step = nextWarmingStep(waiting, 'sluice-docs-embed', T0 + 1801_000, policy);
    expect(step).toEqual({
      kind: 'give-up',
      reason:
        "endpoint sluice-docs-embed had no capacity for 1800 s (capacity.warmupLimitSeconds); check the capacity sweeper and the endpoint's events",
    });
  });
});

describe('processUnit on a cold endpoint', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: DelayingQueue;
  const config = pipelineConfig({ workers: { maxReceiveCount: 3 } });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-warming-'));
    store = new MemoryObjectStore(50);
    runs = new LocalRunStore(dir);
    queue = new DelayingQueue();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function planOne(records: unknown[]): Promise<WorkUnit> {
    await store.put('incoming/docs/a.jsonl', jsonl(records));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date(T0),
    });
    return units[0]!;
  }

  const docs = Array.from({ length: 6 }, (_, i) => ({ id: `d${i}`, text: `document ${i}` }));

  it('sends the unit back with a delay and ends the delivery as handled, even on its last attempt', async () => {
    const unit = await planOne(docs);
    const endpoint = new ColdEndpoint(1);
    const deps = { store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() };

    const outcome = await processUnit(deps, config, unit, { isLastAttempt: true, now: () => T0 });

    expect(outcome).toEqual({ status: 'deferred', delaySeconds: 20, warmingSince: T0 });
    expect(queue.later).toEqual([
      { unit: { ...unit, warmingSince: T0, warmingDeferrals: 1 }, delaySeconds: 20 },
    ]);
    const state = (await runs.listUnits(RUN_ID))[0]!;
    expect(state.status).not.toBe('failed');
    expect(state.attempts).toBe(1);
    expect(state.lastError).toMatch(/^waiting for endpoint capacity/);
    expect(store.objects.has(unitPartKey('embeddings', 'docs', RUN_ID, unit.unitId))).toBe(false);
    expect(queue.finalizeRequests).toEqual([]);
  });

  it('starts the wait afresh when capacity goes after serving the delivery: no give-up on an old first cold answer', async () => {
    // Waited long ago (past the warm-up limit), served in this delivery, then cold again:
    // the unit waits from now instead of giving up at once.
    const oneCallAtATime = pipelineConfig({
      workers: { maxReceiveCount: 3 },
      batching: { maxBatchSize: 2 },
      endpoint: { name: 'sluice-docs-embed', dimension: 16, concurrency: 1, initialConcurrency: 1 },
    });
    await store.put('incoming/docs/a.jsonl', jsonl(docs));
    const { units } = await planRun({ store, runs, queue }, oneCallAtATime, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date(T0),
    });
    const endpoint = {
      calls: 0,
      async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
        this.calls += 1;
        stats.endpointCalls += 1;
        if (this.calls > 1) throw new EndpointWarming('sluice-docs-embed', 'no capacity again');
        return inputs.map((t) => lengthVector(t));
      },
    };
    const waitedLongAgo = { ...units[0]!, warmingSince: T0 - 3_600_000, warmingDeferrals: 40 };
    const deps = { store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() };

    const outcome = await processUnit(deps, oneCallAtATime, waitedLongAgo, {
      isLastAttempt: true,
      now: () => T0,
    });

    expect(endpoint.calls).toBeGreaterThan(1);
    expect(outcome).toEqual({ status: 'deferred', delaySeconds: 20, warmingSince: T0 });
    expect(queue.later[0]?.unit).toMatchObject({ warmingSince: T0, warmingDeferrals: 1 });
  });

  it('counts every record once after waiting, and the deferrals in the run summary', async () => {
    const unit = await planOne(docs);
    const endpoint = new ColdEndpoint(2);
    const deps = { store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() };

    let message = unit;
    let now = T0;
    for (;;) {
      const outcome = await processUnit(deps, config, message, { isLastAttempt: false, now: () => now });
      if (outcome.status !== 'deferred') {
        expect(outcome).toMatchObject({ status: 'succeeded', counts: { records: 6, warmingDeferrals: 2 } });
        break;
      }
      const sent = queue.later.shift()!;
      message = sent.unit;
      now += sent.delaySeconds * 1000;
    }
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date(now));

    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: 6, failedUnits: 0 },
      stats: { warmingDeferrals: 2 },
    });
  });

  it('fails the unit for good past the warm-up limit, so the run fails with the reason', async () => {
    const unit = await planOne(docs);
    const endpoint = new ColdEndpoint(Number.POSITIVE_INFINITY);
    const deps = { store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() };
    const waiting = { ...unit, warmingSince: T0, warmingDeferrals: 5 };

    const outcome = await processUnit(deps, config, waiting, {
      isLastAttempt: false,
      now: () => T0 + 1801_000,
    });

    const reason =
      "endpoint sluice-docs-embed had no capacity for 1800 s (capacity.warmupLimitSeconds); check the capacity sweeper and the endpoint's events";
    expect(outcome).toEqual({ status: 'failed', reason });
    expect(queue.later).toEqual([]);
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date(T0 + 1802_000));
    expect(summary).toMatchObject({
      status: 'failed',
      failedUnits: [{ unitId: unit.unitId, lastError: reason }],
    });
  });

  it('lets the warming error through as a failed delivery when the queue cannot delay a message', async () => {
    const unit = await planOne(docs);
    const plainQueue: WorkQueue = {
      sendUnits: (units) => queue.sendUnits(units),
      requestFinalize: (runId) => queue.requestFinalize(runId),
    };
    const deps = {
      store,
      runs,
      queue: plainQueue,
      endpoint: new ColdEndpoint(1),
      tokenCounter: new EstimatingTokenCounter(),
    };

    await expect(processUnit(deps, config, unit, { isLastAttempt: false })).rejects.toBeInstanceOf(
      EndpointWarming,
    );
  });
});
