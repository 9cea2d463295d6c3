import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFinalizeHandler } from '../../functions/finalize.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { CapacityControlError } from '../../shared/capacity/errors.ts';
import { inferenceComponentNameOf, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import type { WorkerConcurrency } from '../../shared/capacity/worker-concurrency.ts';
import { workerScalingOf } from '../../shared/capacity/workers.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import type { CapacityControl } from '../../shared/ports/capacity-control.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import {
  aFinalizeEvent,
  aLambdaContext,
  anIngestEvent,
  SAMPLE_BUCKET,
  testObservability,
} from '../functions/factories.ts';

const NOW = new Date('2026-12-07T03:00:00.000Z');
const COMPONENT = inferenceComponentNameOf('docs-embed');

/** The plan and finalize handlers over local ports: what run-scoped capacity adds to each. */
describe('plan and finalize handlers with run-scoped capacity', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let runs: LocalRunStore;
  let store: MemoryObjectStore;
  let sent: WorkUnit[];
  const queue: WorkQueue = {
    sendUnits: async (units) => {
      sent.push(...units);
    },
    requestFinalize: async () => {},
  };
  const docs = pipelineConfig({ name: 'docs', endpoint: { name: 'docs-embed', dimension: 16 } });
  const pipelines = new Map<string, PipelineConfig>([['docs', docs]]);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-handlers-capacity-'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
    store = new MemoryObjectStore();
    sent = [];
    await store.put('incoming/docs/a.jsonl', jsonl([{ id: 'd1', text: 'one two three' }]));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const plan = (
    control: CapacityControl,
    options: { pipeline?: PipelineConfig; workers?: ReturnType<typeof workerScalingOf> } = {},
  ) => {
    const observability = testObservability();
    const handler = createPlanHandler(
      {
        pipelines: options.pipeline ? new Map([['docs', options.pipeline]]) : pipelines,
        bucket: SAMPLE_BUCKET,
        store,
        runs,
        queue,
        capacity: { leases, control, ...(options.workers && { workers: options.workers }) },
      },
      { ...observability, now: () => NOW },
    );
    return { handler, observability };
  };

  it('plan takes the run’s lease and raises the copies', async () => {
    const control = new LocalCapacityControl();
    const { handler, observability } = plan(control);
    const response = await handler(anIngestEvent('incoming/docs/a.jsonl'), aLambdaContext());
    expect(response).toEqual({ batchItemFailures: [] });
    const runId = sent[0]!.runId;
    expect(await leases.get(COMPONENT, runId)).toMatchObject({ copies: 1, takenAt: NOW.toISOString() });
    expect(control.requests).toEqual([{ component: COMPONENT, copies: 1 }]);
    expect(observability.logged('info').join('\n')).toContain('capacity lease taken');
  });

  it('plan raises the work event source limit to the copies x workersPerCopy the leases hold, and logs it', async () => {
    const three = pipelineConfig({
      name: 'docs',
      endpoint: { name: 'docs-embed', dimension: 16, capacity: { workersPerCopy: 3 } },
    });
    let limit: number | undefined = 2;
    const concurrency: WorkerConcurrency = {
      current: async () => limit,
      set: async (maximum) => {
        limit = maximum;
        return { applied: true };
      },
    };
    const workers = workerScalingOf(concurrency, [three], [pipelineCapacityOf(three)!]);
    const { handler, observability } = plan(new LocalCapacityControl(), { pipeline: three, workers });
    expect(await handler(anIngestEvent('incoming/docs/a.jsonl'), aLambdaContext())).toEqual({
      batchItemFailures: [],
    });
    expect(limit).toBe(3);
    expect(observability.logged('info').join('\n')).toContain('"raisedTo":3');
  });

  it('plan says when raising the workers limit is deferred to the sweeper (a busy event source past its wait budget)', async () => {
    const three = pipelineConfig({
      name: 'docs',
      endpoint: { name: 'docs-embed', dimension: 16, capacity: { workersPerCopy: 3 } },
    });
    const busy: WorkerConcurrency = {
      current: async () => 2,
      set: async () => ({
        applied: false,
        reason: 'the event source mapping is being updated (ResourceInUseException)',
      }),
    };
    let clock = 0;
    const workers = workerScalingOf(busy, [three], [pipelineCapacityOf(three)!], {
      budgetMs: 1_000,
      baseDelayMs: 500,
      maxDelayMs: 500,
      sleep: async (ms) => {
        clock += ms;
      },
      now: () => clock,
      random: () => 0.5,
    });
    const { handler, observability } = plan(new LocalCapacityControl(), { pipeline: three, workers });
    expect(await handler(anIngestEvent('incoming/docs/a.jsonl'), aLambdaContext())).toEqual({
      batchItemFailures: [],
    });
    const info = observability.logged('info').join('\n');
    expect(info).toContain('raising the workers limit is deferred, the capacity sweeper raises it');
    expect(info).toContain('ResourceInUseException');
  });

  it('plan still succeeds when the copies cannot be raised, and says the sweeper retries', async () => {
    const denied: CapacityControl = {
      describe: async () => {
        throw new CapacityControlError(COMPONENT, 'cannot describe (AccessDeniedException)', false);
      },
      setCopies: async () => ({ applied: true }),
    };
    const { handler, observability } = plan(denied);
    const response = await handler(anIngestEvent('incoming/docs/a.jsonl'), aLambdaContext());
    expect(response).toEqual({ batchItemFailures: [] });
    expect(sent).toHaveLength(1);
    expect(await leases.list(COMPONENT)).toHaveLength(1);
    expect(observability.logged('warn').join('\n')).toContain('the capacity sweeper retries');
  });

  it('finalize releases the lease once, however often the request comes', async () => {
    await plan(new LocalCapacityControl()).handler(anIngestEvent('incoming/docs/a.jsonl'), aLambdaContext());
    const unit = sent[0]!;
    await runs.failUnit(unit.runId, unit.unitId, 'endpoint stayed cold');
    const observability = testObservability();
    const finalize = createFinalizeHandler(
      { store, runs, pipelines, capacity: { leases, control: new LocalCapacityControl() } },
      { ...observability, now: () => new Date(NOW.getTime() + 60_000) },
    );
    await finalize(aFinalizeEvent(unit.runId, unit.runId), aLambdaContext());
    expect(await leases.get(COMPONENT, unit.runId)).toMatchObject({
      releasedAt: '2026-12-07T03:01:00.000Z',
      releasedBy: 'finalize',
    });
    expect((await runs.getSummary(unit.runId))?.capacity).toEqual({
      component: COMPONENT,
      copies: 1,
      takenAt: NOW.toISOString(),
      releasedAt: '2026-12-07T03:01:00.000Z',
      // No schedule and no history: the copies go at the release, no cooldown charged.
      cooldown: { seconds: 0, reason: 'none' },
    });
    expect(observability.logged('info').join('\n')).toContain('capacity lease released');
  });
});
