import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readChartJsUmd } from '../../shared/report/chart-js-source.ts';
import { loadRunReportData, RunNotFound, runReportKey } from '../../shared/report/load-run-report.ts';
import { renderRunReportHtml } from '../../shared/report/render-report-html.ts';
import { fetchDeployedReport } from '../deployed/deployed-report.ts';
import { DEPLOYED_OPTIONS, deployedTarget, refuseMixedFlags } from '../deployed/deployed-target.ts';
import { openCheckedHome } from '../home.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

/**
 * `sluice report RUN_ID [--home DIR] [--out FILE]`: writes the run's report, one HTML file
 * with its charts and Chart.js inline (it opens offline). Without `--out` it goes where the
 * deployed finalize keeps it, beside the run's summary.json in the local bucket. Prints the
 * file's path. With `--deployed [--stack NAME] [--runs-table NAME]` the report the stack's
 * finalize wrote (or, where it wrote none, one built from the runs table and the bucket) is
 * written to `--out`, by default `./<runId>-report.html` (cli/deployed/deployed-report.ts).
 */
export async function reportCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    home: { type: 'string' },
    out: { type: 'string' },
    ...DEPLOYED_OPTIONS,
  });
  if (positionals.length !== 1) throw new UsageError('give one RUN_ID (list runs with: sluice status)');
  const runId = positionals[0]!;
  if (values.out !== undefined && values.out.trim() === '') throw new UsageError('--out needs a file path');
  refuseMixedFlags(values);
  if (values.deployed) return deployedReport(runId, values, io);
  const home = await openCheckedHome(values.home, 'read');
  const data = await loadRunReportData(home, runId).catch((error: unknown) => {
    if (error instanceof RunNotFound)
      throw new UsageError(`no run ${runId} in ${home.dir} (list runs with: sluice status)`);
    throw error;
  });
  const html = renderRunReportHtml(data, await readChartJsUmd());
  let file: string;
  if (values.out === undefined) {
    const key = runReportKey(data.run.pipeline, runId);
    await home.store.put(key, html);
    file = path.join(home.bucketDir, key);
  } else {
    file = path.resolve(values.out);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, html);
  }
  if (data.run.status === 'running')
    io.err(`run ${runId} is still running: the report shows the units finished so far`);
  io.out(file);
  return 0;
}

/** `report --deployed`: finalize's report downloaded as it is, or built from the stack's ports when it is missing. */
async function deployedReport(
  runId: string,
  values: { readonly out?: string; readonly stack?: string; readonly 'runs-table'?: string },
  io: CommandIo,
): Promise<number> {
  const report = await fetchDeployedReport(deployedTarget(values), runId);
  const file = path.resolve(values.out ?? `${runId}-report.html`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, report.html);
  if (report.built)
    io.err(
      report.run.status === 'running'
        ? `run ${runId} is still running (no ${report.location} yet): built the report from the units finished so far`
        : `no ${report.location} (finalize could not write it): built the report from the runs table and the bucket`,
    );
  io.out(file);
  return 0;
}
