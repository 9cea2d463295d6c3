import { AthenaClient } from '@aws-sdk/client-athena';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { runAthenaQuery } from '../../shared/adapters/aws/athena-query.ts';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { SluiceError } from '../../shared/errors/errors.ts';
import { runDateOf } from '../../shared/output/keys.ts';
import { dataBucketOf } from '../deployed/deployed-bucket.ts';
import type { DeployedTarget } from '../deployed/deployed-target.ts';
import { UsageError } from '../usage.ts';
import { CURRENT_RUNS_SQL, REFRESHED_BY_SQL, refreshedByOf, runRef } from './current-runs.ts';
import { type LegacyChunkItemsReport, sweepLegacyChunkItems } from './deployed-legacy-chunk-items.ts';
import { type DeployedListsReport, sweepDeployedLists } from './deployed-recommendation-lists.ts';
import { embeddingsHold, type RetainedRun, retainRuns } from './run-retention.ts';

/** The same tables and per-run folders a local gc empties (cli/gc/local-gc.ts). */
const REMOVABLE_TABLES = ['embeddings', 'scores', 'rejects'] as const;
const REMOVABLE_RUN_FOLDERS = ['docs', 'ids'] as const;
/** DeleteObjects takes at most 1,000 keys a call. */
const DELETE_BATCH = 1000;
/** More finalized runs than this is refused rather than decided on a partial list. */
const MAX_RUNS = 100_000;

export interface DeployedRunDecision extends RetainedRun {
  readonly remove: boolean;
  readonly reason: string;
  readonly keys: readonly string[];
  readonly bytes: number;
}

export interface DeployedGcReport {
  readonly bucket: string;
  readonly dryRun: boolean;
  readonly keepRuns: number;
  readonly runs: readonly DeployedRunDecision[];
  /** What the three Athena queries scanned. */
  readonly bytesScanned: number;
  /** The recommendations table's superseded lists, when the table was named. */
  readonly recommendationLists?: DeployedListsReport;
  /** The runs table's `CHUNK#` items of the per-chunk index, when asked for (deployed-legacy-chunk-items.ts). */
  readonly legacyChunkItems?: LegacyChunkItemsReport;
}

export interface DeployedGcOptions {
  readonly keepRuns: number;
  readonly dryRun: boolean;
  /** @default clients from the AWS environment */
  readonly athena?: AthenaClient;
  readonly s3?: S3Client;
  /** The stack's recommendations table: its superseded lists are deleted too (deployed-recommendation-lists.ts). */
  readonly recommendationsTable?: string;
  /**
   * The stack's runs table, named only to sweep it: its `CHUNK#` items, left by the
   * per-chunk index of a stack deployed before the per-document one, are deleted (one Scan
   * of the whole table: deployed-legacy-chunk-items.ts). Absent, the table is not read.
   */
  readonly legacyChunkItemsTable?: string;
  /** @default a client from the AWS environment */
  readonly dynamo?: DynamoDBDocumentClient;
  /** What a run's age is measured against (its embeddings' hold, run-retention.ts). @default the clock */
  readonly now?: Date;
}

/** A key DeleteObjects reported it could not delete: the first one, in one line. */
export class DeployedGcFailed extends SluiceError {}

/**
 * `sluice gc --deployed`: the local rule (run-retention.ts) over the stack's `runs` table,
 * the current-state verdicts and each run's sources read again (current-runs.ts, run in Athena), then DeleteObjects on
 * the removed runs' parts and finalize lists. The bucket is versioned, so each delete
 * leaves a delete marker and the data stays recoverable as a noncurrent version for the
 * lifecycle's `supersededVersionRetentionDays` (30 days), then S3 removes it. Only
 * finalized runs (with a `runs` row) are considered; a run still working has none and is
 * never touched. A run with `embeddings` parts keeps them all until EMBEDDINGS_HOLD_DAYS
 * after it started: chunk index entries may still point at them (run-retention.ts). `staging/` is left to its lifecycle rule. With the recommendations table
 * named, its lists of runs older than their pipeline's served run go too (whatever
 * `keepRuns` says: the similarity units delete them as they go, this reaches the rest).
 * With `legacyChunkItemsTable` named, the runs table's per-chunk index items go too.
 */
