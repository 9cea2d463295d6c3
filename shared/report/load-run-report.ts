import { parquetReadObjects } from 'hyparquet';
import type { RunSummary } from '../domain/types.ts';
import { SluiceError } from '../errors/errors.ts';
import { runSummaryKey, tablePartitionPrefix } from '../output/keys.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import { objectAsyncBuffer } from '../readers/parquet.ts';
import { readChartJsUmd } from './chart-js-source.ts';
import { RejectKindCounter } from './reject-kinds.ts';
import { renderRunReportHtml } from './render-report-html.ts';
import { type RunReportData, reportUnitOf } from './run-report-data.ts';

/** What the report reads a run through: the same ports locally and deployed. */
export interface RunReportPorts {
  readonly runs: RunStore;
  readonly store: ObjectStore;
}

/** There is no run by that id in the run store. */
export class RunNotFound extends SluiceError {
  constructor(readonly runId: string) {
    super(`no run ${runId}`);
  }
}

/** Where the deployed finalize (and `sluice report` by default) keeps a run's report: beside its summary.json. */
export function runReportKey(pipeline: string, runId: string): string {
  return runSummaryKey(pipeline, runId).replace(/summary\.json$/, 'report.html');
}

/**
 * The reason of every rejected record of the run, read from its `rejects` parts (the units'
 * and finalize's duplicate-id part): only the `reason` column is read.
 */
async function* rejectReasons(store: ObjectStore, pipeline: string, runId: string): AsyncGenerator<string> {
  const prefix = `${tablePartitionPrefix('rejects', pipeline, runId)}${runId}-`;
  for await (const part of store.list(prefix)) {
    if (!part.key.endsWith('.parquet') || part.size === 0) continue;
    const rows = await parquetReadObjects({
      file: objectAsyncBuffer(store, part.key, part.size),
      columns: ['reason'],
    });
    for (const row of rows) yield String((row as { reason: unknown }).reason ?? '');
  }
}

/**
 * Reads what the report draws through the ports: the run and its units from the run store,
 * the summary from the run store (or, where it has none, the bucket's summary.json), and the
 * run's rejects from the bucket. A run still running gives a report of its finished units.
 * @throws RunNotFound when the run store has no such run.
 */
export async function loadRunReportData(
  ports: RunReportPorts,
  runId: string,
  now: () => Date = () => new Date(),
): Promise<RunReportData> {
  const run = await ports.runs.getRun(runId);
  if (!run) throw new RunNotFound(runId);
  const [units, stored] = await Promise.all([ports.runs.listUnits(runId), ports.runs.getSummary(runId)]);
  let summary: RunSummary | undefined = stored;
  if (!summary && run.status !== 'running') {
    const body = await ports.store.get(runSummaryKey(run.pipeline, runId));
    if (body) summary = JSON.parse(Buffer.from(body).toString('utf8')) as RunSummary;
  }
  const rejects = new RejectKindCounter();
  for await (const reason of rejectReasons(ports.store, run.pipeline, runId)) rejects.add(reason);
  return {
    run,
    ...(summary && { summary }),
    units: units.map(reportUnitOf).sort((a, b) => (a.unitId < b.unitId ? -1 : a.unitId > b.unitId ? 1 : 0)),
    rejects: rejects.counts(),
    generatedAt: now().toISOString(),
  };
}

/** Options of {@link writeRunReport}. */
export interface WriteRunReportOptions {
  /**
   * Chart.js's UMD build, where the caller has it (a bundled Lambda that carries it as a
   * string). @default read from the installed chart.js package ({@link readChartJsUmd})
   */
  readonly chartJs?: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * Builds the run's report and writes it beside its summary.json
 * (`runs/<pipeline>/<runId>/report.html`), for finalize to call once the summary is stored.
 * Returns the key written.
 */
export async function writeRunReport(
  ports: RunReportPorts,
  runId: string,
  options: WriteRunReportOptions = {},
): Promise<string> {
  const data = await loadRunReportData(ports, runId, options.now);
  const html = renderRunReportHtml(data, options.chartJs ?? (await readChartJsUmd()));
  const key = runReportKey(data.run.pipeline, runId);
  await ports.store.put(key, html, 'text/html; charset=utf-8');
  return key;
}
