import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { openCheckedHome } from '../home.ts';
import { runLocalPipeline } from '../local-run.ts';
import { packageRoot } from '../package-root.ts';
import { progressOutputFor } from '../progress/progress-output.ts';
import { ProgressReporter } from '../progress/progress-reporter.ts';
import type { SkippedInput } from '../stage-inputs.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

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

export async function runCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    pipeline: { type: 'string' },
    home: { type: 'string' },
    pipelines: { type: 'string' },
    'endpoint-url': { type: 'string' },
    'model-dir': { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 0 || threads > 64)) {
    throw new UsageError(`--threads must be an integer from 0 to 64, got "${values.threads}"`);
  }
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required (a config in pipelines/NAME.json)');
  if (values['endpoint-url'] !== undefined && !/^https?:\/\//.test(values['endpoint-url'])) {
    throw new UsageError(`--endpoint-url must be an http(s) URL, got "${values['endpoint-url']}"`);
  }
  const modelDir = values['model-dir'];
  if (modelDir !== undefined && values['endpoint-url'] !== undefined)
    throw new UsageError(
      'give --model-dir (a local ONNX model) or --endpoint-url (a running server), not both',
    );
  const pipelinesDir = values.pipelines ?? defaultPipelinesDir();
  const config = await loadPipelineConfig(pipelinesDir, values.pipeline);
  if (modelDir !== undefined && config.kind !== 'embed')
    throw new UsageError(`--model-dir is for embedding pipelines; ${config.name} scores with model.modelKey`);
  const home = await openCheckedHome(values.home, 'write');
  const progress = new ProgressReporter({ output: progressOutputFor(io, values.json) });
  progress.start(`reading ${positionals.length === 1 ? positionals[0] : `${positionals.length} paths`}`);
  let result: Awaited<ReturnType<typeof runLocalPipeline>>;
  try {
    result = await runLocalPipeline({
      home,
      config,
      pipelinesDir,
      paths: positionals,
      ...(values['endpoint-url'] === undefined ? {} : { endpointUrl: values['endpoint-url'] }),
      ...(modelDir === undefined ? {} : { modelDir }),
      ...(threads === undefined ? {} : { threads }),
      log: (line) => progress.log(line),
      progress,
    });
  } finally {
    progress.stop();
  }
  const { summary, skippedInputs } = result;
  const resultsDir = path.join(home.bucketDir, 'results');
  const skipped = skippedSummary(skippedInputs);
  if (values.json) {
    io.out(
      JSON.stringify({
        ...summary,
        results: resultsDir,
        skippedInputs: { ...skipped, entries: skippedInputs },
      }),
    );
  } else {
    const c = summary.counts;
    const home = values.home ? ` --home ${values.home}` : '';
    const work =
      config.kind === 'embed'
        ? `${c.embedded} chunks embedded, ${c.skippedUnchanged} unchanged${c.removedChunks > 0 ? `, ${c.removedChunks} removed` : ''}`
        : `${c.scored} rows scored`;
    io.out(
      `run ${summary.runId} ${summary.status}: ${c.records} records, ${work}, ${c.rejected} rejected, ${c.units} units`,
    );
    const { cost } = summary;
    if (cost)
      io.out(
        `cost:    $${cost.total.toFixed(6)}${cost.estimate ? `, estimated as if deployed in ${cost.region}` : ''} (endpoint $${cost.endpoint.toFixed(6)}, lambda $${cost.lambda.toFixed(6)}, requests $${cost.requests.toFixed(6)}, storage $${cost.storage.toFixed(6)})`,
      );
    else if (summary.costUnknown) io.out(`cost:    unknown: ${summary.costUnknown}`);
    if (c.removedDocuments) {
      const deleted = summary.sources?.deleted ?? 0;
      io.out(
        `removed: ${c.removedDocuments} documents no longer in their source (${summary.sources?.removedChunks} chunks)${deleted > 0 ? `; ${deleted} source files deleted` : ''}`,
      );
    }
    const notCompared = summary.sources?.skippedSources[0];
    if (notCompared)
      io.out(
        `not compared for removals: ${summary.sources?.skipped} sources, e.g. ${notCompared.sourceKey}: ${notCompared.reason}`,
      );
    if (skipped.count > 0)
      io.out(
        `skipped ${skipped.count} folder entries, not read: ${Object.entries(skipped.byReason)
          .map(([reason, n]) => `${n} ${reason}`)
          .join('; ')} (listed above)`,
      );
    if (config.kind === 'embed') {
      io.out(
        `results: ${resultsDir} (tables embeddings, rejects, runs${summary.sources === undefined ? '' : ', sources'})`,
      );
      io.out(`query:   npx sluice query "select doc_id, chunk_id from embeddings limit 5"${home}`);
    } else {
      io.out(`results: ${resultsDir} (tables scores, segment_stats, rejects, runs)`);
      io.out(
        `query:   npx sluice query "select segment, count, rate_mle, rate_map from segment_stats where run_id = '${summary.runId}'"${home}`,
      );
    }
    if (c.rejected > 0)
      io.out(
        `rejects: npx sluice query "select source_key, line, reason from rejects where run_id = '${summary.runId}'"`,
      );
  }
  if (summary.failureReason) io.err(`run ${summary.runId} failed: ${summary.failureReason}`);
  return summary.status === 'succeeded' ? 0 : 1;
}
