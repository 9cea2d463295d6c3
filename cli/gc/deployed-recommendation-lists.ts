import { type DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import { BATCH_PUT_MAX, batchDeleteResending } from '../../shared/adapters/aws/dynamo-batch.ts';
import { RECOMMENDATIONS_TABLE_KEYS } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import { supersededAmong } from '../../shared/jobs/recommend/superseded-runs.ts';
import { runRef } from './current-runs.ts';
import type { RetainedRun } from './run-retention.ts';

/** What `sluice gc --deployed` did to the recommendations table. */
export interface DeployedListsReport {
  readonly table: string;
  /** Items the Scan read. */
  readonly scanned: number;
  /** Items of superseded runs deleted (or that would be, on a dry run). */
  readonly deleted: number;
}

const RECS_PREFIX = 'RECS#';
const RUN_PREFIX = 'RUN#';

/**
 * The lists no reader serves again, over the whole recommendations table: every item whose
 * run started before a succeeded run of its pipeline (the rule the similarity units apply
 * to their own users, shared/jobs/recommend/superseded-runs.ts, here with the pipeline's
 * finalized runs from the `runs` table). It reaches what the units do not: the served run's
 * predecessor, and the last lists of users absent from the newest runs. A run without a
 * `runs` row (still working) is never superseded nor superseding. One Scan of the key
 * attributes (billed by the bytes of the items read), deletes by BatchWriteItem, 25 a call,
 * as the pages come; deleting an item already gone succeeds, so a second gc repeats nothing.
 */
export async function sweepDeployedLists(
  doc: DynamoDBDocumentClient,
  tableName: string,
  runs: readonly RetainedRun[],
  dryRun: boolean,
): Promise<DeployedListsReport> {
  const superseded = new Set(supersededAmong(runs).map((r) => runRef(r.pipeline, r.runId)));
  const { partitionKey, sortKey } = RECOMMENDATIONS_TABLE_KEYS;
  let scanned = 0;
  let deleted = 0;
  let keys: Record<string, unknown>[] = [];
  const flush = async () => {
    const batch = keys;
    keys = [];
    if (dryRun || batch.length === 0) return;
    await batchDeleteResending(
      { doc, tableName, label: 'superseded recommendation lists undeleted (run sluice gc --deployed again)' },
      batch,
    );
  };
  const pages = paginateScan(
    { client: doc },
    {
      TableName: tableName,
      ProjectionExpression: '#pk, #sk',
      ExpressionAttributeNames: { '#pk': partitionKey, '#sk': sortKey },
    },
  );
  for await (const page of pages) {
    for (const item of page.Items ?? []) {
      scanned += 1;
      const pk = item[partitionKey];
      const sk = item[sortKey];
      if (typeof pk !== 'string' || typeof sk !== 'string') continue;
      if (!pk.startsWith(RECS_PREFIX) || !sk.startsWith(RUN_PREFIX)) continue;
      // Pipeline names have no '#' (lowercase letters, digits, dashes); user ids may.
      const end = pk.indexOf('#', RECS_PREFIX.length);
      if (end < 0) continue;
      const pipeline = pk.slice(RECS_PREFIX.length, end);
      if (!superseded.has(runRef(pipeline, sk.slice(RUN_PREFIX.length)))) continue;
      deleted += 1;
      keys.push({ [partitionKey]: pk, [sortKey]: sk });
      if (keys.length >= BATCH_PUT_MAX) await flush();
    }
  }
  await flush();
  return { table: tableName, scanned, deleted };
}
