import { formatBytes } from '../deployed/deployed-query.ts';
import { RECOMMENDATIONS_TABLE_ENV } from '../deployed/deployed-recommendations.ts';
import { deployedTarget, refuseMixedFlags } from '../deployed/deployed-target.ts';
import { collectDeployedGarbage, type DeployedGcReport } from '../gc/deployed-gc.ts';
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
  });
  if (positionals.length > 0) throw new UsageError(`gc takes no arguments, got ${positionals[0]}`);
  const keepRuns = values['keep-runs'] === undefined ? DEFAULT_KEEP_RUNS : Number(values['keep-runs']);
  if (!Number.isInteger(keepRuns) || keepRuns < 1)
    throw new UsageError(`--keep-runs must be a whole number of at least 1, got ${values['keep-runs']}`);
  refuseMixedFlags(values, ['recommendations-table']);
  if (values.deployed) {
    const recommendationsTable =
      values['recommendations-table'] ?? (process.env[RECOMMENDATIONS_TABLE_ENV]?.trim() || undefined);
    const report = await collectDeployedGarbage(deployedTarget(values), {
      keepRuns,
      dryRun: values['dry-run'],
      ...(recommendationsTable === undefined ? {} : { recommendationsTable }),
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
