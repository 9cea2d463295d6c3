import { beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { lengthVector } from '../support/length-vector.ts';

const endpoint: EmbeddingEndpoint = {
  async embed(inputs: readonly string[], stats: CallStats) {
    stats.endpointCalls += 1;
    await new Promise((resolve) => setTimeout(resolve, 10));
    return inputs.map((t) => lengthVector(t));
  },
};
const noQueue: WorkQueue = { sendUnits: async () => {}, requestFinalize: async () => {} };

describe('a run priced from usage stored in DynamoDB (dynalite)', () => {
  const dynalite = useDynaliteTables({
    tablePrefix: 'sluice-cost-runs',
    translateConfig: { marshallOptions: { removeUndefinedValues: true } },
  });
  let runs: DynamoRunStore;

  beforeAll(async () => {
    runs = new DynamoRunStore({ doc: dynalite.doc, tableName: await dynalite.newTable() });
  });

  it('keeps each unit’s usage with its counts and prices the run at finalize, as measured', async () => {
    const config = pipelineConfig({ batching: { maxBatchTokens: 4096, maxBatchSize: 2, sortWindow: 64 } });
    const store = new MemoryObjectStore(50);
    const runId = 'r-20261207T010000Z-dddddd';
    await store.put(
      'incoming/docs/a.jsonl',
      jsonl([1, 2, 3].map((i) => ({ id: `d${i}`, text: `doc ${i}` }))),
    );
    const { units } = await planRun({ store, runs, queue: noQueue }, config, {
      runId,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date('2026-12-07T01:00:00Z'),
    });
    const deps = { store, runs, queue: noQueue, endpoint, tokenCounter: new EstimatingTokenCounter() };
    for (const unit of units)
      await processUnit(deps, config, unit, { isLastAttempt: false, memoryMiB: 1769 });

    const stored = await runs.listUnits(runId);
    expect(stored[0]?.counts?.usage).toMatchObject({ memoryMiB: 1769, s3Puts: expect.any(Number) });
    expect(stored[0]?.counts?.usage?.workerMs).toBeGreaterThan(0);

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
    expect(summary?.cost).toMatchObject({ estimate: false, region: 'us-east-1', currency: 'USD' });
    expect(summary?.cost?.usage.endpointSeconds).toBeGreaterThan(0);
    expect(summary?.cost?.usage.dynamoWrites).toBeGreaterThanOrEqual(2 * units.length);
    // The summary DynamoDB keeps is the one with the cost.
    expect((await runs.getSummary(runId))?.cost).toEqual(summary?.cost);
  });
});
