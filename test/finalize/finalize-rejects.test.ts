import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { EmbedPipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { runSummaryKey } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { lengthVector } from '../support/length-vector.ts';

const endpoint: EmbeddingEndpoint = {
  async embed(inputs: readonly string[], stats: CallStats) {
    stats.endpointCalls += 1;
    return inputs.map((t) => lengthVector(t));
  },
};

const noQueue: WorkQueue = { sendUnits: async () => {}, requestFinalize: async () => {} };

describe('finalizeRun and run.toleratedRejectPercent', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-rejects-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** 10 records, `bad` of them without the text field; planned, worked and finalized. */
  async function runWithRejects(
    runId: string,
    bad: number,
    config: EmbedPipelineConfig,
    known: ReadonlyMap<string, EmbedPipelineConfig> = new Map([[config.name, config]]),
  ): Promise<RunSummary | undefined> {
    const key = `incoming/docs/${runId}.jsonl`;
    const docs = Array.from({ length: 10 }, (_, i) =>
      i < bad ? { id: `d${i}`, body: `doc ${i}` } : { id: `d${i}`, text: `doc ${i}` },
    );
    await store.put(key, jsonl(docs));
    const now = new Date('2026-12-07T01:00:00Z');
    const { units } = await planRun({ store, runs, queue: noQueue }, config, {
      runId,
      trigger: 'local',
      keys: [key],
      now,
    });
    const deps = { store, runs, queue: noQueue, endpoint, tokenCounter: new EstimatingTokenCounter() };
    for (const unit of units)
      await processUnit(deps, config, unit, { isLastAttempt: false, memoryMiB: 1024 });
    return finalizeRun({ store, runs, pipelines: known }, runId, new Date('2026-12-07T01:01:00Z'));
  }

  it('ends a run whose rejects exceed the share failed, with the reason, its rejects and its results', async () => {
    const runId = 'r-20261207T010000Z-aaaaaa';
    const summary = await runWithRejects(runId, 2, pipelineConfig());
    expect(summary).toMatchObject({
      status: 'failed',
      failureReason: 'rejects 20% of 10 records exceed run.toleratedRejectPercent 10',
      counts: { records: 10, rejected: 2, embedded: 8 },
      failedUnits: [],
    });
    expect((await runs.getRun(runId))?.status).toBe('failed');
    expect((await runs.getSummary(runId))?.failureReason).toBe(summary?.failureReason);
    const written = JSON.parse(new TextDecoder().decode(await store.get(runSummaryKey('docs', runId))));
    expect(written).toMatchObject({ status: 'failed', failureReason: summary?.failureReason });
    const keys: string[] = [];
    for await (const object of store.list('results/')) keys.push(object.key);
    expect(keys.some((k) => k.includes('rejects'))).toBe(true);
    expect(keys.some((k) => k.includes('embeddings'))).toBe(true);
  });

  it('lets a run exactly at the share succeed, without a reason', async () => {
    const summary = await runWithRejects('r-20261207T010000Z-bbbbbb', 1, pipelineConfig());
    expect(summary?.status).toBe('succeeded');
    expect(summary?.failureReason).toBeUndefined();
  });

  it('takes the pipeline’s own share: 100 never fails a run for its rejects', async () => {
    const summary = await runWithRejects(
      'r-20261207T010000Z-cccccc',
      10,
      pipelineConfig({ run: { toleratedRejectPercent: 100 } }),
    );
    expect(summary).toMatchObject({ status: 'succeeded', counts: { records: 10, rejected: 10 } });
  });

  it('does not judge a run whose pipeline config finalize does not have (the setting is unknown)', async () => {
    const summary = await runWithRejects('r-20261207T010000Z-dddddd', 5, pipelineConfig(), new Map());
    expect(summary).toMatchObject({ status: 'succeeded', counts: { records: 10, rejected: 5 } });
    expect(summary?.failureReason).toBeUndefined();
  });
});
