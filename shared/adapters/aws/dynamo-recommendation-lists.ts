import { type DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import {
  type CompactList,
  compactList,
  expandList,
  type RecommendationLists,
  type ServedEntry,
  type SupersededRuns,
  type UnitListsWriter,
  type UnitWriterOptions,
  type UserList,
} from '../../jobs/recommend/recommendation-lists.ts';
import type { Sleep } from './backoff.ts';
import {
  BATCH_PUT_MAX,
  type BatchResendOptions,
  batchDeleteResending,
  batchPutResending,
} from './dynamo-batch.ts';

/** Key attribute names of the recommendations table (the stack's table and the tests' use these). */
export const RECOMMENDATIONS_TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk' } as const;

export interface DynamoRecommendationListsOptions {
  readonly doc: DynamoDBDocumentClient;
  /** A table keyed by `pk` (string) and `sk` (string): the stack's recommendations table. */
  readonly tableName: string;
  /** BatchWriteItem calls per slice while DynamoDB leaves items unprocessed. @default 8 */
  readonly maxAttempts?: number;
  /** Slices of 25 a unit's writer keeps in flight at once. @default 4 */
  readonly slicesInFlight?: number;
  /** Users whose superseded lists a unit's writer looks up at once (one Query each). @default 8 */
  readonly sweepsInFlight?: number;
  readonly sleep?: Sleep;
  readonly random?: () => number;
}

/** pk `RECS#<pipeline>#<userId>` (a user's lists together), sk `RUN#<runId>` (one item per run). */
export const recommendationListKey = (pipeline: string, userId: string, runId: string) => ({
  [RECOMMENDATIONS_TABLE_KEYS.partitionKey]: `RECS#${pipeline}#${userId}`,
  [RECOMMENDATIONS_TABLE_KEYS.sortKey]: `RUN#${runId}`,
});

const RUN_SORT_PREFIX = 'RUN#';

/**
 * (secondary adapter) RecommendationLists in DynamoDB: one item per user and run, with
 * `runId`, `unitId` and `items` (the list as compact JSON: 1,000 entries stay far under
 * the 400 KB item limit). A unit's lists go out by BatchWriteItem in slices of 25 puts,
 * UnprocessedItems resent with full-jitter backoff (dynamo-batch.ts, the one resend helper),
 * a few slices in flight; a put replaces the whole item, and a repeat writes the same list.
 * Reads are GetItem by key (ConsistentRead).
 *
 * With `superseded`, the writer also keeps each of its users' partitions to the lists a
 * reader may still serve: one Query of the user's partition (the sort keys only), and
 * the items of the runs `superseded` names deleted by BatchWriteItem (DeleteRequest, 25 a
 * call, resent like the puts). Deleting an item already gone succeeds, so a retried or
 * duplicated unit repeats it harmlessly; the work is one Query and at most a few deletes a
 * user, inside the unit's own time.
 */
export class DynamoRecommendationLists implements RecommendationLists {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly resend: BatchResendOptions;
  private readonly slicesInFlight: number;
  private readonly sweepsInFlight: number;

  constructor(options: DynamoRecommendationListsOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.resend = { maxAttempts: options.maxAttempts, sleep: options.sleep, random: options.random };
    this.slicesInFlight = Math.max(1, options.slicesInFlight ?? 4);
    this.sweepsInFlight = Math.max(1, options.sweepsInFlight ?? 8);
  }

  unitWriter(
    pipeline: string,
    runId: string,
    unitId: string,
    options: UnitWriterOptions = {},
  ): UnitListsWriter {
    const sweep =
      options.superseded === undefined
        ? undefined
        : new SupersededListSweep(pipeline, options.superseded, {
            doc: this.doc,
            tableName: this.tableName,
            resend: this.resend,
            inFlight: this.sweepsInFlight,
          });
    const target = { doc: this.doc, tableName: this.tableName, label: 'recommendation lists unwritten' };
    let pending: Record<string, unknown>[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const send = async (slice: Record<string, unknown>[]) => {
      // A slice that failed fails the unit (its delivery is retried): later slices are not awaited twice.
      const call = batchPutResending(target, slice, this.resend).catch((error: unknown) => {
        failure ??= error;
      });
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
      while (inFlight.size >= this.slicesInFlight) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
    };
    return {
      add: async (list: UserList) => {
        pending.push({
          ...recommendationListKey(pipeline, list.userId, runId),
          runId,
          unitId,
          items: JSON.stringify(compactList(list.items)),
        });
        await sweep?.user(list.userId);
        if (pending.length < BATCH_PUT_MAX) return;
        const slice = pending;
        pending = [];
        await send(slice);
      },
      finish: async () => {
        if (pending.length > 0) {
          const slice = pending;
          pending = [];
          await send(slice);
        }
        await Promise.all(inFlight);
        if (failure !== undefined) throw failure;
        await sweep?.finish();
      },
      // What was put or deleted stays so (a retry does the same again); what was not is dropped.
      abort: async () => {
        pending = [];
        await Promise.all(inFlight);
        await sweep?.abort();
      },
    };
  }

  async getList(pipeline: string, runId: string, userId: string): Promise<ServedEntry[] | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: recommendationListKey(pipeline, userId, runId),
        ConsistentRead: true,
      }),
    );
    if (!out.Item) return undefined;
    return expandList(JSON.parse(out.Item.items as string) as CompactList);
  }
}

