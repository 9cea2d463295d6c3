import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPlanHandler, type PlanHandlerDeps } from '../../functions/plan.ts';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { WORKERS_LEASE_COMPONENT, workerScalingOf } from '../../shared/capacity/workers.ts';
import { type PipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { planScheduledRun } from '../../shared/plan/plan-ingest.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { MemoryWorkerConcurrency } from '../support/memory-worker-concurrency.ts';
import { aLambdaContext, anIngestEvent, SAMPLE_BUCKET, testObservability } from './factories.ts';

class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize() {}
}

const NOW = new Date('2026-12-07T03:00:00.000Z');
const SOURCE = 'incoming/credit-risk/sample.csv';

/**
 * Plan in a stack whose workers follow the copies (issue 14): a run of a pipeline in a split
 * stack's compute pool works from the compute queue, whose limit the stack fixes, so it takes
 * no workers lease and leaves the work queue's limit alone.
 */
describe('plan: workers leases by work pool', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let leases: LocalCapacityLeases;
  let concurrency: MemoryWorkerConcurrency;
  let queue: RecordingQueue;
  let docs: PipelineConfig;
  let inWorker: PipelineConfig;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-plan-pools-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(path.join(dir, 'runs'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    concurrency = new MemoryWorkerConcurrency(2);
    queue = new RecordingQueue();
    docs = parsePipelineConfig(JSON.parse(await readFile('pipelines/docs.json', 'utf8')));
    const creditRisk = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
    inWorker = parsePipelineConfig({
      ...creditRisk,
      schedule: undefined,
      model: { ...creditRisk.model, hosting: 'in-worker' },
      workers: { maxConcurrency: 6 },
    });
    for (const name of ['feature-stats.json', 'occupation-embedding.json', 'model.json'])
      await store.put(`models/credit-risk/${name}`, await readFile(`pipelines/models/credit-risk/${name}`));
    await store.put(SOURCE, await readFile('events/data/credit-sample.csv'));
    await store.put('datasets/credit/a.csv', await readFile('events/data/credit-sample.csv'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** The plan function's deps in a stack serving `pipelines`, its workers following the copies. */
  function depsOf(pipelines: readonly PipelineConfig[]): PlanHandlerDeps {
    const capacities = pipelines.flatMap((p) => pipelineCapacityOf(p) ?? []);
    return {
      pipelines: new Map(pipelines.map((p) => [p.name, p])),
      bucket: SAMPLE_BUCKET,
      store,
      runs,
      queue,
      capacity: {
        leases,
        control: new LocalCapacityControl(),
        workers: workerScalingOf(concurrency, pipelines, capacities),
      },
    };
  }

  async function planDrop(deps: PlanHandlerDeps): Promise<SQSBatchResponse> {
    const handler = createPlanHandler(deps, { ...testObservability(), now: () => NOW });
    return (await handler(anIngestEvent(SOURCE), aLambdaContext())) as SQSBatchResponse;
  }

  const workersLeases = async () => leases.list(WORKERS_LEASE_COMPONENT);

  it('a run of an in-worker pipeline in a split stack takes no workers lease and leaves the limit alone', async () => {
    const response = await planDrop(depsOf([docs, inWorker]));

    expect(response.batchItemFailures).toEqual([]);
    expect(queue.units.length).toBeGreaterThan(0);
    expect(queue.units.every((u) => u.pipeline === 'credit-risk')).toBe(true);
    expect(await workersLeases()).toEqual([]);
    expect(concurrency.sets).toEqual([]);
  });

  it('the same run in a stack of compute pipelines only (one work queue) takes its workers lease, as before', async () => {
    const response = await planDrop(depsOf([inWorker]));

    expect(response.batchItemFailures).toEqual([]);
    expect(await workersLeases()).toMatchObject([{ component: WORKERS_LEASE_COMPONENT, copies: 6 }]);
    expect(concurrency.maximum).toBe(6);
  });

  it('a scheduled run taken up again takes no workers lease in a split stack, and takes it in one that is not split', async () => {
    const tick = {
      pipeline: 'credit-risk',
      prefix: 'datasets/credit/',
      scheduledTime: '2026-12-07T03:00:00Z',
    };
    // The attempt that recorded the run died before its lease (deps without capacity).
    const first = await planScheduledRun(
      { store, runs, queue },
      new Map([['credit-risk', inWorker]]),
      tick,
      () => NOW,
    );
    expect('planned' in first).toBe(true);

    const split = depsOf([docs, inWorker]);
    const resumed = await planScheduledRun(split, split.pipelines, tick, () => NOW);
    expect('resumed' in resumed && resumed.capacity).toBe(undefined);
    expect(await workersLeases()).toEqual([]);

    const alone = depsOf([inWorker]);
    const again = await planScheduledRun(alone, alone.pipelines, tick, () => NOW);
    expect('resumed' in again && again.capacity?.lease).toMatchObject({ component: WORKERS_LEASE_COMPONENT });
    expect(await workersLeases()).toHaveLength(1);
  });
});
