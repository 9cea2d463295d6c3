import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { ObjectStoreRecommendationLists } from '../../shared/adapters/local/object-store-recommendation-lists.ts';
import type { RecommendationLists, UserList } from '../../shared/jobs/recommend/recommendation-lists.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { type LocalAwsServer, localClientConfig, startDynalite } from '../support/local-aws.ts';
import { createRecommendationsTable } from '../support/recommendations-table.ts';

const TABLE = 'sluice-recs';
let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;

beforeAll(async () => {
  server = await startDynalite();
  client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  doc = DynamoDBDocumentClient.from(client);
  await createRecommendationsTable(client, TABLE);
});
afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

const listOf = (userId: string, length: number, tag: string): UserList => ({
  userId,
  items: Array.from({ length }, (_, r) => ({
    itemId: `${tag}-i${r}`,
    score: length - r + 0.25,
    source: r < length - 1 ? 'cf' : 'popular',
    neighbours: r < length - 1 ? 3 : 0,
  })),
});

/** A memory store that, like a store without multipart uploads, has no streamed write. */
function withoutOpenWrite(): ObjectStore {
  const store = new MemoryObjectStore();
  return {
    head: (key, options) => store.head(key, options),
    readRange: (key, start, end, options) => store.readRange(key, start, end, options),
    put: (key, body) => store.put(key, body),
    get: (key) => store.get(key),
    list: (prefix) => store.list(prefix),
  };
}

async function writeUnit(
  lists: RecommendationLists,
  runId: string,
  unitId: string,
  users: readonly UserList[],
): Promise<void> {
  const writer = lists.unitWriter('recs', runId, unitId);
  for (const user of users) await writer.add(user);
  await writer.finish();
}

/** A document client that records BatchWriteItem calls and, while `unprocess` says so, leaves some puts unprocessed. */
function flakyDoc(unprocess: (call: number) => number): {
  doc: DynamoDBDocumentClient;
  batchCalls: number[];
} {
  const batchCalls: number[] = [];
  const send = async (command: unknown) => {
    if (!(command instanceof BatchWriteCommand)) return doc.send(command as never);
    const requests = command.input.RequestItems![TABLE]!;
    batchCalls.push(requests.length);
    const left = Math.min(unprocess(batchCalls.length), requests.length);
    const done = requests.slice(0, requests.length - left);
    if (done.length > 0) await doc.send(new BatchWriteCommand({ RequestItems: { [TABLE]: done } }));
    return { UnprocessedItems: left > 0 ? { [TABLE]: requests.slice(requests.length - left) } : {} };
  };
  return { doc: { send } as unknown as DynamoDBDocumentClient, batchCalls };
}

/** The same behaviour from both adapters: what `sluice run` writes locally and the work function deployed. */
describe.each([
  ['DynamoDB on dynalite', () => new DynamoRecommendationLists({ doc, tableName: TABLE })],
  ['the local object store', () => new ObjectStoreRecommendationLists(new MemoryObjectStore())],
  ['an object store without streamed writes', () => new ObjectStoreRecommendationLists(withoutOpenWrite())],
] as const)('RecommendationLists in %s', (_name, create) => {
  it("stores each user's whole list under its run and reads it back by key", async () => {
    const lists = create();
    const users = Array.from({ length: 60 }, (_, u) => listOf(`u${u}`, 20, 'r1'));
    await writeUnit(lists, 'r-1', 'similarity-00000', users.slice(0, 30));
    await writeUnit(lists, 'r-1', 'similarity-00001', users.slice(30));
    for (const u of [0, 24, 25, 29, 30, 59])
      expect(await lists.getList('recs', 'r-1', `u${u}`)).toEqual(users[u]!.items);
    expect(await lists.getList('recs', 'r-1', 'u60')).toBeUndefined();
    expect(await lists.getList('other', 'r-1', 'u0')).toBeUndefined();
  });

  it("keeps each run's lists apart: a later run neither mixes into nor erases the list being served", async () => {
    const lists = create();
    await writeUnit(lists, 'r-1', 'similarity-00000', [listOf('a', 20, 'old'), listOf('gone', 5, 'old')]);
    // r-2 is half written (say its run fails later) and no longer holds user `gone`.
    await writeUnit(lists, 'r-2', 'similarity-00000', [listOf('a', 3, 'new')]);
    expect(await lists.getList('recs', 'r-1', 'a')).toEqual(listOf('a', 20, 'old').items);
    expect(await lists.getList('recs', 'r-2', 'a')).toEqual(listOf('a', 3, 'new').items);
    expect(await lists.getList('recs', 'r-2', 'gone')).toBeUndefined();
  });

  it('stores the same list again when a unit is delivered twice (duplicate, retry or redrive)', async () => {
    const lists = create();
    await writeUnit(lists, 'r-3', 'similarity-00000', [listOf('a', 4, 'x'), listOf('b', 2, 'x')]);
    await writeUnit(lists, 'r-3', 'similarity-00000', [listOf('a', 4, 'x'), listOf('b', 2, 'x')]);
    expect(await lists.getList('recs', 'r-3', 'a')).toEqual(listOf('a', 4, 'x').items);
    expect(await lists.getList('recs', 'r-3', 'b')).toEqual(listOf('b', 2, 'x').items);
  });

  it('keeps user ids like __proto__, or with quotes and line breaks, as any other', async () => {
    const lists = create();
    const odd = ['__proto__', 'a"b\nc', 'a', '[x'];
    await writeUnit(
      lists,
      'r-4',
      'similarity-00000',
      odd.map((user) => listOf(user, 2, user)),
    );
    for (const user of odd)
      expect(await lists.getList('recs', 'r-4', user)).toEqual(listOf(user, 2, user).items);
    expect(await lists.getList('recs', 'r-4', 'constructor')).toBeUndefined();
    expect(await lists.getList('recs', 'r-4', 'a"b')).toBeUndefined();
  });
});