/**
 * A unit's deletion of its users' superseded lists: each user's partition queried (a few
 * at once), the keys of the runs `superseded` names gathered and deleted 25 a call. The
 * first failure fails the unit (its next delivery sweeps again).
 */
class SupersededListSweep {
  private readonly inFlight = new Set<Promise<void>>();
  private deletes: Record<string, unknown>[] = [];
  private failure: unknown;

  constructor(
    private readonly pipeline: string,
    private readonly superseded: SupersededRuns,
    private readonly target: {
      readonly doc: DynamoDBDocumentClient;
      readonly tableName: string;
      readonly resend: BatchResendOptions;
      readonly inFlight: number;
    },
  ) {}

  /** Starts sweeping `userId`'s partition; waits while as many sweeps as allowed are running. */
  async user(userId: string): Promise<void> {
    const call = this.sweepUser(userId).catch((error: unknown) => {
      this.failure ??= error;
    });
    this.inFlight.add(call);
    void call.finally(() => this.inFlight.delete(call));
    while (this.inFlight.size >= this.target.inFlight) await Promise.race(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
  }

  /** When it resolves, every superseded list of every user swept is deleted. */
  async finish(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
    while (this.deletes.length > 0) await this.deleteSome();
  }

  async abort(): Promise<void> {
    this.deletes = [];
    await Promise.all(this.inFlight);
  }

  private async sweepUser(userId: string): Promise<void> {
    const { doc, tableName } = this.target;
    const { partitionKey, sortKey } = RECOMMENDATIONS_TABLE_KEYS;
    const runIds: string[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': partitionKey, '#sk': sortKey },
          ExpressionAttributeValues: {
            ':pk': recommendationListKey(this.pipeline, userId, '')[partitionKey],
          },
          ProjectionExpression: '#sk',
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      );
      for (const item of out.Items ?? []) {
        const sk = item[sortKey];
        if (typeof sk === 'string' && sk.startsWith(RUN_SORT_PREFIX))
          runIds.push(sk.slice(RUN_SORT_PREFIX.length));
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey !== undefined);
    for (const runId of await this.superseded.of(runIds))
      this.deletes.push(recommendationListKey(this.pipeline, userId, runId));
    while (this.deletes.length >= BATCH_PUT_MAX) await this.deleteSome();
  }

  private async deleteSome(): Promise<void> {
    const keys = this.deletes.splice(0, BATCH_PUT_MAX);
    const { doc, tableName, resend } = this.target;
    await batchDeleteResending(
      { doc, tableName, label: 'superseded recommendation lists undeleted' },
      keys,
      resend,
    );
  }
}
