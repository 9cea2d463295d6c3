import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { EndpointUnavailable, ModelError } from '../../shared/errors/errors.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { lengthVector } from '../support/length-vector.ts';
import { jsonl, pipelineConfig } from './factories.ts';

/** An endpoint double: refuses any input containing POISON with a 400, as a model container does. */
class FakeEndpoint implements EmbeddingEndpoint {
  calls = 0;
  failNext = 0;
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    this.calls += 1;
    stats.endpointCalls += 1;
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new EndpointUnavailable('endpoint returned 500');
    }
    if (inputs.some((t) => t.includes('POISON'))) throw new ModelError('input rejected', 400);
    return inputs.map((t) => lengthVector(t));
  }
}

class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  finalizeRequests: string[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize(runId: string) {
    this.finalizeRequests.push(runId);
  }
}

const RUN_ID = 'r-20261128T120000Z-abcdef';
const readParquet = async (store: MemoryObjectStore, key: string) =>
  parquetReadObjects({ file: (store.objects.get(key)! as Uint8Array).slice().buffer });

describe('processUnit', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let endpoint: FakeEndpoint;
  const config = pipelineConfig({
    batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 64 },
    workers: { maxReceiveCount: 3 },
  });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-work-'));
    store = new MemoryObjectStore(50);
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    endpoint = new FakeEndpoint();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const deps = () => ({ store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() });

  async function planOne(records: unknown[]) {
    await store.put('incoming/docs/a.jsonl', jsonl(records));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date('2026-11-28T12:00:00Z'),
    });
    return units[0]!;
  }

  it('bisects a refused batch down to the poisoned document and rejects only it', async () => {
    const docs = Array.from({ length: 20 }, (_, i) => ({
      id: `d${i}`,
      text: i === 13 ? 'this one is POISON to the model' : `document ${i} `.repeat(1 + i),
    }));
    const unit = await planOne(docs);
    const outcome = await processUnit(deps(), config, unit, { isLastAttempt: false });
    expect(outcome).toMatchObject({
      status: 'succeeded',
      finishedRun: true,
      counts: { records: 20, rejected: 1 },
    });
    const rows = await readParquet(store, unitPartKey('embeddings', 'docs', RUN_ID, unit.unitId));
    expect(new Set(rows.map((r) => r.doc_id))).toEqual(
      new Set(docs.filter((d) => d.id !== 'd13').map((d) => d.id)),
    );
    const rejects = await readParquet(store, unitPartKey('rejects', 'docs', RUN_ID, unit.unitId));
    expect(rejects).toEqual([
      expect.objectContaining({ line: 14n, reason: 'model rejected the input: input rejected' }),
    ]);
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
  });

  it('counts a unit once when it is delivered twice', async () => {
    const unit = await planOne([{ id: 'a', text: 'hello there' }]);
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:01:00Z'));
    const again = await processUnit(deps(), config, unit, { isLastAttempt: false });
    expect(again).toEqual({ status: 'duplicate' });
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    expect((await runs.getRun(RUN_ID))?.doneUnits).toBe(1);
  });

  it('asks for finalize again when a redelivered unit finds the run finished but not finalized', async () => {
    const unit = await planOne([{ id: 'a', text: 'hello there' }]);
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    queue.finalizeRequests = []; // the worker died before its finalize request left
    expect(await processUnit(deps(), config, unit, { isLastAttempt: false })).toEqual({
      status: 'duplicate',
    });
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:01:00Z'));
    queue.finalizeRequests = [];
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    expect(queue.finalizeRequests).toEqual([]);
  });

  it('keeps the unit retryable on a failed attempt and marks it failed on the last one', async () => {
    const unit = await planOne([{ id: 'a', text: 'hello there' }]);
    endpoint.failNext = 2;
    await expect(processUnit(deps(), config, unit, { isLastAttempt: false })).rejects.toThrow(
      'endpoint returned 500',
    );
    expect((await runs.listUnits(RUN_ID))[0]).toMatchObject({
      status: 'running',
      attempts: 1,
      lastError: 'endpoint returned 500',
    });
    await expect(processUnit(deps(), config, unit, { isLastAttempt: true })).rejects.toThrow(
      'endpoint returned 500',
    );
    expect((await runs.listUnits(RUN_ID))[0]).toMatchObject({ status: 'failed', attempts: 2 });
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:01:00Z'));
    expect(summary).toMatchObject({
      status: 'failed',
      failedUnits: [{ unitId: unit.unitId, lastError: 'endpoint returned 500' }],
    });
  });

  it('finalizes exactly once and writes the summary and runs row', async () => {
    const unit = await planOne([{ id: 'a', text: 'hello there' }, 'not json']);
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    const [first, second] = await Promise.all([
      finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:01:00Z')),
      finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:01:00Z')),
    ]);
    expect([first, second].filter(Boolean)).toHaveLength(1);
    const summary = (first ?? second)!;
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: 2, rejected: 1, units: 1, chunks: 1, embedded: 1 },
    });
    expect(
      JSON.parse(new TextDecoder().decode(store.objects.get(`runs/docs/${RUN_ID}/summary.json`))),
    ).toEqual(summary);
    const row = await readParquet(store, `results/runs/pipeline=docs/run_date=2026-11-28/${RUN_ID}.parquet`);
    expect(row).toEqual([
      expect.objectContaining({ run_id: RUN_ID, status: 'succeeded', records: 2n, rejected: 1n }),
    ]);
  });
});
