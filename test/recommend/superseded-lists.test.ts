import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import type { RunState } from '../../shared/domain/types.ts';
import type { RecommendationLists, UserList } from '../../shared/jobs/recommend/recommendation-lists.ts';
import {
  type RunOrderFacts,
  SupersededRunsOfStore,
  servedBefore,
  supersededAmong,
} from '../../shared/jobs/recommend/superseded-runs.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
} from '../support/local-aws.ts';
import { createRecommendationsTable } from '../support/recommendations-table.ts';
import { aRun, aSummary } from '../support/run-fixtures.ts';

const RUNS = 'sluice-runs';
const RECS = 'sluice-recs';
/** Long after every run below finished: all of them have settled. */
const LATER = new Date('2026-12-31T00:00:00.000Z');

let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let runs: DynamoRunStore;

beforeAll(async () => {
  server = await startDynalite();
  client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  await createRunsTable(client, RUNS);
  await createRecommendationsTable(client, RECS);
  runs = new DynamoRunStore({ doc, tableName: RUNS });
});
afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

const listOf = (userId: string, tag: string): UserList => ({
  userId,
  items: [
    { itemId: `${tag}-i1`, score: 2.5, source: 'cf', neighbours: 3 },
    { itemId: `${tag}-i2`, score: 1, source: 'popular', neighbours: 0 },
  ],
});

interface RunPlan {
  readonly pipeline: string;
  /** Minutes after midnight of 2026-12-01 the run starts; it finishes 5 minutes later. */
  readonly minute: number;
  readonly users: readonly string[];
  readonly outcome: 'succeeded' | 'failed';
  /** The clock the unit's rule reads. @default LATER */
  readonly now?: Date;
  /** The lists adapter the unit writes through. @default one on the test table */
  readonly lists?: RecommendationLists;
  /** Deliveries of the unit (a duplicate or retried delivery writes and sweeps again). @default 1 */
  readonly deliveries?: number;
}

const at = (minute: number) => new Date(Date.UTC(2026, 11, 1, 0, minute)).toISOString();

/**
 * One run as a recommend run stores it: recorded, its similarity unit writing each user's
 * list through the adapter with the rule the similarity stage gives it, then finished.
 */
async function aRecommendRun(plan: RunPlan): Promise<RunState> {
  const run = aRun({ pipeline: plan.pipeline, startedAt: at(plan.minute) });
  await runs.createRun(run, []);
  const lists = plan.lists ?? new DynamoRecommendationLists({ doc, tableName: RECS });
  for (let delivery = 0; delivery < (plan.deliveries ?? 1); delivery++) {
    const now = plan.now ?? LATER;
    const writer = lists.unitWriter(plan.pipeline, run.runId, 'similarity-00000', {
      superseded: new SupersededRunsOfStore(runs, plan.pipeline, run.runId, () => now),
    });
    for (const user of plan.users) await writer.add(listOf(user, run.runId));
    await writer.finish();
  }
  await runs.finishRun(run.runId, aSummary(run, { status: plan.outcome, finishedAt: at(plan.minute + 5) }));
  return run;
}

/** The runs a user has lists under, oldest first (the table's sort order). */
async function storedRuns(pipeline: string, userId: string): Promise<string[]> {
  const out = await doc.send(
    new QueryCommand({
      TableName: RECS,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `RECS#${pipeline}#${userId}` },
    }),
  );
  return (out.Items ?? []).map((item) => item.runId as string);
}

/** What `sluice recommend --deployed` shows: the user's list in the pipeline's newest succeeded run. */
async function served(pipeline: string, userId: string) {
  const run = (await runs.listRuns()).find((r) => r.pipeline === pipeline && r.status === 'succeeded');
  const list = await new DynamoRecommendationLists({ doc, tableName: RECS }).getList(
    pipeline,
    run!.runId,
    userId,
  );
  return { runId: run!.runId, list };
}

