import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PipelineEndpointRegistry } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { ModelFormatError } from '../../shared/scoring/errors.ts';
import { processUnit } from '../../shared/work/process-unit.ts';

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

const RUN_ID = 'r-20261207T030000Z-abcdef';
const SOURCE = 'incoming/credit-risk/sample.csv';

/**
 * The deployed work path of an in-worker scoring pipeline: processUnit with the model the
 * registry builds over the object store (as functions/work.ts does), no SageMaker client.
 */
describe('a unit of an in-worker scoring pipeline', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let config: ScorePipelineConfig;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-in-worker-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    const raw = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
    raw.model.hosting = 'in-worker';
    config = parsePipelineConfig(raw) as ScorePipelineConfig;
    for (const name of ['feature-stats.json', 'occupation-embedding.json', 'model.json'])
      await store.put(`models/credit-risk/${name}`, await readFile(`pipelines/models/credit-risk/${name}`));
    await store.put(SOURCE, await readFile('events/data/credit-sample.csv'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const deps = () => ({
    store,
    runs,
    queue,
    tokenCounter: new EstimatingTokenCounter(),
    ...new PipelineEndpointRegistry(
      () => {
        throw new Error('in-worker scoring must not make a SageMaker client');
      },
      { store },
    ).endpointsFor(config),
  });

  async function planOne(): Promise<WorkUnit> {
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 's3',
      keys: [SOURCE],
      now: new Date('2026-12-07T03:00:00Z'),
    });
    expect(units).toHaveLength(1);
    return units[0]!;
  }

  it('scores every row with no endpoint call', async () => {
    const unit = await planOne();
    const outcome = await processUnit(deps(), config, unit, { isLastAttempt: false });
    expect(outcome).toMatchObject({
      status: 'succeeded',
      counts: { scored: 2000, rejected: 3, endpointCalls: 0, throttled: 0, retries: 0 },
    });
  });

  it('fails the unit at its first delivery, with one line, when the model is corrupt: no record is rejected for it', async () => {
    // Replaced after planning: plan's schema check reads the model and would stop the run
    // first. The unit reads the current object (no pinned model version, as an older
    // planner's), else it would read the version planned on and never see the corrupt one.
    const { modelPin: _pinned, ...unit } = await planOne();
    await store.put('models/credit-risk/model.json', '{"learner": {"objective": ');
    const error = await processUnit(deps(), config, unit, { isLastAttempt: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelFormatError);
    const line = 'models/credit-risk/model.json: not valid JSON (Unexpected end of JSON input)';
    expect((error as Error).message).toBe(line);
    // Not left for SQS to redeliver maxReceiveCount times: failed now, and the run with it.
    expect((await runs.listUnits(RUN_ID))[0]).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastError: line,
    });
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-12-07T03:01:00Z'));
    expect(summary).toMatchObject({
      status: 'failed',
      counts: { scored: 0, rejected: 0 },
      failedUnits: [{ unitId: unit.unitId, lastError: line }],
    });
  });
});
