import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { SegmentStatsStore } from '../../ports/segment-stats-store.ts';
import type { BetaPrior } from '../../scoring/aggregates/beta-prior.ts';
import type { SegmentStats } from '../../scoring/aggregates/segment-aggregates.ts';
import { realSleep, type Sleep } from './backoff.ts';
import { batchPutAllResending } from './dynamo-batch.ts';

/**
 * (secondary adapter) SegmentStatsStore in the runs table: one item per run and segment,
 * pk=`RUN#<runId>`, sk=`SEGMENT#<segmentKey>`, so a run's segments are one Query and a
 * segment is one GetItem. Unit items (`UNIT#`) share the partition; their queries use
 * their own sort-key prefix.
 */
export class DynamoSegmentStatsStore implements SegmentStatsStore {
  private readonly sleep: Sleep;
  private readonly random: () => number;

  constructor(
    private readonly options: {
      readonly doc: DynamoDBDocumentClient;
      readonly tableName: string;
      readonly sleep?: Sleep;
      readonly random?: () => number;
      readonly maxAttempts?: number;
    },
  ) {
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
  }

  async recordSegments(
    pipeline: string,
    runId: string,
    prior: BetaPrior,
    segments: readonly SegmentStats[],
  ): Promise<void> {
    const items = segments.map((s) => ({
      pk: `RUN#${runId}`,
      sk: `SEGMENT#${s.key}`,
      pipeline,
      runId,
      ...s,
      prior: { alpha: prior.alpha, beta: prior.beta, method: prior.method },
    }));
    const target = {
      doc: this.options.doc,
      tableName: this.options.tableName,
      label: `segment items of run ${runId} unwritten`,
    };
    const resend = { maxAttempts: this.options.maxAttempts, sleep: this.sleep, random: this.random };
    await batchPutAllResending(target, items, resend);
  }

  async listSegments(runId: string): Promise<SegmentStats[]> {
    const out: SegmentStats[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.options.doc.send(
        new QueryCommand({
          TableName: this.options.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :segment)',
          ExpressionAttributeValues: { ':pk': `RUN#${runId}`, ':segment': 'SEGMENT#' },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        const { pk: _pk, sk: _sk, pipeline: _p, runId: _r, prior: _prior, ...segment } = item;
        out.push(segment as SegmentStats);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