describe('superseded recommendation lists in DynamoDB (dynalite), deleted by the similarity units', () => {
  it("keeps a user's lists to the served run's and the newest run's as runs follow one another", async () => {
    const p = 'recs-a';
    const r1 = await aRecommendRun({ pipeline: p, minute: 0, users: ['a', 'b'], outcome: 'succeeded' });
    const r2 = await aRecommendRun({ pipeline: p, minute: 10, users: ['a', 'b'], outcome: 'succeeded' });
    expect(await storedRuns(p, 'a')).toEqual([r1.runId, r2.runId]);
    // The third run's unit sees r2 served: r1's lists go, r2's stay until r3 has succeeded.
    const r3 = await aRecommendRun({ pipeline: p, minute: 20, users: ['a', 'b'], outcome: 'succeeded' });
    for (const user of ['a', 'b']) expect(await storedRuns(p, user)).toEqual([r2.runId, r3.runId]);
    expect(await served(p, 'a')).toEqual({ runId: r3.runId, list: listOf('a', r3.runId).items });
    const r4 = await aRecommendRun({ pipeline: p, minute: 30, users: ['a', 'b'], outcome: 'succeeded' });
    expect(await storedRuns(p, 'b')).toEqual([r3.runId, r4.runId]);
    expect(await served(p, 'b')).toEqual({ runId: r4.runId, list: listOf('b', r4.runId).items });
  });

  it('never deletes the served lists when the newest runs fail, nor the failed runs newer than them', async () => {
    const p = 'recs-b';
    const r1 = await aRecommendRun({ pipeline: p, minute: 0, users: ['a'], outcome: 'succeeded' });
    const r2 = await aRecommendRun({ pipeline: p, minute: 10, users: ['a'], outcome: 'succeeded' });
    const r3 = await aRecommendRun({ pipeline: p, minute: 20, users: ['a'], outcome: 'failed' });
    const r4 = await aRecommendRun({ pipeline: p, minute: 30, users: ['a'], outcome: 'failed' });
    expect(await storedRuns(p, 'a')).toEqual([r2.runId, r3.runId, r4.runId]);
    expect(await served(p, 'a')).toEqual({ runId: r2.runId, list: listOf('a', r2.runId).items });
    expect(r1.runId < r2.runId).toBe(true);
  });

  it('lets a run that succeeded a moment ago supersede nothing yet (the runs index may still serve the run before it)', async () => {
    const p = 'recs-c';
    const r1 = await aRecommendRun({ pipeline: p, minute: 0, users: ['a'], outcome: 'succeeded' });
    const r2 = await aRecommendRun({ pipeline: p, minute: 10, users: ['a'], outcome: 'succeeded' });
    // r2 finished at minute 15: 30 s later it supersedes nothing, 2 minutes later r1.
    const soon = new Date(Date.parse(at(15)) + 30_000);
    const r3 = await aRecommendRun({ pipeline: p, minute: 15, users: ['a'], outcome: 'failed', now: soon });
    expect(await storedRuns(p, 'a')).toEqual([r1.runId, r2.runId, r3.runId]);
    const settled = new Date(Date.parse(at(17)));
    const r4 = await aRecommendRun({
      pipeline: p,
      minute: 16,
      users: ['a'],
      outcome: 'failed',
      now: settled,
    });
    expect(await storedRuns(p, 'a')).toEqual([r2.runId, r3.runId, r4.runId]);
  });

  it('repeats harmlessly: a unit delivered twice, and deletes DynamoDB leaves unprocessed, end with the same lists', async () => {
    const p = 'recs-d';
    const users = Array.from({ length: 30 }, (_, u) => `u${u}`);
    await aRecommendRun({ pipeline: p, minute: 0, users, outcome: 'succeeded' });
    const r2 = await aRecommendRun({ pipeline: p, minute: 10, users, outcome: 'succeeded' });
    // Of each BatchWriteItem of deletes, DynamoDB first leaves 5 unprocessed: they are resent.
    const deleteCalls: number[] = [];
    const flaky = {
      send: async (command: unknown) => {
        if (!(command instanceof BatchWriteCommand)) return doc.send(command as never);
        const requests = command.input.RequestItems![RECS]!;
        if (requests.some((r) => r.DeleteRequest === undefined)) return doc.send(command);
        deleteCalls.push(requests.length);
        const left = deleteCalls.length === 1 ? 5 : 0;
        await doc.send(new BatchWriteCommand({ RequestItems: { [RECS]: requests.slice(left) } }));
        return { UnprocessedItems: left > 0 ? { [RECS]: requests.slice(0, left) } : {} };
      },
    } as unknown as DynamoDBDocumentClient;
    const lists = new DynamoRecommendationLists({ doc: flaky, tableName: RECS, sleep: async () => {} });
    const r3 = await aRecommendRun({
      pipeline: p,
      minute: 20,
      users,
      outcome: 'succeeded',
      lists,
      deliveries: 2,
    });
    // 30 superseded lists: 25 + 5 deleted, the first call's 5 resent; the second delivery found none.
    expect(deleteCalls).toEqual([25, 5, 5]);
    for (const user of users) expect(await storedRuns(p, user)).toEqual([r2.runId, r3.runId]);
    expect(await served(p, 'u29')).toEqual({ runId: r3.runId, list: listOf('u29', r3.runId).items });
  });

  it('serves no list to a user the newest run lacks, and deletes its old lists only when a later run holds it again', async () => {
    const p = 'recs-e';
    const r1 = await aRecommendRun({ pipeline: p, minute: 0, users: ['a', 'gone'], outcome: 'succeeded' });
    const r2 = await aRecommendRun({ pipeline: p, minute: 10, users: ['a', 'gone'], outcome: 'succeeded' });
    const r3 = await aRecommendRun({ pipeline: p, minute: 20, users: ['a'], outcome: 'succeeded' });
    // docs/recommendations.md: a user absent from the served run has no list, whatever older runs held.
    expect(await served(p, 'gone')).toEqual({ runId: r3.runId, list: undefined });
    // No unit of r3 touched its partition (a unit sweeps its own users only).
    expect(await storedRuns(p, 'gone')).toEqual([r1.runId, r2.runId]);
    const r4 = await aRecommendRun({ pipeline: p, minute: 30, users: ['a', 'gone'], outcome: 'succeeded' });
    // The rule reads the user's own runs: r2 goes once a run newer than it, holding the user, has succeeded.
    expect(await storedRuns(p, 'gone')).toEqual([r2.runId, r4.runId]);
    expect(await storedRuns(p, 'a')).toEqual([r3.runId, r4.runId]);
  });
});

