import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runIdSchema } from '../../functions/messages/run-id.ts';
import { createPlanHandler, type ScheduledRunResult } from '../../functions/plan.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { scheduledRunId } from '../../shared/plan/scheduled-run.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import {
  aLambdaContext,
  anEnvironment,
  anSqsRecord,
  aPipeline,
  sqsEventOf,
  testObservability,
} from './factories.ts';

const TICK = {
  kind: 'scheduled-run',
  pipeline: 'docs',
  prefix: 'datasets/docs/',
  scheduledTime: '2026-12-07T02:00:00Z',
  schedule: 'arn:aws:scheduler:us-east-1:123456789012:schedule/default/Sluice-docs',
} as const;

/** A work queue that records what it was sent, and fails the sends it is told to. */
class RecordingQueue implements WorkQueue {
  readonly sent: WorkUnit[] = [];
  readonly finalizeRequests: string[] = [];
  failSends = 0;
  async sendUnits(units: readonly WorkUnit[]): Promise<void> {
    if (this.failSends > 0) {
      this.failSends--;
      throw new Error('SQS unavailable (simulated)');
    }
    this.sent.push(...units);
  }
  async requestFinalize(runId: string): Promise<void> {
    this.finalizeRequests.push(runId);
  }
}

describe('scheduled runs', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-scheduled-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    const lines = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ id: `d${i}`, text: `document ${i} `.repeat(30) }),
    );
    await store.put('datasets/docs/a.jsonl', `${lines.join('\n')}\n`);
    await store.put('datasets/docs/b.jsonl', `${lines.slice(0, 10).join('\n')}\n`);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const handler = () => {
    const env = anEnvironment([aPipeline('docs', { planning: { targetUnitTokens: 500 } })]);
    return createPlanHandler(
      { pipelines: env.pipelines, bucket: env.bucket, store, runs, queue },
      { ...testObservability(), now: () => new Date('2026-12-07T02:00:03.120Z') },
    );
  };
  const deliver = (body: unknown, receiveCount = 1) =>
    handler()(
      sqsEventOf(anSqsRecord(JSON.stringify(body), { queue: 'sluice-ingest', receiveCount })),
      aLambdaContext(),
    ) as Promise<SQSBatchResponse>;

  it('derives the run id from the pipeline, the prefix and the scheduled time', () => {
    const id = scheduledRunId(TICK);
    expect(id).toMatch(/^r-20261207T020000Z-[0-9a-f]{12}$/);
    expect(runIdSchema.safeParse(id).success).toBe(true);
    expect(scheduledRunId({ ...TICK, scheduledTime: '2026-12-07T02:00:00.000Z' })).toBe(id);
    expect(scheduledRunId({ ...TICK, pipeline: 'faq' })).not.toBe(id);
    expect(scheduledRunId({ ...TICK, scheduledTime: '2026-12-08T02:00:00Z' })).not.toBe(id);
    expect(() => scheduledRunId({ ...TICK, scheduledTime: 'yesterday' })).toThrow('is not a date');
  });

  it('plans a tick that arrives on the ingest queue as one run named by the tick', async () => {
    const response = await deliver(TICK);

    expect(response.batchItemFailures).toEqual([]);
    const recorded = await runs.listRuns();
    expect(recorded.map((r) => [r.runId, r.trigger, r.inputs])).toEqual([
      [scheduledRunId(TICK), 'schedule', ['datasets/docs/a.jsonl', 'datasets/docs/b.jsonl']],
    ]);
    expect(queue.sent.length).toBe(recorded[0]!.totalUnits);
    expect(queue.sent.length).toBeGreaterThan(1);
  });

  it('takes up the same run when a failed tick comes back, sending the units the first attempt could not', async () => {
    queue.failSends = 1;
    const first = await deliver(TICK, 1);
    expect(first.batchItemFailures).toHaveLength(1);
    const [run] = await runs.listRuns();
    expect(run!.runId).toBe(scheduledRunId(TICK));
    expect(queue.sent).toEqual([]);

    const second = await deliver(TICK, 2);

    expect(second.batchItemFailures).toEqual([]);
    expect((await runs.listRuns()).map((r) => r.runId)).toEqual([run!.runId]);
    expect(queue.sent.map((u) => u.unitId).sort()).toEqual(
      (await runs.listUnits(run!.runId)).map((u) => u.unitId).sort(),
    );
    expect(new Set(queue.sent.map((u) => u.runId))).toEqual(new Set([run!.runId]));

    // A third delivery (the tick sent twice) plans nothing new; units no worker has started yet are sent again (a unit delivered twice is worked once).
    const sentBefore = queue.sent.length;
    const direct = (await handler()(TICK, aLambdaContext())) as ScheduledRunResult;
    expect(direct).toMatchObject({ runId: run!.runId, resumed: true, units: run!.totalUnits });
    expect((await runs.listRuns()).length).toBe(1);
    expect(queue.sent.length).toBe(sentBefore * 2);
  });

  it('fails a tick it cannot read until it is dead-lettered, naming the field', async () => {
    const observability = testObservability();
    const env = anEnvironment([aPipeline('docs')]);
    const plan = createPlanHandler(
      { pipelines: env.pipelines, bucket: env.bucket, store, runs, queue },
      observability,
    );
    const record = anSqsRecord(JSON.stringify({ ...TICK, scheduledTime: 'not a time' }), {
      queue: 'sluice-ingest',
    });
    const response = (await plan(sqsEventOf(record), aLambdaContext())) as SQSBatchResponse;

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: record.messageId }]);
    expect(observability.logged('error').join('\n')).toContain(
      'scheduled run message: scheduledTime: must be an ISO 8601 time',
    );
    expect(await runs.listRuns()).toEqual([]);
  });

  it('fails a tick of a pipeline this deployment does not configure', async () => {
    const response = await deliver({ ...TICK, pipeline: 'nightly' });
    expect(response.batchItemFailures).toHaveLength(1);
    expect(await runs.listRuns()).toEqual([]);
  });
});
