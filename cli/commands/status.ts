import type { RunState } from '../../shared/domain/types.ts';
import { deployedRunReader, type RunReader } from '../deployed/deployed-runs.ts';
import {
  DEPLOYED_OPTIONS,
  deployedTarget,
  refuseMixedFlags,
  requireRunsTable,
} from '../deployed/deployed-target.ts';
import { openCheckedHome } from '../home.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

/** Runs listed by `status --deployed` without `--limit`: the newest, from the index, not every run ever. */
const DEPLOYED_RUNS_LISTED = 50;

/**
 * Where the runs are read: the home's run store, or with `--deployed` the stack's runs
 * table (cli/deployed/). Everything printed is the same for both.
 */
async function runsOf(values: {
  readonly home?: string;
  readonly deployed: boolean;
  readonly stack?: string;
  readonly 'runs-table'?: string;
  readonly limit?: string;
}): Promise<{ runs: RunReader; dir: string; limit: number | undefined }> {
  refuseMixedFlags(values, ['limit']);
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
    throw new UsageError(`--limit must be a whole number above 0, got ${values.limit}`);
  if (!values.deployed) {
    const home = await openCheckedHome(values.home, 'read');
    return { runs: home.runs, dir: home.dir, limit };
  }
  const table = requireRunsTable(deployedTarget(values));
  return { runs: deployedRunReader(table), dir: `runs table ${table}`, limit: limit ?? DEPLOYED_RUNS_LISTED };
}

export async function statusCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    home: { type: 'string' },
    json: { type: 'boolean', default: false },
    ...DEPLOYED_OPTIONS,
    limit: { type: 'string' },
  });
  if (positionals.length > 1) throw new UsageError('give at most one RUN_ID');
  const home = await runsOf(values);
  if (positionals.length === 0) {
    // The stage and the work pool, which the deployed index does not hold, are read per listed run.
    const runs = await home.runs.listRuns(home.limit, { withPlan: true });
    if (values.json) io.out(JSON.stringify(runs));
    else if (runs.length === 0) io.out(`no runs in ${home.dir}`);
    else
      for (const run of runs)
        io.out(
          `${run.runId}  ${run.pipeline.padEnd(12)} ${run.status.padEnd(9)} units ${run.doneUnits + run.failedUnits}/${run.totalUnits}${stageOf(run)}${poolOf(run)}  started ${run.startedAt}`,
        );
    return 0;
  }
  const runId = positionals[0]!;
  // Locally an unreadable run file reads as no run; deployed, AccessDenied or throttling must not.
  const run = await home.runs.getRun(runId).catch((error: unknown) => {
    if (values.deployed) throw error;
    return undefined;
  });
  if (!run) throw new UsageError(`no run ${runId} in ${home.dir} (list runs with: sluice status)`);
  const units = (await home.runs.listUnits(runId)).map((u) => ({
    unitId: u.unitId,
    ...(u.stage === undefined ? {} : { stage: u.stage }),
    sourceKey: u.sourceKey,
    ...(u.sourceVersion === undefined ? {} : { sourceVersion: u.sourceVersion }),
    byteStart: u.byteStart,
    byteEnd: u.byteEnd,
    packedFiles: u.packedFiles,
    estCost: u.estCost,
    actualCost: u.actualCost,
    records: u.records,
    status: u.status,
    attempts: u.attempts,
    lastError: u.lastError,
  }));
  const summary = await home.runs.getSummary(runId);
  if (values.json) {
    io.out(JSON.stringify({ ...run, summary: summary ?? null, units }));
    return 0;
  }
  io.out(
    `${run.runId}  ${run.pipeline}  ${run.status}${stageOf(run)}  started ${run.startedAt}${run.finishedAt ? `  finished ${run.finishedAt}` : ''}`,
  );
  if (summary?.failureReason) io.out(`  failed: ${summary.failureReason}`);
  if (summary?.replacedFiles?.length) {
    const replaced = summary.replacedFiles.map(
      (f) => `${f.role} ${f.key} (sha256 ${f.previousSha256.slice(0, 12)}.. -> ${f.sha256.slice(0, 12)}..)`,
    );
    io.out(`  replaced before the run by the pipeline folder's files: ${replaced.join(', ')}`);
  }
  for (const u of units) {
    io.out(
      `  ${(run.stages?.length ?? 1) > 1 && u.stage !== undefined ? `${u.stage} ` : ''}${u.unitId} ${u.status.padEnd(9)} ${u.sourceKey} [${u.byteStart}, ${u.byteEnd})${u.packedFiles ? ` +${u.packedFiles} files` : ''} est ${u.estCost} actual ${u.actualCost ?? '-'} records ${u.records ?? '-'} attempts ${u.attempts}${u.lastError ? ` error: ${u.lastError}` : ''}`,
    );
  }
  return 0;
}

/** `  stage score (2/2)` for a run of several stages, `  stage embed` for one; nothing for runs stored before stages. */
function stageOf(run: RunState): string {
  if (run.stage === undefined) return '';
  const stages = run.stages ?? [run.stage];
  return stages.length > 1
    ? `  stage ${run.stage} (${stages.indexOf(run.stage) + 1}/${stages.length})`
    : `  stage ${run.stage}`;
}

/**
 * `  pool compute of a split stack` (its units work from the compute queue, and a redrive
 * sends them back there), `  pool endpoint`; nothing for runs planned before plan recorded it.
 */
function poolOf(run: RunState): string {
  if (run.workPool === undefined) return '';
  return `  pool ${run.workPool}${run.splitStack ? ' of a split stack' : ''}`;
}
