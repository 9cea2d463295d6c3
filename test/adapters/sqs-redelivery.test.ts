import 'aws-sdk-client-mock-vitest/extend';
import {
  ChangeMessageVisibilityBatchCommand,
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  parseQueueArn,
  redeliveryDelaySeconds,
  SqsRedelivery,
} from '../../shared/adapters/aws/sqs-redelivery.ts';
import { type LocalAwsServer, localClientConfig, startFauxqsServer } from '../support/local-aws.ts';

const WORK_ARN = 'arn:aws:sqs:us-east-1:123456789012:sluice-work';
const WORK_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work';
const INGEST_ARN = 'arn:aws:sqs:us-east-1:123456789012:sluice-ingest';

describe('redeliveryDelaySeconds', () => {
  it('doubles from 30 s per delivery and stops at 15 minutes', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => redeliveryDelaySeconds(n))).toEqual([
      30, 60, 120, 240, 480, 900, 900, 900,
    ]);
  });

  it('dead-letters a unit that always fails within minutes, not hours, at the default maxReceiveCount of 5', () => {
    // Waits after deliveries 1..4; the 5th failure moves the message to the DLQ at once.
    const waits = [1, 2, 3, 4].reduce((sum, n) => sum + redeliveryDelaySeconds(n), 0);
    expect(waits).toBe(450);
    // The old behaviour: one visibility timeout per retry, 6 x the work timeout (an hour).
    expect(waits).toBeLessThan(4 * 3600);
  });

  it('takes a schedule, and never exceeds the 12 hours SQS allows', () => {
    expect(redeliveryDelaySeconds(3, { baseSeconds: 1, maxSeconds: 3 })).toBe(3);
    expect(redeliveryDelaySeconds(40, { baseSeconds: 60, maxSeconds: 100_000 })).toBe(43_200);
    expect(redeliveryDelaySeconds(0)).toBe(30);
  });
});

describe('parseQueueArn', () => {
  it('reads region, account and name, and refuses what is not a queue ARN', () => {
    expect(parseQueueArn(WORK_ARN)).toEqual({
      region: 'us-east-1',
      account: '123456789012',
      name: 'sluice-work',
    });
    expect(() => parseQueueArn('arn:aws:sns:us-east-1:123456789012:topic')).toThrow('not an SQS queue ARN');
  });
});

