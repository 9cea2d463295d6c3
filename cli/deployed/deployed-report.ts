import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import type { RunState } from '../../shared/domain/types.ts';
import { readChartJsUmd } from '../../shared/report/chart-js-source.ts';
import { loadRunReportData, runReportKey } from '../../shared/report/load-run-report.ts';
import { renderRunReportHtml } from '../../shared/report/render-report-html.ts';
import { UsageError } from '../usage.ts';
import { dataBucketOf } from './deployed-bucket.ts';
import { deployedRunStore } from './deployed-runs.ts';
import { type DeployedTarget, requireRunsTable } from './deployed-target.ts';

export interface DeployedReport {
  readonly run: RunState;
  /** The report: the bytes finalize stored, or one built now. */
  readonly html: Uint8Array | string;
  /** `s3://<bucket>/runs/<pipeline>/<runId>/report.html`, where finalize keeps it. */
  readonly location: string;
  /** False when finalize's report was downloaded; true when it was missing and built here. */
  readonly built: boolean;
}

export interface DeployedReportOptions {
  /** @default clients from the AWS environment, created once */
  readonly athena?: AthenaClient;
  readonly s3?: S3Client;
  readonly doc?: DynamoDBDocumentClient;
}

let defaultAthena: AthenaClient | undefined;
let defaultS3: S3Client | undefined;

/**
 * (primary adapter: CLI) -> the stack's runs table (DynamoRunStore) and bucket (S3ObjectStore):
 * the run's pipeline from the table, then the report finalize wrote beside summary.json,
 * downloaded as it is. When it is missing (the run is still running, or finalize could not
 * write it) the report is built here with the loader and renderer finalize uses, over the
 * same ports. It only reads: a report built here is never written to the bucket.
 * @throws UsageError when the runs table has no such run (before the bucket is looked up).
 */
export async function fetchDeployedReport(
  target: DeployedTarget,
  runId: string,
  options: DeployedReportOptions = {},
): Promise<DeployedReport> {
  const table = requireRunsTable(target);
  const runs = deployedRunStore(table, options.doc);
  const run = await runs.getRun(runId);
  if (!run)
    throw new UsageError(`no run ${runId} in runs table ${table} (list runs with: sluice status --deployed)`);
  defaultAthena ??= new AthenaClient({});
  defaultS3 ??= new S3Client({});
  const bucket = await dataBucketOf(options.athena ?? defaultAthena, target.workGroup);
  const store = new S3ObjectStore({ client: options.s3 ?? defaultS3, bucket });
  const key = runReportKey(run.pipeline, runId);
  const location = `s3://${bucket}/${key}`;
  const stored = await store.get(key);
  if (stored) return { run, html: stored, location, built: false };
  const data = await loadRunReportData({ runs, store }, runId);
  return { run: data.run, html: renderRunReportHtml(data, await readChartJsUmd()), location, built: true };
}
