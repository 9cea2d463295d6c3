import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import {
  type CompactList,
  compactList,
  expandList,
  type RecommendationLists,
  type ServedEntry,
  type UnitListsWriter,
  type UserList,
} from '../../jobs/recommend/recommendation-lists.ts';
import type { Sleep } from './backoff.ts';
import { BATCH_PUT_MAX, type BatchResendOptions, batchPutResending } from './dynamo-batch.ts';

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
  readonly sleep?: Sleep;
  readonly random?: () => number;
}

/** pk `RECS#<pipeline>#<userId>` (a user's lists together), sk `RUN#<runId>` (one item per run). */
export const recommendationListKey = (pipeline: string, userId: string, runId: string) => ({
  [RECOMMENDATIONS_TABLE_KEYS.partitionKey]: `RECS#${pipeline}#${userId}`,
  [RECOMMENDATIONS_TABLE_KEYS.sortKey]: `RUN#${runId}`,
});

/**
 * (secondary adapter) RecommendationLists in DynamoDB: one item per user and run, with
 * `runId`, `unitId` and `items` (the list as compact JSON: 1,000 entries stay far under
 * the 400 KB item limit). A unit's lists go out by BatchWriteItem in slices of 25 puts,
 * UnprocessedItems resent with full-jitter backoff (dynamo-batch.ts, the one resend helper),
 * a few slices in flight; a put replaces the whole item, and a repeat writes the same list.
 * Reads are GetItem by key (ConsistentRead).
 */
export class DynamoRecommendationLists implements RecommendationLists {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly resend: BatchResendOptions;
  private readonly slicesInFlight: number;

  constructor(options: DynamoRecommendationListsOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.resend = { maxAttempts: options.maxAttempts, sleep: options.sleep, random: options.random };
    this.slicesInFlight = Math.max(1, options.slicesInFlight ?? 4);
  }

  unitWriter(pipeline: string, runId: string, unitId: string): UnitListsWriter {
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
      },
      // What was put stays (a retry puts the same items); what was not is dropped.
      abort: async () => {
        pending = [];
        await Promise.all(inFlight);
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
