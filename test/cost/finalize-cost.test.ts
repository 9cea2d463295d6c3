import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { lengthVector } from '../support/length-vector.ts';

/** An endpoint that takes 30 ms a call, so the run keeps it busy for a measurable time. */
const slowEndpoint: EmbeddingEndpoint = {
  async embed(inputs: readonly string[], stats: CallStats) {
    stats.endpointCalls += 1;
    await new Promise((resolve) => setTimeout(resolve, 30));
    return inputs.map((t) => lengthVector(t));
  },
};

const noQueue: WorkQueue = { sendUnits: async () => {}, requestFinalize: async () => {} };

describe('finalizeRun pricing a run', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  const config = pipelineConfig({ batching: { maxBatchTokens: 4096, maxBatchSize: 2, sortWindow: 64 } });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-cost-'));
    store = new MemoryObjectStore(50);
    runs = new LocalRunStore(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function runOneUnit(runId: string): Promise<WorkUnit> {
    await store.put(
      `incoming/docs/${runId}.jsonl`,
      jsonl([1, 2, 3, 4].map((i) => ({ id: `d${i}`, text: `doc ${i}` }))),
    );
    const { units } = await planRun({ store, runs, queue: noQueue }, config, {
      runId,
      trigger: 'local',
      keys: [`incoming/docs/${runId}.jsonl`],
      now: new Date('2026-12-07T01:00:00Z'),
    });
    const unit = units[0]!;
    const deps = {
      store,
      runs,
      queue: noQueue,
      endpoint: slowEndpoint,
      tokenCounter: new EstimatingTokenCounter(),
    };
    await processUnit(deps, config, unit, { isLastAttempt: false, memoryMiB: 1024 });
    return unit;
  }

  it('prices measured usage with the region’s prices, marked measured', async () => {
    const runId = 'r-20261207T010000Z-aaaaaa';
    await runOneUnit(runId);
    const summary = await finalizeRun(
      {
        store,
        runs,
        pipelines: new Map([[config.name, config]]),
        costing: { region: 'us-east-1', estimate: false },
      },
      runId,
      new Date('2026-12-07T01:01:00Z'),
    );
    const cost = summary?.cost;
    if (!cost) throw new Error('no cost');
    expect(cost.estimate).toBe(false);
    // Two calls of 30 ms, possibly in flight together: the window is at least one call long.
    expect(cost.usage.endpointSeconds).toBeGreaterThanOrEqual(0.025);
    expect(cost.usage.instanceType).toBe(config.endpoint.instanceType);
    // 1 GiB: the GB-seconds are the delivery's seconds.
    expect(cost.usage.lambdaGbSeconds).toBeGreaterThanOrEqual(cost.usage.endpointSeconds);
    const prices = pricesFor('us-east-1');
    const hourly = prices.sagemakerInstanceHour[config.endpoint.instanceType]!.usd;
    expect(cost.endpoint).toBeCloseTo((cost.usage.endpointSeconds / 3600) * hourly, 6);
    expect(cost.lambda).toBeCloseTo(
      cost.usage.lambdaGbSeconds * prices.lambdaArmGbSecond.usd +
        cost.usage.lambdaRequests * prices.lambdaRequest.usd,
      6,
    );
  });

  it('leaves a run in a region without prices unpriced, saying so in one line, and still finishes it', async () => {
    const runId = 'r-20261207T010000Z-bbbbbb';
    await runOneUnit(runId);
    const summary = await finalizeRun(
      {
        store,
        runs,
        pipelines: new Map([[config.name, config]]),
        costing: { region: 'eu-west-1', estimate: false },
      },
      runId,
      new Date('2026-12-07T01:01:00Z'),
    );
    expect(summary?.status).toBe('succeeded');
    expect(summary?.cost).toBeUndefined();
    expect(summary?.costUnknown).toMatch(/^no sourced prices for region eu-west-1 [^\n]*$/);
  });
});