describe('ObjectStoreRecommendationLists (local runs)', () => {
  it("streams a unit's lines to the store and leaves nothing readable when the unit aborts", async () => {
    const store = new MemoryObjectStore();
    const lists = new ObjectStoreRecommendationLists(store);
    // Enough lines to flush more than once (1 MiB each) before the unit fails.
    const writer = lists.unitWriter('recs', 'r-8', 'similarity-00000');
    for (let u = 0; u < 6000; u++) await writer.add(listOf(`u${u}`, 20, 'r8'));
    await writer.abort();
    expect(await lists.getList('recs', 'r-8', 'u0')).toBeUndefined();
    const keys: string[] = [];
    for await (const info of store.list('runs/recs/r-8/')) keys.push(info.key);
    expect(keys).toEqual([]);
    // The unit's next delivery writes it whole.
    await writeUnit(
      lists,
      'r-8',
      'similarity-00000',
      Array.from({ length: 6000 }, (_, u) => listOf(`u${u}`, 20, 'r8')),
    );
    expect(await lists.getList('recs', 'r-8', 'u5999')).toEqual(listOf('u5999', 20, 'r8').items);
  });
});

describe('DynamoRecommendationLists writes', () => {
  it('goes out in BatchWriteItem calls of at most 25, one item per user and run', async () => {
    const { doc: counting, batchCalls } = flakyDoc(() => 0);
    const lists = new DynamoRecommendationLists({ doc: counting, tableName: TABLE });
    await writeUnit(
      lists,
      'r-5',
      'similarity-00000',
      Array.from({ length: 60 }, (_, u) => listOf(`b${u}`, 2, 'r5')),
    );
    expect(batchCalls.sort((a, b) => b - a)).toEqual([25, 25, 10]);
    const stored = await doc.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': 'RECS#recs#b7' },
      }),
    );
    expect(stored.Items).toEqual([
      expect.objectContaining({ sk: 'RUN#r-5', runId: 'r-5', unitId: 'similarity-00000' }),
    ]);
  });

  it('resends the puts DynamoDB leaves unprocessed until every list is stored', async () => {
    // The first call leaves 20 of its 25 unprocessed, the resend 7 of those 20, then all go.
    const { doc: flaky, batchCalls } = flakyDoc((call) => [20, 7][call - 1] ?? 0);
    const lists = new DynamoRecommendationLists({ doc: flaky, tableName: TABLE, sleep: async () => {} });
    const users = Array.from({ length: 25 }, (_, u) => listOf(`c${u}`, 3, 'r6'));
    await writeUnit(lists, 'r-6', 'similarity-00000', users);
    expect(batchCalls).toEqual([25, 20, 7]);
    const reader = new DynamoRecommendationLists({ doc, tableName: TABLE });
    for (const user of users) expect(await reader.getList('recs', 'r-6', user.userId)).toEqual(user.items);
  });

  it('fails the unit in one line naming the table when the puts stay unprocessed', async () => {
    const { doc: refusing } = flakyDoc(() => 25);
    const lists = new DynamoRecommendationLists({
      doc: refusing,
      tableName: TABLE,
      maxAttempts: 3,
      sleep: async () => {},
    });
    await expect(writeUnit(lists, 'r-7', 'similarity-00000', [listOf('a', 2, 'x')])).rejects.toThrow(
      `DynamoDB left 1 recommendation lists unwritten in ${TABLE} after 3 attempts`,
    );
  });

  it('fails in one line naming the table when DynamoDB refuses the writes', async () => {
    const lists = new DynamoRecommendationLists({ doc, tableName: 'no-such-table', maxAttempts: 1 });
    await expect(writeUnit(lists, 'r-1', 'similarity-00000', [listOf('a', 2, 'x')])).rejects.toThrow(
      /DynamoDB left 1 recommendation lists unwritten in no-such-table after 1 attempts/,
    );
  });
});
