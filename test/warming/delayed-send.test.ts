import 'aws-sdk-client-mock-vitest/extend';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SqsWorkQueue } from '../../shared/adapters/aws/sqs-work-queue.ts';
import { type Delivery, LocalWorkQueue } from '../../shared/adapters/local/local-work-queue.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { aUnit } from '../support/run-fixtures.ts';

const RUN_ID = 'r-20261207T030000Z-000001';
const WORK_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work';
const sqs = mockClient(SQSClient);

describe('SqsWorkQueue.sendUnitLater', () => {
  afterEach(() => {
    sqs.reset();
  });

  const queue = () =>
    new SqsWorkQueue({
      client: new SQSClient({ region: 'us-east-1' }),
      workQueueUrl: WORK_URL,
      finalizeQueueUrl: `${WORK_URL}-finalize`,
    });

  it('sends the unit as a new message on the work queue with DelaySeconds', async () => {
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm1' });
    const unit = { ...aUnit(RUN_ID, 1), warmingSince: 1_765_076_400_000, warmingDeferrals: 1 };

    await queue().sendUnitLater(unit, 30);

    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: WORK_URL,
      MessageBody: JSON.stringify(unit),
      DelaySeconds: 30,
    });
  });

  it("keeps the delay within SQS's 0 to 900 seconds", async () => {
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm1' });

    await queue().sendUnitLater(aUnit(RUN_ID, 1), 3600);
    await queue().sendUnitLater(aUnit(RUN_ID, 2), -5);

    const delays = sqs.commandCalls(SendMessageCommand).map((c) => c.args[0].input.DelaySeconds);
    expect(delays).toEqual([900, 0]);
  });

  it('lets a failed send through, so the delivery fails and SQS redelivers the message', async () => {
    sqs.on(SendMessageCommand).rejects(new Error('AccessDenied'));

    await expect(queue().sendUnitLater(aUnit(RUN_ID, 1), 30)).rejects.toThrow('AccessDenied');
  });
});

describe('LocalWorkQueue.sendUnitLater', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('delivers the unit as a new first delivery after the delay, and drain waits for it', async () => {
    vi.useFakeTimers();
    const deliveries: { unit: WorkUnit; delivery: Delivery; at: number }[] = [];
    const started = Date.now();
    const queue: LocalWorkQueue = new LocalWorkQueue({
      maxReceiveCount: 1,
      concurrency: 1,
      onUnit: async (unit, delivery) => {
        deliveries.push({ unit, delivery, at: Date.now() - started });
        if (unit.warmingDeferrals === undefined)
          await queue.sendUnitLater({ ...unit, warmingSince: started, warmingDeferrals: 1 }, 30);
      },
      onFinalize: async () => {},
    });
    await queue.sendUnits([aUnit(RUN_ID, 1)]);

    const drained = queue.drain();
    await vi.advanceTimersByTimeAsync(29_000);
    expect(deliveries).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    await drained;

    expect(deliveries.map((d) => [d.unit.warmingDeferrals, d.delivery.receiveCount, d.at])).toEqual([
      [undefined, 1, 0],
      [1, 1, 30_000],
    ]);
    expect(queue.deadLetters).toEqual([]);
  });
});
