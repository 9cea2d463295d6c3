import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { openCheckedHome } from '../home.ts';
import { type LocalRunOptions, type LocalRunResult, runLocalPipeline } from '../local-run.ts';
import { packageRoot } from '../package-root.ts';
import { progressOutputFor } from '../progress/progress-output.ts';
import { ProgressReporter } from '../progress/progress-reporter.ts';
import type { SkippedInput } from '../stage-inputs.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';
import { recommendResultLines, recommendWorkOf } from './recommend.ts';

/** `./pipelines` when the current folder has one, else the pipelines shipped with Sluice. */
export function defaultPipelinesDir(): string {
  return existsSync('pipelines') ? 'pipelines' : path.join(packageRoot(), 'pipelines');
}

/** How many folder entries were skipped, by reason (a loop's target is left out of the reason). */
function skippedSummary(skipped: readonly SkippedInput[]): {
  count: number;
  byReason: Record<string, number>;
} {
  const byReason: Record<string, number> = {};
  for (const { reason } of skipped) {
    const kind = reason.split(':')[0]!;
    byReason[kind] = (byReason[kind] ?? 0) + 1;
  }
  return { count: skipped.length, byReason };
}

/**
 * `sluice run PATH... --pipeline NAME`: runs the pipeline on this machine (cli/local-run.ts)
 * with a progress display, then prints the summary (the last stdout line with `--json`).
 * Exit 0 when the run succeeded, 1 when it failed, 2 for bad usage or config.
 */
export async function runCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseRunArgs(args);
  const threads = threadsOf(values);
  const pipelineName = checkRunFlags(values);
  const pipelinesDir = values.pipelines ?? defaultPipelinesDir();
  const config = await loadPipelineConfig(pipelinesDir, pipelineName);
  if (values['model-dir'] !== undefined && config.kind !== 'embed')
    throw new UsageError(
      config.kind === 'generate'
        ? `--model-dir is for embedding pipelines; ${config.name} asks an LLM (--endpoint-url URL for an OpenAI-compatible server)`
        : `--model-dir is for embedding pipelines; ${config.name} scores with model.modelKey`,
    );
  const home = await openCheckedHome(values.home, 'write');
  const { summary, skippedInputs } = await runWithProgress(io, values.json, positionals, {
    home,
    config,
    pipelinesDir,
    paths: positionals,
    ...(values['endpoint-url'] === undefined ? {} : { endpointUrl: values['endpoint-url'] }),
    ...(values['model-dir'] === undefined ? {} : { modelDir: values['model-dir'] }),
    ...(threads === undefined ? {} : { threads }),
  });
  const resultsDir = path.join(home.bucketDir, 'results');
  const skipped = skippedSummary(skippedInputs);
  if (values.json)
    io.out(
      JSON.stringify({
        ...summary,
        results: resultsDir,
        skippedInputs: { ...skipped, entries: skippedInputs },
      }),
    );
  else {
    const homeFlag = values.home ? ` --home ${values.home}` : '';
    for (const line of runReportLines(config, summary, { resultsDir, homeFlag, skipped })) io.out(line);
  }
  if (summary.failureReason) io.err(`run ${summary.runId} failed: ${summary.failureReason}`);
  return summary.status === 'succeeded' ? 0 : 1;
}

