import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type CliResult, sluice } from './cli.ts';

/** A pipeline config as its JSON file holds it, for a test to edit before a run. */
export interface PipelineJson {
  name?: string;
  model: Record<string, unknown>;
  [field: string]: unknown;
}

/**
 * A copy of the shipped `pipelines/` folder (configs, models, feature statistics) at
 * `<dir>/pipelines`, with `edits` applied: config name to an edit of its parsed JSON. Tests
 * change a copy so that the checked-in samples stay what the README runs.
 */
export async function copyPipelines(
  dir: string,
  edits: Readonly<Record<string, (config: PipelineJson) => void>> = {},
): Promise<string> {
  const pipelines = path.join(dir, 'pipelines');
  await cp('pipelines', pipelines, { recursive: true });
  for (const [name, edit] of Object.entries(edits)) await editPipeline(pipelines, name, edit);
  return pipelines;
}

/** An edit for `copyPipelines`: the score pipeline evaluates its model in the worker (`model.hosting`). */
export function scoreInWorker(config: PipelineJson): void {
  config.model.hosting = 'in-worker';
}

/** Reads `<pipelines>/<name>.json`, applies `edit` to it and writes it back; returns the edited config. */
export async function editPipeline(
  pipelines: string,
  name: string,
  edit: (config: PipelineJson) => void,
): Promise<PipelineJson> {
  const config = JSON.parse(await readFile(path.join(pipelines, `${name}.json`), 'utf8')) as PipelineJson;
  edit(config);
  await writePipeline(pipelines, name, config);
  return config;
}

/** Writes `config` as `<pipelines>/<name>.json`. */
export async function writePipeline(pipelines: string, name: string, config: unknown): Promise<void> {
  await writeFile(path.join(pipelines, `${name}.json`), JSON.stringify(config));
}

/** Where one `sluice run` reads its pipeline and input and keeps its state. */
export interface PipelineRun {
  /** The input file. */
  readonly input: string;
  readonly pipeline: string;
  /** The pipelines folder (`--pipelines`), a copy made by `copyPipelines` or the shipped `pipelines`. */
  readonly pipelines: string;
  /** The local home (`--home`): bucket, run store and tables. */
  readonly home: string;
}

/** `sluice run <input> --pipeline <pipeline> --pipelines <pipelines> --home <home> ...flags`, in-process. */
export function runPipeline(run: PipelineRun, ...flags: string[]): Promise<CliResult> {
  return sluice(
    'run',
    run.input,
    '--pipeline',
    run.pipeline,
    '--pipelines',
    run.pipelines,
    '--home',
    run.home,
    ...flags,
  );
}

/** The rows `sluice query <sql> --home <home> --json` answers (untyped JSON, as `CliResult.json`). */
export async function queryRows<Row = ReturnType<typeof JSON.parse>>(
  home: string,
  sql: string,
): Promise<Row[]> {
  return (await sluice('query', sql, '--home', home, '--json')).json<Row[]>();
}
