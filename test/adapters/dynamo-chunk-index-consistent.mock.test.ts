import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';

const TABLE = 'sluice-runs';
const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
const dynamo = mockClient(client);

const ids = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`);

/** Each BatchGetItem call's `ConsistentRead` and key count. */
const calls = () =>
  dynamo.commandCalls(BatchGetCommand).map((call) => {
    const request = call.args[0].input.RequestItems![TABLE]!;
    return { consistent: request.ConsistentRead, keys: request.Keys!.length };
  });

describe('DynamoChunkIndex lookups: ConsistentRead only where asked', () => {
  beforeEach(() => {
    dynamo.reset();
    // The first call leaves one key unprocessed: the resend must read as the lookup asked.
    dynamo
      .on(BatchGetCommand)
      .callsFakeOnce((input) => ({
        Responses: { [TABLE]: [] },
        UnprocessedKeys: { [TABLE]: { Keys: [input.RequestItems[TABLE].Keys[0]] } },
      }))
      .callsFake(() => ({ Responses: { [TABLE]: [] } }));
  });
  const index = () => new DynamoChunkIndex({ doc: client, tableName: TABLE, sleep: async () => {} });

  it('a consistent lookup sends ConsistentRead: true on every call, resends and later batches of 100 keys included', async () => {
    await index().lookupDocs('docs', ids(150), { consistent: true });
    expect(calls()).toEqual([
      { consistent: true, keys: 100 },
      { consistent: true, keys: 1 },
      { consistent: true, keys: 50 },
    ]);
  });

  it('a plain lookup (a unit’s) reads eventually consistent: no ConsistentRead', async () => {
    await index().lookupDocs('docs', ids(150));
    await index().lookupDocs('docs', ids(3), { consistent: false });
    expect(calls()).toEqual([
      { consistent: undefined, keys: 100 },
      { consistent: undefined, keys: 1 },
      { consistent: undefined, keys: 50 },
      { consistent: undefined, keys: 3 },
    ]);
  });
});
