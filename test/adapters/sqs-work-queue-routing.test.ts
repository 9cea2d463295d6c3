import 'aws-sdk-client-mock-vitest/extend';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  computeQueueOf,
  SqsWorkQueue,
  WorkQueueSendError,
} from '../../shared/adapters/aws/sqs-work-queue.ts';
import { workPoolsOf } from '../../shared/capacity/work-pools.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import {
  anEnvironment,
  aPipeline,
  FINALIZE_QUEUE_URL,
  testAdapters,
  WORK_QUEUE_URL,
} from '../functions/factories.ts';
import { aRunId, aUnit } from '../support/run-fixtures.ts';

const sqs = mockClient(SQSClient);
const COMPUTE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work-compute';

/** An embed pipeline (endpoint pool) beside a recommend one (compute pool): a split stack. */
const docs = aPipeline('docs');
const recommend = { name: 'recommend', kind: 'recommend' };
const splitPools = workPoolsOf([
  parsePipelineConfig(docs, 'docs'),
  parsePipelineConfig(recommend, 'recommend'),
]);

function splitQueue() {
  return new SqsWorkQueue({
    client: new SQSClient({ region: 'us-east-1' }),
    workQueueUrl: WORK_QUEUE_URL,
    finalizeQueueUrl: FINALIZE_QUEUE_URL,
    computeQueue: computeQueueOf(COMPUTE_URL, splitPools),
    sleep: async () => {},
    random: () => 0.5,
  });
}

/** The units each queue was sent, in batch order, by queue URL. */
function sentByQueue(): Map<string, WorkUnit[][]> {
  const byQueue = new Map<string, WorkUnit[][]>();
  for (const call of sqs.commandCalls(SendMessageBatchCommand)) {
    const { QueueUrl, Entries } = call.args[0].input;
    const batches = byQueue.get(QueueUrl!) ?? [];
    batches.push((Entries ?? []).map((e) => JSON.parse(e.MessageBody!) as WorkUnit));
    byQueue.set(QueueUrl!, batches);
  }
  return byQueue;
}

/** Units of two runs interleaved: `docs` (endpoint pool) and `recommend` (compute pool). */
function mixedUnits(count: number): WorkUnit[] {
  const docsRun = aRunId();
  const recommendRun = aRunId();
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0 ? aUnit(docsRun, i) : aUnit(recommendRun, i, { pipeline: 'recommend' }),
  );
}

describe('SqsWorkQueue in a split stack (issue 14)', () => {
  afterEach(() => {
    sqs.reset();
  });

  it('sends each unit to the queue of its pipeline, batched per queue and in order', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const units = mixedUnits(25);

    await splitQueue().sendUnits(units);

    const sent = sentByQueue();
    expect([...sent.keys()].sort()).toEqual([COMPUTE_URL, WORK_QUEUE_URL].sort());
    expect(sent.get(WORK_QUEUE_URL)!.map((b) => b.length)).toEqual([10, 3]);
    expect(sent.get(COMPUTE_URL)!.map((b) => b.length)).toEqual([10, 2]);
    expect(sent.get(WORK_QUEUE_URL)!.flat()).toEqual(units.filter((u) => u.pipeline === 'docs'));
    expect(sent.get(COMPUTE_URL)!.flat()).toEqual(units.filter((u) => u.pipeline === 'recommend'));
  });

  it('resends failed entries to the queue they were first sent to', async () => {
    sqs
      .on(SendMessageBatchCommand, { QueueUrl: COMPUTE_URL })
      .resolvesOnce({ Failed: [{ Id: '1', Code: 'InternalError', SenderFault: false }] })
      .resolves({ Failed: [] });
    sqs.on(SendMessageBatchCommand, { QueueUrl: WORK_QUEUE_URL }).resolves({ Failed: [] });
    const units = mixedUnits(4);

    await splitQueue().sendUnits(units);

    const compute = sentByQueue().get(COMPUTE_URL)!;
    expect(compute).toEqual([[units[1], units[3]], [units[1]]]);
    expect(sentByQueue().get(WORK_QUEUE_URL)).toEqual([[units[0], units[2]]]);
  });

  it('names the units of either queue that could not be queued', async () => {
    sqs.on(SendMessageBatchCommand, { QueueUrl: COMPUTE_URL }).resolves({
      Failed: [{ Id: '1', Code: 'InvalidParameterValue', SenderFault: true }],
    });
    sqs.on(SendMessageBatchCommand, { QueueUrl: WORK_QUEUE_URL }).resolves({ Failed: [] });

    const error = await splitQueue()
      .sendUnits(mixedUnits(2))
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(WorkQueueSendError);
    expect((error as WorkQueueSendError).message).toBe(
      'could not queue 1 of 2 units: u0001 (InvalidParameterValue)',
    );
    expect((error as WorkQueueSendError).unitIds).toEqual(['u0001']);
  });

  it('sends a delayed unit (an endpoint warming, a checkpoint continuation) back to its own queue', async () => {
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
    const [docsUnit, recommendUnit] = mixedUnits(2);
    const queue = splitQueue();

    await queue.sendUnitLater(recommendUnit!, 30);
    await queue.sendUnitLater(docsUnit!, 30);

    const calls = sqs.commandCalls(SendMessageCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => [c.QueueUrl, JSON.parse(c.MessageBody!).pipeline, c.DelaySeconds])).toEqual([
      [COMPUTE_URL, 'recommend', 30],
      [WORK_QUEUE_URL, 'docs', 30],
    ]);
  });

  it('keeps finalize requests on the finalize queue', async () => {
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });

    await splitQueue().requestFinalize('r-20260301T100000Z-00abcd');

    expect(sqs).toHaveReceivedCommandExactlyOnceWith(SendMessageCommand, { QueueUrl: FINALIZE_QUEUE_URL });
  });

  it('sends every unit to the work queue where the stack does not split', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Failed: [] });
    const queue = new SqsWorkQueue({
      client: new SQSClient({ region: 'us-east-1' }),
      workQueueUrl: WORK_QUEUE_URL,
      finalizeQueueUrl: FINALIZE_QUEUE_URL,
      computeQueue: computeQueueOf(COMPUTE_URL, workPoolsOf([parsePipelineConfig(recommend, 'recommend')])),
    });

    await queue.sendUnits(mixedUnits(4));

    expect([...sentByQueue().keys()]).toEqual([WORK_QUEUE_URL]);
  });

  it('is what the deployed adapters build from SLUICE_WORK_COMPUTE_QUEUE_URL', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Failed: [] });
    // anEnvironment's type names embed configs only; the environment validates any kind.
    const env = anEnvironment([docs, recommend as never], { SLUICE_WORK_COMPUTE_QUEUE_URL: COMPUTE_URL });
    const units = mixedUnits(4);

    await testAdapters(env).queue.sendUnits(units);

    expect(sentByQueue().get(COMPUTE_URL)!.flat()).toEqual([units[1], units[3]]);
    expect(sentByQueue().get(WORK_QUEUE_URL)!.flat()).toEqual([units[0], units[2]]);
  });
});
