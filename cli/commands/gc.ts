import { formatBytes } from '../deployed/deployed-query.ts';
import { RECOMMENDATIONS_TABLE_ENV } from '../deployed/deployed-recommendations.ts';
import { deployedTarget, refuseMixedFlags, requireRunsTable } from '../deployed/deployed-target.ts';
import { collectDeployedGarbage, type DeployedGcReport } from '../gc/deployed-gc.ts';
import type { LegacyChunkItemsReport } from '../gc/deployed-legacy-chunk-items.ts';
import { collectGarbage, type GcReport } from '../gc/local-gc.ts';
import { openCheckedHome } from '../home.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

/** Runs kept whole per pipeline when `--keep-runs` is not given. */
export const DEFAULT_KEEP_RUNS = 3;

/**
 * `sluice gc [--keep-runs N] [--home DIR] [--dry-run] [--json]`: bounds a local home's
 * storage (cli/gc/local-gc.ts says what goes and what never does). Prints each run removed,
 * what else went, and the home's bytes before and after. With `--deployed [--stack NAME]`
 * the same rule over the stack's bucket (cli/gc/deployed-gc.ts), and with
 * `--recommendations-table NAME` (or `SLUICE_RECOMMENDATIONS_TABLE`) the table's lists of
 * runs older than their pipeline's served run.
 *
 * `--legacy-chunk-items` (with `--runs-table NAME` or `SLUICE_RUNS_TABLE`) also deletes the
 * runs table's `CHUNK#` items a stack deployed before the per-document chunk index left
 * (cli/gc/deployed-legacy-chunk-items.ts). It is asked for, not done on every gc: finding
 * them is a Scan of the whole runs table (every run, unit, lease, cached answer and index
 * entry), billed by the bytes read and minutes long on a big table, while the items to find
 * are written by no version since the upgrade, so after one sweep every later Scan would be
 * paid for nothing; and a gc run from a schedule should not start reading the whole runs
 * table because the CLI was upgraded. `--dry-run` with it counts them and prices the storage
 * they hold, the Scan's reads and the deletes' writes, so the one paid sweep is decided on
 * figures.
 */
export async function gcCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    home: { type: 'string' },
    'keep-runs': { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    deployed: { type: 'boolean', default: false },
    stack: { type: 'string' },
    'recommendations-table': { type: 'string' },
    'runs-table': { type: 'string' },
    // No default: refuseMixedFlags tells a flag given from one left out by `undefined`.
    'legacy-chunk-items': { type: 'boolean' },
  });
  if (positionals.length > 0) throw new UsageError(`gc takes no arguments, got ${positionals[0]}`);
  const keepRuns = values['keep-runs'] === undefined ? DEFAULT_KEEP_RUNS : Number(values['keep-runs']);
  if (!Number.isInteger(keepRuns) || keepRuns < 1)
    throw new UsageError(`--keep-runs must be a whole number of at least 1, got ${values['keep-runs']}`);
  refuseMixedFlags(values, ['recommendations-table', 'legacy-chunk-items']);
  if (values.deployed) {
    const recommendationsTable =
      values['recommendations-table'] ?? (process.env[RECOMMENDATIONS_TABLE_ENV]?.trim() || undefined);
    const target = deployedTarget(values);
    // Checked before any query runs, so a missing table name costs nothing.
    const legacyChunkItemsTable = values['legacy-chunk-items'] ? requireRunsTable(target) : undefined;
    const report = await collectDeployedGarbage(target, {
      keepRuns,
      dryRun: values['dry-run'],
      ...(recommendationsTable === undefined ? {} : { recommendationsTable }),
      ...(legacyChunkItemsTable === undefined ? {} : { legacyChunkItemsTable }),
    });
    if (values.json) io.out(JSON.stringify(report));
    else printDeployedReport(report, io);
    return 0;
  }
  const home = await openCheckedHome(values.home, 'write');
  const report = await collectGarbage(home, { keepRuns, dryRun: values['dry-run'] });
  if (values.json) io.out(JSON.stringify(report));
  else printReport(report, io);
  return 0;
}

