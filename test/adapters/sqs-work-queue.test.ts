import 'aws-sdk-client-mock-vitest/extend';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SQS_MAX_MESSAGE_BYTES,
  SqsWorkQueue,
  type SqsWorkQueueOptions,
  UnitTooLargeError,
  WorkQueueSendError,
} from '../../shared/adapters/aws/sqs-work-queue.ts';
import { aRunId, aUnit } from '../support/run-fixtures.ts';

const sqs = mockClient(SQSClient);
const WORK_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work';
const FINALIZE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-finalize';

function makeQueue(overrides: Partial<SqsWorkQueueOptions> = {}) {
  const delays: number[] = [];
  const queue = new SqsWorkQueue({
    client: new SQSClient({ region: 'us-east-1' }),
    workQueueUrl: WORK_URL,
    finalizeQueueUrl: FINALIZE_URL,
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
  return { queue, delays };
}

const unitsOf = (count: number) => {
  const runId = aRunId();
  return Array.from({ length: count }, (_, i) => aUnit(runId, i));
};

const sentEntries = (call: number) =>
  sqs.commandCalls(SendMessageBatchCommand)[call]!.args[0].input.Entries ?? [];

describe('SqsWorkQueue', () => {
  afterEach(() => {
    sqs.reset();
  });

  describe('sendUnits', () => {
    it('sends one message per unit, ten to a batch, each body the unit descriptor as JSON', async () => {
      sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
      const units = unitsOf(23);
      const { queue } = makeQueue();

      await queue.sendUnits(units);

      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 3);
      expect([0, 1, 2].map((i) => sentEntries(i).length)).toEqual([10, 10, 3]);
      expect(sqs).toHaveReceivedCommandWith(SendMessageBatchCommand, { QueueUrl: WORK_URL });
      const entries = [0, 1, 2].flatMap(sentEntries);
      expect(entries.map((e) => JSON.parse(e.MessageBody!))).toEqual(units);
      expect(new Set(entries.map((e) => e.Id)).size).toBe(23);
    });

    it('sends nothing for no units', async () => {
      await makeQueue().queue.sendUnits([]);
      expect(sqs).not.toHaveReceivedAnyCommand();
    });

    it('keeps each batch under the SQS batch size limit as well as the entry limit', async () => {
      sqs.on(SendMessageBatchCommand).resolves({});
      const runId = aRunId();
      // ~60 KB descriptors: four fit in 256 KiB, so ten units need three batches.
      const packed = Array.from({ length: 600 }, (_, i) => ({
        key: `incoming/docs/small/${'x'.repeat(60)}-${i}.txt`,
        size: 100,
        format: 'text' as const,
        compression: 'none' as const,
      }));
      const units = Array.from({ length: 10 }, (_, i) => aUnit(runId, i, { packed }));

      await makeQueue().queue.sendUnits(units);

      const calls = sqs.commandCalls(SendMessageBatchCommand);
      expect(calls.length).toBeGreaterThanOrEqual(3);
      for (const call of calls) {
        const bytes = (call.args[0].input.Entries ?? []).reduce(
          (sum, e) => sum + Buffer.byteLength(e.MessageBody ?? ''),
          0,
        );
        expect(bytes).toBeLessThanOrEqual(SQS_MAX_MESSAGE_BYTES);
      }
      expect(calls.flatMap((c) => c.args[0].input.Entries ?? [])).toHaveLength(10);
    });

    it('resends only the entries a batch reports as failed, after a backoff', async () => {
      sqs
        .on(SendMessageBatchCommand)
        .resolvesOnce({
          Successful: [],
          Failed: [
            { Id: '3', SenderFault: false, Code: 'InternalError' },
            { Id: '7', SenderFault: false, Code: 'ServiceUnavailable' },
          ],
        })
        .resolves({ Failed: [] });
      const units = unitsOf(10);
      const { queue, delays } = makeQueue();

      await queue.sendUnits(units);

      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 2);
      expect(sentEntries(1).map((e) => JSON.parse(e.MessageBody!).unitId)).toEqual(['u0003', 'u0007']);
      expect(delays).toEqual([50]); // full jitter: 0.5 * min(5000, 100 * 2^0)
    });

    it('gives up after the last attempt with an error naming the units that were not queued', async () => {
      sqs.on(SendMessageBatchCommand).callsFake((input: { Entries: { Id: string }[] }) => ({
        Failed: input.Entries.filter((e) => e.Id === '12').map((e) => ({
          Id: e.Id,
          SenderFault: false,
          Code: 'InternalError',
        })),
      }));
      const units = unitsOf(15);
      const { queue, delays } = makeQueue({ maxAttempts: 3 });

      const sending = queue.sendUnits(units);

      await expect(sending).rejects.toBeInstanceOf(WorkQueueSendError);
      await expect(sending).rejects.toThrow('could not queue 1 of 15 units: u0012 (InternalError)');
      await expect(sending).rejects.toMatchObject({ unitIds: ['u0012'] });
      // First batch once; second batch three times.
      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 4);
      expect(delays).toEqual([50, 100]);
    });

    it('does not resend an entry SQS rejected as malformed (sender fault)', async () => {
      sqs.on(SendMessageBatchCommand).resolves({
        Failed: [{ Id: '0', SenderFault: true, Code: 'InvalidMessageContents', Message: 'bad char' }],
      });

      await expect(makeQueue().queue.sendUnits(unitsOf(2))).rejects.toThrow('u0000 (InvalidMessageContents)');
      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 1);
    });

    it('refuses a unit whose descriptor does not fit in one message, before sending anything', async () => {
      const runId = aRunId();
      const huge = aUnit(runId, 1, {
        packed: Array.from({ length: 5000 }, (_, i) => ({
          key: `incoming/docs/tiny/${i}-${'y'.repeat(40)}.txt`,
          size: 10,
          format: 'text' as const,
          compression: 'none' as const,
        })),
      });

      const sending = makeQueue().queue.sendUnits([aUnit(runId, 0), huge]);

      await expect(sending).rejects.toBeInstanceOf(UnitTooLargeError);
      await expect(sending).rejects.toThrow(/unit u0001 .* over the SQS limit of 262144/);
      expect(sqs).not.toHaveReceivedAnyCommand();
    });

    it('lets a failure of the whole request through (the SDK client already retried it)', async () => {
      sqs
        .on(SendMessageBatchCommand)
        .rejects(Object.assign(new Error('Access denied'), { name: 'AccessDenied' }));

      await expect(makeQueue().queue.sendUnits(unitsOf(1))).rejects.toThrow('Access denied');
    });
  });

  describe('requestFinalize', () => {
    it('sends a finalize request for the run to the finalize queue', async () => {
      sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });

      await makeQueue().queue.requestFinalize('r-20260301T100000Z-00abcd');

      expect(sqs).toHaveReceivedCommandExactlyOnceWith(SendMessageCommand, {
        QueueUrl: FINALIZE_URL,
        MessageBody: '{"kind":"finalize","runId":"r-20260301T100000Z-00abcd"}',
      });
    });
  });
});