export async function collectDeployedGarbage(
  target: DeployedTarget,
  options: DeployedGcOptions,
): Promise<DeployedGcReport> {
  const athena = options.athena ?? new AthenaClient({});
  const s3 = options.s3 ?? new S3Client({});
  const bucket = await dataBucketOf(athena, target.workGroup);
  const query = { athena, workGroup: target.workGroup, database: target.database };

  const runsResult = await runAthenaQuery('SELECT pipeline, run_id, status, started_at FROM runs', {
    ...query,
    maxRows: MAX_RUNS,
  });
  if (runsResult.truncated)
    throw new UsageError(
      `more than ${MAX_RUNS} finalized runs: gc would decide on a partial list; ask for this limit to be raised`,
    );
  const currentResult = await runAthenaQuery(CURRENT_RUNS_SQL, { ...query, maxRows: MAX_RUNS * 10 });
  if (currentResult.truncated) throw new UsageError('too many current runs to list: nothing removed');
  const current = new Set(currentResult.rows.map((r) => runRef(String(r.pipeline), String(r.run_id))));
  const refreshedResult = await runAthenaQuery(REFRESHED_BY_SQL, { ...query, maxRows: MAX_RUNS });
  if (refreshedResult.truncated)
    throw new UsageError('too many runs to tell which embeddings the chunk index reads: nothing removed');
  const refreshedBy = refreshedByOf(refreshedResult.rows);
  const runs: RetainedRun[] = runsResult.rows.map((r) => ({
    runId: String(r.run_id),
    pipeline: String(r.pipeline),
    status: String(r.status),
    startedAt: String(r.started_at),
  }));

  const store = new S3ObjectStore({ client: s3, bucket });
  const decisions: DeployedRunDecision[] = [];
  const now = options.now ?? new Date();
  for (const retained of retainRuns(runs, current, options.keepRuns)) {
    const { run } = retained;
    let { remove, reason } = retained;
    let objects = remove ? await objectsOf(store, run) : [];
    const hold = objects.some((o) => o.key.startsWith('results/embeddings/'))
      ? embeddingsHold(run.runId, now, refreshedBy.get(runRef(run.pipeline, run.runId)))
      : undefined;
    if (hold !== undefined) {
      remove = false;
      reason = hold;
      objects = [];
    }
    decisions.push({
      ...run,
      remove,
      reason,
      keys: objects.map((o) => o.key),
      bytes: objects.reduce((sum, o) => sum + o.size, 0),
    });
  }
  if (!options.dryRun)
    await deleteKeys(
      s3,
      bucket,
      decisions.flatMap((d) => d.keys),
    );
  let dynamo = options.dynamo;
  const dynamoClient = () => {
    dynamo ??= DynamoDBDocumentClient.from(new DynamoDBClient({}));
    return dynamo;
  };
  const recommendationLists =
    options.recommendationsTable === undefined
      ? undefined
      : await sweepDeployedLists(dynamoClient(), options.recommendationsTable, runs, options.dryRun);
  const legacyChunkItems =
    options.legacyChunkItemsTable === undefined
      ? undefined
      : await sweepLegacyChunkItems(dynamoClient(), options.legacyChunkItemsTable, {
          dryRun: options.dryRun,
        });
  return {
    bucket,
    dryRun: options.dryRun,
    keepRuns: options.keepRuns,
    runs: decisions,
    bytesScanned: runsResult.bytesScanned + currentResult.bytesScanned + refreshedResult.bytesScanned,
    ...(recommendationLists === undefined ? {} : { recommendationLists }),
    ...(legacyChunkItems === undefined ? {} : { legacyChunkItems }),
  };
}

async function objectsOf(store: S3ObjectStore, run: RetainedRun): Promise<{ key: string; size: number }[]> {
  const prefixes = [
    ...REMOVABLE_TABLES.map(
      (table) => `results/${table}/pipeline=${run.pipeline}/run_date=${runDateOf(run.runId)}/${run.runId}-`,
    ),
    ...REMOVABLE_RUN_FOLDERS.map((folder) => `runs/${run.pipeline}/${run.runId}/${folder}/`),
  ];
  const out: { key: string; size: number }[] = [];
  for (const prefix of prefixes)
    for await (const object of store.list(prefix))
      if (!prefix.startsWith('results/') || object.key.endsWith('.parquet')) out.push(object);
  return out;
}

async function deleteKeys(s3: S3Client, bucket: string, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += DELETE_BATCH) {
    const batch = keys.slice(i, i + DELETE_BATCH);
    const out = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const failed = out.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new DeployedGcFailed(
        `S3 did not delete ${failed.length} of ${batch.length} keys (first: ${first.Key}: ${first.Code} ${first.Message ?? ''}); run sluice gc --deployed again`.trim(),
      );
    }
  }
}