function printReport(report: GcReport, io: CommandIo): void {
  const verb = report.dryRun ? 'would remove' : 'removed';
  const removed = report.runs.filter((r) => r.remove);
  for (const run of report.runs) {
    io.out(
      run.remove
        ? `${run.runId}  ${run.pipeline}  ${verb} ${run.files.length} files, ${formatBytes(run.bytes)} (${run.reason})`
        : `${run.runId}  ${run.pipeline}  kept (${run.reason})`,
    );
  }
  if (report.staging.files.length > 0)
    io.out(
      `staging: ${verb} ${report.staging.files.length} files, ${formatBytes(report.staging.bytes)} no run reads again`,
    );
  if (report.leftovers.files.length > 0)
    io.out(
      `leftovers: ${verb} ${report.leftovers.files.length} temporary files, ${formatBytes(report.leftovers.bytes)}`,
    );
  if (report.recommendationLists.files.length > 0)
    io.out(
      `recommendation lists: ${verb} ${report.recommendationLists.files.length} files, ${formatBytes(report.recommendationLists.bytes)} of runs older than their pipeline's served run`,
    );
  if (report.chunkIndex.compacted)
    io.out(
      `chunk index compacted: ${formatBytes(report.chunkIndex.bytesBefore)} -> ${formatBytes(report.chunkIndex.bytesAfter)}`,
    );
  io.out(
    report.dryRun
      ? `${report.home}: ${formatBytes(report.bytesBefore)}; ${removed.length} of ${report.runs.length} runs would give up their parts (dry run: nothing removed)`
      : `${report.home}: ${formatBytes(report.bytesBefore)} -> ${formatBytes(report.bytesAfter)}; ${removed.length} of ${report.runs.length} runs gave up their parts (newest ${report.keepRuns} per pipeline kept)`,
  );
}

function printDeployedReport(report: DeployedGcReport, io: CommandIo): void {
  const verb = report.dryRun ? 'would delete' : 'deleted';
  for (const run of report.runs)
    io.out(
      run.remove
        ? `${run.runId}  ${run.pipeline}  ${verb} ${run.keys.length} objects, ${formatBytes(run.bytes)} (${run.reason})`
        : `${run.runId}  ${run.pipeline}  kept (${run.reason})`,
    );
  const lists = report.recommendationLists;
  if (lists !== undefined)
    io.out(
      `recommendations table ${lists.table}: ${verb} ${lists.deleted} of ${lists.scanned} lists (runs older than their pipeline's served run)`,
    );
  if (report.legacyChunkItems !== undefined)
    io.out(describeLegacyChunkItems(report.legacyChunkItems, report.dryRun));
  const removed = report.runs.filter((r) => r.remove);
  const bytes = removed.reduce((sum, r) => sum + r.bytes, 0);
  io.out(
    `s3://${report.bucket}: ${removed.length} of ${report.runs.length} finalized runs ${report.dryRun ? 'would give' : 'gave'} up ${formatBytes(bytes)}` +
      (report.dryRun
        ? ' (dry run: nothing deleted)'
        : '; recoverable as noncurrent versions until the lifecycle removes them (30 days by default)') +
      `; Athena scanned ${formatBytes(report.bytesScanned)}`,
  );
}

/**
 * `runs table T: deleted 1,200 of 1,450 items, the old per-chunk index's CHUNK# items, no
 * longer read (docs 1,200), about 2.0 MB: $0.00048 a month of storage; the Scan read 1.5
 * read units ($1.9e-7), the deletes took about 2,400 write units ($0.0015) in us-east-1`.
 * The Scan's units are DynamoDB's count; the rest are estimates (deployed-legacy-chunk-items.ts).
 */
function describeLegacyChunkItems(sweep: LegacyChunkItemsReport, dryRun: boolean): string {
  const pipelines = Object.entries(sweep.byPipeline)
    .map(([pipeline, n]) => `${pipeline} ${n.toLocaleString('en-US')}`)
    .join(', ');
  const usd = sweep.usd;
  const money = (n: number) => `$${n.toPrecision(2)}`;
  return (
    `runs table ${sweep.table}: ${dryRun ? 'would delete' : 'deleted'} ${sweep.deleted.toLocaleString('en-US')} of ${sweep.scanned.toLocaleString('en-US')} items, ` +
    `the old per-chunk index's CHUNK# items, no longer read${pipelines === '' ? '' : ` (${pipelines})`}, about ${formatBytes(sweep.bytes)}` +
    (usd === undefined ? '' : `: ${money(usd.storagePerMonth)} a month of storage`) +
    `; the Scan read ${sweep.readUnits.toLocaleString('en-US')} read units` +
    (usd === undefined ? '' : ` (${money(usd.reads)})`) +
    `, the deletes ${dryRun ? 'would take' : 'took'} about ${sweep.writeUnits.toLocaleString('en-US')} write units` +
    (usd === undefined ? '' : ` (${money(usd.writes)})`) +
    (usd === undefined ? '; no sourced DynamoDB prices for this region to cost it' : ` in ${usd.region}`)
  );
}
