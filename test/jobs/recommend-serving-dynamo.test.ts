import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import type { UserList } from '../../shared/jobs/recommend/recommendation-lists.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
} from '../support/local-aws.ts';

let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;

beforeAll(async () => {
  server = await startDynalite();
  client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  doc = DynamoDBDocumentClient.from(client);
  await createRunsTable(client, 'sluice-recs');
});
afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

const listOf = (userId: string, length: number, run: string): UserList => ({
  userId,
  items: Array.from({ length }, (_, r) => ({
    itemId: `${run}-i${r}`,
    score: length - r + 0.25,
    source: r < length - 1 ? 'cf' : 'popular',
    neighbours: r < length - 1 ? 3 : 0,
  })),
});

describe('DynamoRecommendationLists on dynalite', () => {
  it('writes lists in batches of 25 and reads each user back whole', async () => {
    const lists = new DynamoRecommendationLists({ doc, tableName: 'sluice-recs' });
    const users = Array.from({ length: 60 }, (_, u) => listOf(`u${u}`, 20, 'r1'));
    await lists.putLists('recs', 'r-1', users);
    for (const u of [0, 24, 25, 59])
      expect(await lists.getList('recs', `u${u}`)).toEqual({ runId: 'r-1', items: users[u]!.items });
    expect(await lists.getList('recs', 'u60')).toBeUndefined();
    expect(await lists.getList('other', 'u0')).toBeUndefined();
  });

  it("replaces a user's whole list on a re-run, a shorter one leaving nothing of the old", async () => {
    const lists = new DynamoRecommendationLists({ doc, tableName: 'sluice-recs' });
    await lists.putLists('recs', 'r-1', [listOf('a', 20, 'old')]);
    await lists.putLists('recs', 'r-2', [listOf('a', 3, 'new')]);
    expect(await lists.getList('recs', 'a')).toEqual({ runId: 'r-2', items: listOf('a', 3, 'new').items });
  });

  it('fails with one line naming the table when DynamoDB refuses the writes', async () => {
    const lists = new DynamoRecommendationLists({ doc, tableName: 'no-such-table', maxAttempts: 1 });
    await expect(lists.putLists('recs', 'r-1', [listOf('a', 2, 'x')])).rejects.toThrow(
      /DynamoDB left 1 recommendation lists unwritten in no-such-table after 1 attempts/,
    );
  });
});
