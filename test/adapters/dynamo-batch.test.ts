import 'aws-sdk-client-mock-vitest/extend';
import { DynamoDBClient, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandInput,
  BatchWriteCommand,
  type BatchWriteCommandInput,
  DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { batchGetResending, batchPutResending } from '../../shared/adapters/aws/dynamo-batch.ts';
import { BatchIncomplete } from '../../shared/errors/errors.ts';

const dynamo = mockClient(DynamoDBDocumentClient);
const TABLE = 'sluice-runs';
const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
const target = { doc, tableName: TABLE, label: 'test items unwritten' };

function options(maxAttempts = 3) {
  const delays: number[] = [];
  return {
    delays,
    options: {
      maxAttempts,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      random: () => 0.5,
      sleep: async (ms: number) => {
        delays.push(ms);
      },
    },
  };
}

const item = (n: number) => ({ pk: `K#${n}`, sk: 'X', n });
const putsIn = (call: { args: [{ input: unknown }] }) =>
  ((call.args[0].input as BatchWriteCommandInput).RequestItems?.[TABLE] ?? []).map((r) => r.PutRequest?.Item);
const throttled = () =>
  new ProvisionedThroughputExceededException({ message: 'Rate of requests exceeds capacity', $metadata: {} });

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('batchPutResending', () => {
  afterEach(() => {
    dynamo.reset();
  });

  it('resends only the unprocessed items, with a growing full-jitter backoff', async () => {
    dynamo
      .on(BatchWriteCommand)
      .resolvesOnce({
        UnprocessedItems: { [TABLE]: [{ PutRequest: { Item: item(2) } }, { PutRequest: { Item: item(3) } }] },
      })
      .resolvesOnce({ UnprocessedItems: { [TABLE]: [{ PutRequest: { Item: item(3) } }] } })
      .resolves({});
    const { delays, options: o } = options(5);

    await batchPutResending(target, [item(1), item(2), item(3)], o);

    const calls = dynamo.commandCalls(BatchWriteCommand);
    expect(calls.map(putsIn)).toEqual([[item(1), item(2), item(3)], [item(2), item(3)], [item(3)]]);
    expect(delays).toEqual([50, 100]);
  });

  it('throws BatchIncomplete saying how many items were left after the last attempt', async () => {
    dynamo.on(BatchWriteCommand).callsFake((input: BatchWriteCommandInput) => ({
      UnprocessedItems: { [TABLE]: (input.RequestItems?.[TABLE] ?? []).slice(1) },
    }));
    const { delays, options: o } = options(3);

    const error = await rejectionOf(batchPutResending(target, [item(1), item(2), item(3), item(4)], o));

    expect(error).toBeInstanceOf(BatchIncomplete);
    expect(error).toMatchObject({
      name: 'BatchIncomplete',
      left: 1,
      attempts: 3,
      message: `DynamoDB left 1 test items unwritten in ${TABLE} after 3 attempts`,
    });
    expect((error as Error).cause).toBeUndefined();
    expect(dynamo).toHaveReceivedCommandTimes(BatchWriteCommand, 3);
    expect(delays).toHaveLength(2);
  });

  it('keeps a throttling error thrown mid-way as the cause, with the items still pending', async () => {
    const sdkError = throttled();
    dynamo
      .on(BatchWriteCommand)
      .resolvesOnce({
        UnprocessedItems: { [TABLE]: [{ PutRequest: { Item: item(2) } }, { PutRequest: { Item: item(3) } }] },
      })
      .rejectsOnce(sdkError);
    const { options: o } = options(5);

    const error = await rejectionOf(batchPutResending(target, [item(1), item(2), item(3)], o));

    expect(error).toBeInstanceOf(BatchIncomplete);
    expect(error).toMatchObject({ left: 2, attempts: 2 });
    expect((error as Error).cause).toBe(sdkError);
    expect((error as Error).message).toContain('DynamoDB left 2 test items unwritten');
    expect((error as Error).message).toContain('Rate of requests exceeds capacity');
    expect(dynamo).toHaveReceivedCommandTimes(BatchWriteCommand, 2);
  });
});

describe('batchGetResending', () => {
  afterEach(() => {
    dynamo.reset();
  });

  it('collects the items of every call and asks again only for the unprocessed keys', async () => {
    const key = (n: number) => ({ pk: `K#${n}`, sk: 'X' });
    dynamo
      .on(BatchGetCommand)
      .resolvesOnce({ Responses: { [TABLE]: [item(1)] }, UnprocessedKeys: { [TABLE]: { Keys: [key(2)] } } })
      .resolves({ Responses: { [TABLE]: [item(2)] } });
    const { delays, options: o } = options();

    const found = await batchGetResending(target, [key(1), key(2), key(3)], o);

    expect(found).toEqual([item(1), item(2)]);
    const asked = dynamo
      .commandCalls(BatchGetCommand)
      .map((c) => (c.args[0].input as BatchGetCommandInput).RequestItems?.[TABLE]?.Keys);
    expect(asked).toEqual([[key(1), key(2), key(3)], [key(2)]]);
    expect(delays).toEqual([50]);
  });

  it('throws BatchIncomplete when keys stay unread', async () => {
    dynamo.on(BatchGetCommand).callsFake((input: BatchGetCommandInput) => ({
      Responses: { [TABLE]: [] },
      UnprocessedKeys: input.RequestItems,
    }));
    const { options: o } = options(2);

    await expect(batchGetResending(target, [{ pk: 'a', sk: 'X' }], o)).rejects.toMatchObject({
      name: 'BatchIncomplete',
      left: 1,
      attempts: 2,
    });
  });
});