function parseRunArgs(args: string[]) {
  return parseCommandArgs(args, {
    pipeline: { type: 'string' },
    home: { type: 'string' },
    pipelines: { type: 'string' },
    'endpoint-url': { type: 'string' },
    'model-dir': { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
}

type RunFlags = ReturnType<typeof parseRunArgs>['values'];

/** `--threads` as a number from 0 to 64; undefined when not given. */
function threadsOf(values: RunFlags): number | undefined {
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 0 || threads > 64))
    throw new UsageError(`--threads must be an integer from 0 to 64, got "${values.threads}"`);
  return threads;
}

/** The flags checked before the config is read; returns the pipeline's name. */
function checkRunFlags(values: RunFlags): string {
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required (a config in pipelines/NAME.json)');
  if (values['endpoint-url'] !== undefined && !/^https?:\/\//.test(values['endpoint-url']))
    throw new UsageError(`--endpoint-url must be an http(s) URL, got "${values['endpoint-url']}"`);
  if (values['model-dir'] !== undefined && values['endpoint-url'] !== undefined)
    throw new UsageError(
      'give --model-dir (a local ONNX model) or --endpoint-url (a running server), not both',
    );
  return values.pipeline;
}

/** Runs the pipeline with a progress display on stderr, stopped however the run ends. */
async function runWithProgress(
  io: CommandIo,
  json: boolean,
  paths: readonly string[],
  options: Omit<LocalRunOptions, 'log' | 'progress'>,
): Promise<LocalRunResult> {
  const progress = new ProgressReporter({ output: progressOutputFor(io, json) });
  progress.start(`reading ${paths.length === 1 ? paths[0] : `${paths.length} paths`}`);
  try {
    return await runLocalPipeline({ ...options, log: (line) => progress.log(line), progress });
  } finally {
    progress.stop();
  }
}

/** Where a run's results are and how the printed commands name the home. */
export interface RunReportContext {
  readonly resultsDir: string;
  /** ` --home DIR` when the run was given one, for the commands the report suggests. */
  readonly homeFlag: string;
  readonly skipped: ReturnType<typeof skippedSummary>;
}

/**
 * The lines `sluice run` prints for a person (without `--json`): what the run did, what it
 * cost, what it removed or did not compare, skipped folder entries, where the results are
 * and how to query them.
 */
export function runReportLines(
  config: PipelineConfig,
  summary: RunSummary,
  context: RunReportContext,
): string[] {
  const c = summary.counts;
  const { skipped } = context;
  return [
    `run ${summary.runId} ${summary.status}: ${c.records} records, ${workOf(config, summary)}, ${c.rejected} rejected, ${c.units} units`,
    ...costLines(summary),
    ...sourceLines(summary),
    ...(skipped.count > 0
      ? [
          `skipped ${skipped.count} folder entries, not read: ${Object.entries(skipped.byReason)
            .map(([reason, n]) => `${n} ${reason}`)
            .join('; ')} (listed above)`,
        ]
      : []),
    ...resultLines(config, summary, context),
    ...(c.rejected > 0
      ? [
          `rejects: npx sluice query "select source_key, line, reason from rejects where run_id = '${summary.runId}'"`,
        ]
      : []),
  ];
}

/** What the run's units did, in the words of its kind. */
function workOf(config: PipelineConfig, summary: RunSummary): string {
  const c = summary.counts;
  return config.kind === 'embed'
    ? `${c.embedded} chunks embedded, ${c.skippedUnchanged} unchanged${c.removedChunks > 0 ? `, ${c.removedChunks} removed` : ''}`
    : config.kind === 'generate'
      ? `${c.generated ?? 0} generated, ${c.cached ?? 0} from the prompt cache (${summary.stats.promptTokens ?? 0} prompt + ${summary.stats.completionTokens ?? 0} completion tokens)`
      : config.kind === 'recommend'
        ? recommendWorkOf(summary)
        : `${c.scored} rows scored`;
}

function costLines(summary: RunSummary): string[] {
  const { cost } = summary;
  if (cost)
    return [
      `cost:    $${cost.total.toFixed(6)}${cost.estimate ? `, estimated as if deployed in ${cost.region}` : ''} (endpoint $${cost.endpoint.toFixed(6)}, lambda $${cost.lambda.toFixed(6)}, requests $${cost.requests.toFixed(6)}, storage $${cost.storage.toFixed(6)})`,
    ];
  return summary.costUnknown ? [`cost:    unknown: ${summary.costUnknown}`] : [];
}

/** Documents removed with their sources, and sources not compared for removals. */
function sourceLines(summary: RunSummary): string[] {
  const lines: string[] = [];
  const { removedDocuments } = summary.counts;
  if (removedDocuments) {
    const deleted = summary.sources?.deleted ?? 0;
    lines.push(
      `removed: ${removedDocuments} documents no longer in their source (${summary.sources?.removedChunks} chunks)${deleted > 0 ? `; ${deleted} source files deleted` : ''}`,
    );
  }
  const notCompared = summary.sources?.skippedSources[0];
  if (notCompared)
    lines.push(
      `not compared for removals: ${summary.sources?.skipped} sources, e.g. ${notCompared.sourceKey}: ${notCompared.reason}`,
    );
  return lines;
}

/** Where the kind's tables are, and a query to start with. */
function resultLines(config: PipelineConfig, summary: RunSummary, context: RunReportContext): string[] {
  const { resultsDir, homeFlag } = context;
  if (config.kind === 'recommend') return recommendResultLines(summary, resultsDir, homeFlag);
  if (config.kind === 'generate')
    return [
      `results: ${resultsDir} (tables generations, rejects, runs)`,
      `query:   npx sluice query "select record_id, output_json, attempts from generations where run_id = '${summary.runId}' limit 5"${homeFlag}`,
    ];
  if (config.kind === 'embed')
    return [
      `results: ${resultsDir} (tables embeddings, rejects, runs${summary.sources === undefined ? '' : ', sources'})`,
      `query:   npx sluice query "select doc_id, chunk_id from embeddings limit 5"${homeFlag}`,
    ];
  return [
    `results: ${resultsDir} (tables scores, segment_stats, rejects, runs)`,
    `query:   npx sluice query "select segment, count, rate_mle, rate_map from segment_stats where run_id = '${summary.runId}'"${homeFlag}`,
  ];
}
