import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { SageMakerEmbeddingEndpoint } from '../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { LocalWorkQueue } from '../shared/adapters/local/local-work-queue.ts';
import { asEmbedPipeline, type PipelineConfig } from '../shared/config/pipeline-config.ts';
import type { RunSummary } from '../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';
import { finalizeRun } from '../shared/finalize/finalize-run.ts';
import { newRunId } from '../shared/output/keys.ts';
import { planRun } from '../shared/plan/plan-run.ts';
import { processUnit } from '../shared/work/process-unit.ts';
import type { LocalHome } from './home.ts';
import { HashEmbedder } from './model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from './model-server/server.ts';
import { resolveInputs, stageInputs } from './stage-inputs.ts';

export interface LocalRunOptions {
  readonly home: LocalHome;
  readonly config: PipelineConfig;
  readonly paths: readonly string[];
  /** A running server speaking the SageMaker runtime API; when absent the built-in one starts. */
  readonly endpointUrl?: string;
  /** Progress lines for a person (stderr). */
  readonly log: (line: string) => void;
  readonly now?: () => Date;
}

export interface LocalRunResult {
  readonly summary: RunSummary;
  readonly deadLetters: number;
}

/**
 * `sluice run`: the deployed flow on one machine. Inputs are staged into the local
 * bucket as uploads, then the same plan, work and finalize use cases run, with the
 * in-process queue applying the deployed retry and dead-letter rules, and the real
 * SageMakerRuntimeClient calling a local model server.
 */
export async function runLocalPipeline(options: LocalRunOptions): Promise<LocalRunResult> {
  const { home, log } = options;
  const now = options.now ?? (() => new Date());
  const started = Date.now();
  const inputs = await resolveInputs(options.paths, options.config.name);

  let server: ModelServer | undefined;
  let config = asEmbedPipeline(options.config);
  let endpointUrl = options.endpointUrl;
  if (endpointUrl === undefined) {
    const backend = new HashEmbedder(config.endpoint.dimension);
    server = await startModelServer({ backend });
    endpointUrl = server.url;
    // Results record the model that really produced them.
    config = { ...config, endpoint: { ...config.endpoint, model: backend.model } };
    log(`model server: ${server.url} (${backend.description})`);
  }
  try {
    await stageInputs(home.store, inputs);
    const client = new SageMakerRuntimeClient({
      endpoint: endpointUrl,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    const endpoint = new SageMakerEmbeddingEndpoint({
      client,
      endpointName: config.endpoint.name,
      maxRetries: config.endpoint.maxRetries,
      timeoutMs: config.endpoint.timeoutMs,
    });
    const tokenCounter = new EstimatingTokenCounter();
    let summary: RunSummary | undefined;
    const queue: LocalWorkQueue = new LocalWorkQueue({
      maxReceiveCount: config.workers.maxReceiveCount,
      concurrency: Math.min(config.workers.maxConcurrency, 4),
      onUnit: async (unit, delivery) => {
        const outcome = await processUnit(
          { store: home.store, runs: home.runs, queue, endpoint, tokenCounter, chunkIndex: home.chunkIndex },
          config,
          unit,
          delivery,
        );
        if (outcome.status === 'succeeded') {
          log(
            `unit ${unit.unitId}: ${outcome.counts.records} records, ${outcome.counts.embedded} chunks embedded, ${outcome.counts.rejected} rejected`,
          );
        }
      },
      onFinalize: async (runId) => {
        summary = (await finalizeRun({ store: home.store, runs: home.runs }, runId, now())) ?? summary;
      },
    });

    const runId = newRunId(now());
    const planStarted = Date.now();
    const plan = await planRun({ store: home.store, runs: home.runs, queue }, config, {
      runId,
      trigger: 'local',
      keys: inputs.map((i) => i.key),
      now: now(),
    });
    const planMs = Date.now() - planStarted;
    log(`run ${runId}: ${plan.run.inputs.length} input files -> ${plan.units.length} units`);
    const workStarted = Date.now();
    await queue.drain();
    const workMs = Date.now() - workStarted;
    for (const dead of queue.deadLetters)
      log(`dead-lettered: ${JSON.stringify(dead.body).slice(0, 120)}: ${dead.error}`);

    summary ??= await home.runs.getSummary(runId);
    if (!summary)
      throw new Error(`run ${runId} did not finish: finalize failed (see dead-lettered messages above)`);
    return {
      summary: { ...summary, timings: { ...summary.timings, planMs, workMs, totalMs: Date.now() - started } },
      deadLetters: queue.deadLetters.length,
    };
  } finally {
    await server?.close();
  }
}
