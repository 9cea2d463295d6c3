import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type {
  RecommendationLists,
  ServedEntry,
  UserList,
} from '../../jobs/recommend/recommendation-lists.ts';
import type { Sleep } from './backoff.ts';
import { type BatchResendOptions, batchPutResending } from './dynamo-batch.ts';

const PUT_SLICE = 25;

export interface DynamoRecommendationListsOptions {
  readonly doc: DynamoDBDocumentClient;
  /** A table keyed by `pk` (string) and `sk` (string), like the runs table. */
  readonly tableName: string;
  /** BatchWriteItem calls per slice while DynamoDB leaves items unprocessed. @default 8 */
  readonly maxAttempts?: number;
  readonly sleep?: Sleep;
  readonly random?: () => number;
}

const keyOf = (pipeline: string, userId: string) => ({ pk: `RECS#${pipeline}#${userId}`, sk: 'RECS' });

/**
 * (secondary adapter) RecommendationLists in DynamoDB: one item per user,
 * pk=`RECS#<pipeline>#<userId>`, sk=`RECS`, with `runId` and `items` (the list as compact
 * JSON; 1,000 entries stay far under the 400 KB item limit). Written by BatchWriteItem in
 * slices of 25 puts, UnprocessedItems resent with full-jitter backoff (dynamo-batch.ts); a
 * put replaces the whole item, so each user's list is replaced atomically.
 */
export class DynamoRecommendationLists implements RecommendationLists {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly resend: BatchResendOptions;

  constructor(options: DynamoRecommendationListsOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.resend = { maxAttempts: options.maxAttempts, sleep: options.sleep, random: options.random };
  }

  async putLists(pipeline: string, runId: string, lists: readonly UserList[]): Promise<void> {
    const items = lists.map((list) => ({
      ...keyOf(pipeline, list.userId),
      runId,
      items: JSON.stringify(list.items.map((e) => [e.itemId, e.score, e.source, e.neighbours])),
    }));
    for (let at = 0; at < items.length; at += PUT_SLICE)
      await batchPutResending(
        { doc: this.doc, tableName: this.tableName, label: 'recommendation lists unwritten' },
        items.slice(at, at + PUT_SLICE),
        this.resend,
      );
  }

  async getList(
    pipeline: string,
    userId: string,
  ): Promise<{ runId: string; items: ServedEntry[] } | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keyOf(pipeline, userId), ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    const entries = JSON.parse(out.Item.items as string) as [string, number, 'cf' | 'popular', number][];
    return {
      runId: out.Item.runId as string,
      items: entries.map(([itemId, score, source, neighbours]) => ({ itemId, score, source, neighbours })),
    };
  }
}
