import { readFile } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdapters } from '../../functions/config/adapters.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { WORKERS_LEASE_COMPONENT } from '../../shared/capacity/workers.ts';
import { aPipeline, s3NotificationBody, testObservability } from '../functions/factories.ts';
import { type LocalAws, STACK_QUEUES, stackQueues, startLocalAws } from '../support/local-deployment.ts';
import {
  type LocalEventSourceMappings,
  startLocalEventSourceMappings,
} from '../support/local-event-source-mappings.ts';

const BUCKET = 'sluice-split-workers';
const TABLE = 'sluice-runs-split-workers';
const SOURCE = 'incoming/credit-risk/sample.csv';
/** The deployed UUIDs of the two work queues' event source mappings. */
const WORK_MAPPING = 'a1b2c3d4-0000-4000-8000-00000000work';
const COMPUTE_MAPPING = 'a1b2c3d4-0000-4000-8000-0000compute';

/**
 * Plan on the wire in a stack whose workers follow the copies (issue 14): fauxqs, dynalite
 * (the capacity leases in the runs table) and the Lambda control plane of both work queues'
 * event source mappings. A run of an in-worker scoring pipeline in a split stack works from
 * the compute queue, whose mapping the stack fixes: it takes no workers lease and plan
 * touches neither mapping. The same pipeline alone (no split) takes its lease, as before.
 */
describe('plan on the wire: workers leases in a split stack', () => {
  let local: LocalAws;
  let mappings: LocalEventSourceMappings;
  let inWorker: Record<string, unknown>;

  beforeAll(async () => {
    local = await startLocalAws({ bucket: BUCKET, runsTable: TABLE, queues: stackQueues({ split: true }) });
    mappings = await startLocalEventSourceMappings({ [WORK_MAPPING]: 2, [COMPUTE_MAPPING]: 4 });
    const creditRisk = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
    inWorker = {
      ...creditRisk,
      schedule: undefined,
      model: { ...creditRisk.model, hosting: 'in-worker' },
      workers: { maxConcurrency: 4 },
    };
    const put = async (key: string, file: string) =>
      local.clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await readFile(file) }));
    for (const name of ['feature-stats.json', 'occupation-embedding.json', 'model.json'])
      await put(`models/credit-risk/${name}`, `pipelines/models/credit-risk/${name}`);
    await put(SOURCE, 'events/data/credit-sample.csv');
  });

  afterAll(async () => {
    await mappings?.stop();
    await local?.stop();
  });

  /** Plan, as deployed in a stack serving `pipelines`, takes the drop of SOURCE. */
  async function planDrop(pipelines: readonly unknown[], computeQueue?: string) {
    const env = local.environment({
      pipelines,
      workQueue: STACK_QUEUES.work,
      ...(computeQueue === undefined ? {} : { computeQueue }),
      finalizeQueue: STACK_QUEUES.finalize,
      workEventSourceId: WORK_MAPPING,
    });
    const adapters = createAdapters(env, local.handlerClients(env, { lambdaEndpoint: mappings.endpoint }));
    const plan = createPlanHandler(adapters, testObservability());
    const before = new Set((await adapters.runs.listRuns()).map((r) => r.runId));
    await local.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: local.queueUrls[STACK_QUEUES.ingest],
        MessageBody: s3NotificationBody(SOURCE, BUCKET),
      }),
    );
    const ingested = await local.deliver(
      STACK_QUEUES.ingest,
      (e, c) => plan(e, c) as Promise<SQSBatchResponse>,
    );
    expect(ingested).toEqual({ delivered: 1, failed: 0 });
    const planned = (await adapters.runs.listRuns()).filter((r) => !before.has(r.runId));
    expect(planned).toHaveLength(1);
    return { adapters, runId: planned[0]!.runId };
  }

  const waiting = async (queue: string) =>
    Number(
      (
        await local.clients.sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: local.queueUrls[queue],
            AttributeNames: ['ApproximateNumberOfMessages'],
          }),
        )
      ).Attributes?.ApproximateNumberOfMessages,
    );

  it('a run of an in-worker pipeline in a split stack takes no workers lease and updates neither mapping', async () => {
    const docs = aPipeline('docs', { workers: { maxConcurrency: 8 } });

    const { adapters } = await planDrop([docs, inWorker], STACK_QUEUES.compute);

    expect(await adapters.capacity.leases.list(WORKERS_LEASE_COMPONENT)).toEqual([]);
    expect(mappings.updates).toEqual([]);
    expect(await waiting(STACK_QUEUES.compute)).toBeGreaterThan(0);
    expect(await waiting(STACK_QUEUES.work)).toBe(0);
  });

  it('the same run in a stack of that pipeline alone takes its lease and raises the work mapping, as before', async () => {
    const updatesBefore = mappings.updates.length;
    mappings.limits.set(WORK_MAPPING, 2);

    const { adapters, runId } = await planDrop([inWorker]);

    const leases = await adapters.capacity.leases.list(WORKERS_LEASE_COMPONENT);
    expect(leases.filter((l) => l.runId === runId)).toMatchObject([
      { component: WORKERS_LEASE_COMPONENT, copies: 4 },
    ]);
    expect(mappings.updates.slice(updatesBefore)).toEqual([{ uuid: WORK_MAPPING, maximumConcurrency: 4 }]);
    expect(await waiting(STACK_QUEUES.work)).toBeGreaterThan(0);
  });
});
