import { openCheckedHome } from '../home.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

export async function statusCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    home: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  if (positionals.length > 1) throw new UsageError('give at most one RUN_ID');
  const home = await openCheckedHome(values.home, 'read');
  if (positionals.length === 0) {
    const runs = await home.runs.listRuns();
    if (values.json) io.out(JSON.stringify(runs));
    else if (runs.length === 0) io.out(`no runs in ${home.dir}`);
    else
      for (const run of runs)
        io.out(
          `${run.runId}  ${run.pipeline.padEnd(12)} ${run.status.padEnd(9)} units ${run.doneUnits + run.failedUnits}/${run.totalUnits}  started ${run.startedAt}`,
        );
    return 0;
  }
  const runId = positionals[0]!;
  const run = await home.runs.getRun(runId).catch(() => undefined);
  if (!run) throw new UsageError(`no run ${runId} in ${home.dir} (list runs with: sluice status)`);
  const units = (await home.runs.listUnits(runId)).map((u) => ({
    unitId: u.unitId,
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
    `${run.runId}  ${run.pipeline}  ${run.status}  started ${run.startedAt}${run.finishedAt ? `  finished ${run.finishedAt}` : ''}`,
  );
  for (const u of units) {
    io.out(
      `  ${u.unitId} ${u.status.padEnd(9)} ${u.sourceKey} [${u.byteStart}, ${u.byteEnd})${u.packedFiles ? ` +${u.packedFiles} files` : ''} est ${u.estCost} actual ${u.actualCost ?? '-'} records ${u.records ?? '-'} attempts ${u.attempts}${u.lastError ? ` error: ${u.lastError}` : ''}`,
    );
  }
  return 0;
}