describe('SqsRedelivery (failure modes, aws-sdk-client-mock)', () => {
  const sqs = mockClient(SQSClient);
  afterEach(() => sqs.reset());
  const answerQueueUrls = () =>
    sqs.on(GetQueueUrlCommand).callsFake((input: { QueueName: string; QueueOwnerAWSAccountId: string }) => ({
      QueueUrl: `https://sqs.us-east-1.amazonaws.com/${input.QueueOwnerAWSAccountId}/${input.QueueName}`,
    }));
  // The mock replaces every SQSClient's send; the wire tests below need the real one.
  afterAll(() => sqs.restore());
  const redelivery = () => new SqsRedelivery({ client: new SQSClient({ region: 'us-east-1' }) });
  const failed = (count: number, queueArn = WORK_ARN, receiveCount = 2) =>
    Array.from({ length: count }, (_, i) => ({
      queueArn,
      receiptHandle: `rh-${queueArn}-${i}`,
      receiveCount,
    }));

  it('hides each failed message for its own backoff, ten per call, one queue per call', async () => {
    answerQueueUrls();
    sqs.on(ChangeMessageVisibilityBatchCommand).callsFake((input: { Entries: { Id: string }[] }) => ({
      Successful: input.Entries.map((e) => ({ Id: e.Id })),
      Failed: [],
    }));
    const result = await redelivery().postpone([
      ...failed(12),
      { queueArn: INGEST_ARN, receiptHandle: 'rh-ingest', receiveCount: 4 },
    ]);
    expect(result).toEqual({ postponed: 13, errors: [] });
    const calls = sqs.commandCalls(ChangeMessageVisibilityBatchCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => [c.QueueUrl, c.Entries?.length])).toEqual([
      [WORK_URL, 10],
      [WORK_URL, 2],
      ['https://sqs.us-east-1.amazonaws.com/123456789012/sluice-ingest', 1],
    ]);
    expect(calls[0]!.Entries![0]).toEqual({
      Id: '0',
      ReceiptHandle: `rh-${WORK_ARN}-0`,
      VisibilityTimeout: 60,
    });
    expect(calls[2]!.Entries![0]!.VisibilityTimeout).toBe(240);
  });

  it('reports entries SQS refused (an expired receipt handle) and never throws', async () => {
    answerQueueUrls();
    sqs.on(ChangeMessageVisibilityBatchCommand).resolves({
      Successful: [{ Id: '0' }],
      Failed: [{ Id: '1', Code: 'ReceiptHandleIsInvalid', Message: 'expired', SenderFault: true }],
    });
    expect(await redelivery().postpone(failed(2))).toEqual({
      postponed: 1,
      errors: [`${WORK_ARN}: ReceiptHandleIsInvalid: expired`],
    });
  });

  it('reports a refused call (AccessDenied) and goes on with the other queues', async () => {
    answerQueueUrls();
    sqs
      .on(ChangeMessageVisibilityBatchCommand, { QueueUrl: WORK_URL })
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }))
      .on(ChangeMessageVisibilityBatchCommand, {
        QueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-ingest',
      })
      .resolves({ Successful: [{ Id: '0' }], Failed: [] });
    const result = await redelivery().postpone([...failed(1), ...failed(1, INGEST_ARN)]);
    expect(result).toEqual({ postponed: 1, errors: [`${WORK_ARN}: AccessDenied: not authorized`] });
  });

  it('reports a record whose source is not a queue ARN without calling SQS', async () => {
    const result = await redelivery().postpone(failed(1, 'not-an-arn'));
    expect(result.errors).toEqual(['not-an-arn: not an SQS queue ARN: not-an-arn']);
    expect(sqs).not.toHaveReceivedAnyCommand();
  });

  it('looks each queue URL up once, and again after a failed lookup', async () => {
    sqs
      .on(GetQueueUrlCommand)
      .rejectsOnce(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }))
      .resolves({ QueueUrl: WORK_URL });
    sqs.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
    const queue = redelivery();
    expect((await queue.postpone(failed(1))).errors).toEqual([`${WORK_ARN}: throttled`]);
    expect(await queue.postpone(failed(1))).toEqual({ postponed: 1, errors: [] });
    expect(await queue.postpone(failed(1))).toEqual({ postponed: 1, errors: [] });
    expect(sqs).toHaveReceivedCommandTimes(GetQueueUrlCommand, 2);
    expect(sqs).toHaveReceivedCommandWith(GetQueueUrlCommand, {
      QueueName: 'sluice-work',
      QueueOwnerAWSAccountId: '123456789012',
    });
  });
});

describe('SqsRedelivery on the wire (fauxqs)', () => {
  let fauxqs: LocalAwsServer;
  let client: SQSClient;
  beforeAll(async () => {
    fauxqs = await startFauxqsServer();
    client = new SQSClient(localClientConfig(fauxqs.endpoint));
  });
  afterAll(async () => {
    client?.destroy();
    await fauxqs?.stop();
  });

  it('brings a failed message back after its backoff, not after the hour-long visibility timeout', async () => {
    const { QueueUrl } = await client.send(
      new CreateQueueCommand({ QueueName: 'redelivery-work', Attributes: { VisibilityTimeout: '3600' } }),
    );
    const arn = (await client.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] })))
      .Attributes!.QueueArn!;
    await client.send(new SendMessageCommand({ QueueUrl, MessageBody: '{"unit":1}' }));
    const receive = () =>
      client.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, MessageSystemAttributeNames: ['All'] }),
      );
    const first = (await receive()).Messages![0]!;
    expect(first.Attributes?.ApproximateReceiveCount).toBe('1');

    const redelivery = new SqsRedelivery({ client, baseSeconds: 1 });
    const result = await redelivery.postpone([
      { queueArn: arn, receiptHandle: first.ReceiptHandle!, receiveCount: 1 },
    ]);
    expect(result).toEqual({ postponed: 1, errors: [] });
    expect((await receive()).Messages ?? []).toEqual([]);

    const deadline = Date.now() + 5_000;
    let again: Awaited<ReturnType<typeof receive>>['Messages'];
    while (!again?.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      again = (await receive()).Messages;
    }
    expect(again?.[0]?.Body).toBe('{"unit":1}');
    expect(again?.[0]?.Attributes?.ApproximateReceiveCount).toBe('2');
  });
});