const facts = (runId: string, startedAt: string, status: string, finishedAt?: string): RunOrderFacts =>
  ({ runId, pipeline: 'p', startedAt, status, finishedAt }) as RunOrderFacts;

describe('supersededAmong', () => {
  it('names the runs started before a succeeded one, and nothing when none has succeeded', () => {
    const r1 = facts('r-20261201T000000Z-aaaaaa', '2026-12-01T00:00:00.000Z', 'succeeded');
    const r2 = facts('r-20261201T001000Z-aaaaaa', '2026-12-01T00:10:00.000Z', 'failed');
    const r3 = facts('r-20261201T002000Z-aaaaaa', '2026-12-01T00:20:00.000Z', 'succeeded');
    const r4 = facts('r-20261201T003000Z-aaaaaa', '2026-12-01T00:30:00.000Z', 'running');
    expect(supersededAmong([r4, r3, r2, r1]).map((r) => r.runId)).toEqual([r2.runId, r1.runId]);
    expect(supersededAmong([r1, r2].map((r) => ({ ...r, status: 'failed' })))).toEqual([]);
    // Another pipeline's succeeded run supersedes nothing of this one.
    expect(supersededAmong([r1, { ...r3, pipeline: 'q' }])).toEqual([]);
  });

  it('keeps a pair started in the same second whose run ids sort the other way (the local and deployed readers disagree)', () => {
    const a = facts('r-20261201T000000Z-ffffff', '2026-12-01T00:00:00.100Z', 'succeeded');
    const b = facts('r-20261201T000000Z-000000', '2026-12-01T00:00:00.900Z', 'succeeded');
    expect(supersededAmong([a, b])).toEqual([]);
  });

  it('counts only succeeded runs finished by the settle time, when one is given', () => {
    const r1 = facts(
      'r-20261201T000000Z-aaaaaa',
      '2026-12-01T00:00:00.000Z',
      'succeeded',
      '2026-12-01T00:05:00.000Z',
    );
    const r2 = facts(
      'r-20261201T001000Z-aaaaaa',
      '2026-12-01T00:10:00.000Z',
      'succeeded',
      '2026-12-01T00:15:00.000Z',
    );
    expect(supersededAmong([r1, r2], '2026-12-01T00:14:59.000Z')).toEqual([]);
    expect(supersededAmong([r1, r2], '2026-12-01T00:15:00.000Z')).toEqual([r1]);
  });

  it('never names the run either reader serves, nor a run newer than it', () => {
    const run = fc.record({
      second: fc.integer({ min: 0, max: 5 }),
      ms: fc.integer({ min: 0, max: 999 }),
      suffix: fc.integer({ min: 0, max: 0xff }),
      status: fc.constantFrom('succeeded', 'failed', 'running'),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(run, { selector: (r) => `${r.second}-${r.suffix}`, maxLength: 8 }),
        (drawn) => {
          const all = drawn.map((r) =>
            facts(
              `r-20261201T00000${r.second}Z-${r.suffix.toString(16).padStart(6, '0')}`,
              `2026-12-01T00:00:0${r.second}.${String(r.ms).padStart(3, '0')}Z`,
              r.status,
            ),
          );
          const gone = new Set(supersededAmong(all).map((r) => r.runId));
          const succeeded = all.filter((r) => r.status === 'succeeded');
          // The deployed reader: newest by `<startedAt>#<runId>`; the local one: newest by run id.
          const deployedKey = (r: RunOrderFacts) => `${r.startedAt}#${r.runId}`;
          for (const key of [deployedKey, (r: RunOrderFacts) => r.runId]) {
            const newest = [...succeeded].sort((x, y) => (key(x) < key(y) ? 1 : -1))[0];
            if (newest === undefined) {
              expect(gone.size).toBe(0);
              continue;
            }
            for (const r of all) if (key(r) >= key(newest)) expect(gone.has(r.runId)).toBe(false);
          }
          for (const r of gone)
            expect(succeeded.some((s) => servedBefore(all.find((x) => x.runId === r)!, s))).toBe(true);
        },
      ),
    );
  });
});
