import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { LocalCapacityControl } from '../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../shared/adapters/local/local-capacity-leases.ts';
import {
  type DeadLetter,
  type Delivery,
  LocalWorkQueue,
  visibilityTimeoutMsFor,
} from '../shared/adapters/local/local-work-queue.ts';
import { pipelineCapacityOf } from '../shared/capacity/names.ts';
import type { RunCapacityDeps } from '../shared/capacity/run-capacity.ts';
import { sweepCapacity } from '../shared/capacity/sweep.ts';
import type {
  EmbedPipelineConfig,
  GeneratePipelineConfig,
  PipelineConfig,
  ScorePipelineConfig,
} from '../shared/config/pipeline-config.ts';
import type { ReplacedBundleFile, RunSummary, WorkUnit } from '../shared/domain/types.ts';
import { ConfigError } from '../shared/errors/errors.ts';
import { finalizeRun } from '../shared/finalize/finalize-run.ts';
import { jobKindOf } from '../shared/jobs/registry.ts';
import { stageOfUnit } from '../shared/jobs/run-stages.ts';
import { newRunId } from '../shared/output/keys.ts';
import { type PlanRunRequest, planRun } from '../shared/plan/plan-run.ts';
import { maxModelBytesFor, XgboostModelCache } from '../shared/scoring/in-worker/model-cache.ts';
import { deadLetterUnit } from '../shared/work/dead-letter-unit.ts';
import { type ProcessUnitDeps, processUnit, type UnitOutcome } from '../shared/work/process-unit.ts';
import type { WarmingPolicy } from '../shared/work/warming.ts';
import type { LocalHome } from './home.ts';
import { HashEmbedder } from './model-server/hash-embedder.ts';
import { RulesChatBackend } from './model-server/rules-chat-backend.ts';
import { type ModelServer, type ModelServerStats, startModelServer } from './model-server/server.ts';
import { XgboostJsonBackend } from './model-server/xgboost-backend.ts';
import type { EndpointCounters, RunProgressEvents } from './progress/run-progress.ts';
import { acquireRunLease, type RunLease } from './run-lease.ts';
import { seedBundle } from './seed-bundle.ts';
import {
  FolderPrefixes,
  PendingDeletions,
  resolveInputs,
  type SkippedInput,
  stageInputs,
  unstageVanished,
} from './stage-inputs.ts';
import { UnitThreads } from './threads/unit-threads.ts';

/**
 * Finalize compares per-source document manifests on the main thread, beside the run
 * store and chunk index, under the run's heap cap: smaller segments and read buffers
 * than a finalize Lambda's (a local file store reads fast, so they cost little), and
 * fewer vanished documents held at once for the moves scan (a deleted source of 1M
 * documents held 76 MiB at the Lambda's 500,000: `npm run bench -- manifests`).
 */
export const LOCAL_SOURCE_MANIFESTS = {
  segmentDocs: 50_000,
  mergeBufferBytes: 4 * 1024 * 1024,
  concurrency: 4,
  smallConcurrency: 8,
  maxCandidates: 100_000,
} as const;

/** The region a local run is priced in: the one region with sourced prices (shared/cost/pricing.ts). */
export const LOCAL_COST_REGION = 'us-east-1';

export interface LocalRunOptions {
  readonly home: LocalHome;
  readonly config: PipelineConfig;
  readonly paths: readonly string[];
  /** Folder of the pipeline configs; model files a config names are seeded from it into the bucket. */
  readonly pipelinesDir?: string;
  /** A running server speaking the SageMaker runtime API; when absent the built-in one starts. */
  readonly endpointUrl?: string;
  /** An ONNX sentence-transformer folder the built-in server runs instead of hash-embed (embed pipelines). */
  readonly modelDir?: string;
  /** Progress lines for a person (stderr). */
  readonly log: (line: string) => void;
  /** Phases and unit outcomes for a progress display; with it, finished units are not logged one by one. */
  readonly progress?: RunProgressEvents;
  readonly now?: () => Date;
  /** Worker threads that run units; 0 runs them on the main thread. @default {@link defaultUnitThreads} */
  readonly threads?: number;
  /** Overrides of how units wait for a cold endpoint (see {@link LocalRuntimeOptions.warming}). */
  readonly warming?: Partial<WarmingPolicy>;
}

export interface LocalRunResult {
  /** The summary of the run that did the pipeline's work (for a scoring pipeline that fitted first, the scoring run). */
  readonly summary: RunSummary;
  readonly deadLetters: number;
  /** Folder entries not read (hidden, broken links, loops, not regular files), each with its reason. */
  readonly skippedInputs: readonly SkippedInput[];
}

/** Skipped folder entries printed one per line; the rest are counted (all are in `--json`). */
const MAX_SKIPS_LOGGED = 20;

export interface LocalModel {
  readonly config: PipelineConfig;
  /** Where the workers call the model; absent for in-worker scoring, which calls none. */
  readonly endpointUrl: string | undefined;
  readonly server?: ModelServer;
}

/**
 * The model a local run calls: the server at `--endpoint-url`, or the built-in one with
 * the weight-free hash embedder or the ONNX folder of `--model-dir` (embed pipelines), or
 * the pipeline's XGBoost JSON model (score pipelines hosted `serverless` or `instance`).
 * Score pipelines hosted `in-worker` start no server: the workers evaluate the model
 * themselves, as the deployed work function does. Results record the model that really
 * produced them.
 */
export async function startLocalModel(
  home: LocalHome,
  config: PipelineConfig,
  endpointUrl: string | undefined,
  modelDir: string | undefined,
  log: (line: string) => void,
): Promise<LocalModel> {
  if (config.kind === 'score' && config.model.hosting === 'in-worker') {
    if (endpointUrl !== undefined)
      throw new ConfigError(
        `--endpoint-url: pipeline ${config.name} scores in the worker (model.hosting in-worker) and calls no endpoint; set model.hosting to serverless or instance to call a server`,
      );
    return loadInWorkerModel(home, config, log);
  }
  if (config.kind === 'generate') return startChatModel(config, endpointUrl, log);
  if (endpointUrl !== undefined) return { config, endpointUrl };
  // A kind that calls no model (recommend) starts no server.
  if (config.kind === 'recommend') return { config, endpointUrl: undefined };
  if (config.kind === 'embed') {
    if (modelDir !== undefined) return startOnnxModel(home, config, modelDir, log);
    const backend = new HashEmbedder(config.endpoint.dimension);
    const server = await startModelServer({ backend });
    log(`model server: ${server.url} (${backend.description})`);
    return {
      config: { ...config, endpoint: { ...config.endpoint, model: backend.model } },
      endpointUrl: server.url,
      server,
    };
  }
  if (!(await home.store.head(config.model.modelKey))) {
    throw new ConfigError(
      `model.modelKey: no ${config.model.modelKey} in the bucket or beside the pipeline config`,
    );
  }
  const backend = XgboostJsonBackend.fromFile(home.store.pathOf(config.model.modelKey));
  const server = await startModelServer({ backend });
  log(`model server: ${server.url} (${backend.description})`);
  return {
    config: { ...config, model: { ...config.model, modelId: config.model.modelId ?? backend.model } },
    endpointUrl: server.url,
    server,
  };
}

/**
 * A generate pipeline's LLM: the OpenAI-compatible server at `--endpoint-url` (called over
 * HTTP: the config's `endpoint.url`), else the built-in server with the rules-chat backend,
 * which is not a language model and says so; its answers record its model id.
 */
async function startChatModel(
  config: GeneratePipelineConfig,
  endpointUrl: string | undefined,
  log: (line: string) => void,
): Promise<LocalModel> {
  if (endpointUrl !== undefined)
    return { config: { ...config, endpoint: { ...config.endpoint, url: endpointUrl } }, endpointUrl };
  const backend = new RulesChatBackend();
  const server = await startModelServer({ backend });
  log(`model server: ${server.url} (${backend.description})`);
  return { config: { ...config, model: backend.model }, endpointUrl: server.url, server };
}

/**
 * In-worker scoring: no model server. The model is read and compiled here once before any
 * unit runs, so a missing, oversized or corrupt model stops the run with one line (exit 2)
 * as the model server's start does, instead of failing unit after unit; each worker then
 * reads it itself (XgboostModelCache). The scores record the same model id the local
 * model server gives the file.
 */
async function loadInWorkerModel(
  home: LocalHome,
  config: ScorePipelineConfig,
  log: (line: string) => void,
): Promise<LocalModel> {
  if (!(await home.store.head(config.model.modelKey))) {
    throw new ConfigError(
      `model.modelKey: no ${config.model.modelKey} in the bucket or beside the pipeline config`,
    );
  }
  const model = await new XgboostModelCache().get(home.store, config.model.modelKey, {
    maxModelBytes: maxModelBytesFor(config.workers.memoryMiB),
  });
  log(`in-worker scoring: ${model.modelId}: ${model.predictor.describe()}; no model server`);
  return {
    config: { ...config, model: { ...config.model, modelId: config.model.modelId ?? model.modelId } },
    endpointUrl: undefined,
  };
}

/**
 * The built-in server with the ONNX sentence-transformer in `modelDir` (imported only
 * here: it loads onnxruntime-node). Its output must have the pipeline's
 * `endpoint.dimension`, else a ConfigError of one line (exit 2); the embeddings record
 * the folder's model id. Unless the pipeline names a tokenizer, chunks are counted with the
 * folder's own (staged into the bucket, as `chunking.tokenizer` would name it), so their
 * sizes are the model's tokens. Closing the server releases the onnxruntime session.
 */
async function startOnnxModel(
  home: LocalHome,
  config: EmbedPipelineConfig,
  modelDir: string,
  log: (line: string) => void,
): Promise<LocalModel> {
  const { OnnxEmbeddingBackend } = await import('./model-server/onnx-backend.ts');
  const backend = await OnnxEmbeddingBackend.load(modelDir);
  if (backend.dimension !== config.endpoint.dimension) {
    await backend.close();
    throw new ConfigError(
      `--model-dir ${modelDir}: ${backend.model} outputs ${backend.dimension}-dimensional vectors, but the ${config.name} pipeline's endpoint.dimension is ${config.endpoint.dimension}`,
    );
  }
  // Chunk token counts include the special tokens, as the model's length limit does.
  if (config.chunking.maxTokens > backend.folder.maxLength)
    log(
      `warning: chunking.maxTokens is ${config.chunking.maxTokens} but ${backend.model} takes ${backend.folder.maxLength} tokens; longer chunks are truncated (lower chunking.maxTokens)`,
    );
  let { chunking } = config;
  if (chunking.tokenizer === undefined) {
    chunking = { ...chunking, tokenizer: await stageTokenizer(home, config.name, backend.folder) };
    log(`chunking: token counts from ${backend.model}'s tokenizer.json`);
  }
  const server = await startModelServer({ backend });
  log(`model server: ${server.url} (${backend.description})`);
  return {
    config: { ...config, chunking, endpoint: { ...config.endpoint, model: backend.model } },
    endpointUrl: server.url,
    server: {
      ...server,
      close: async () => {
        await server.close();
        await backend.close();
      },
    },
  };
}

/**
 * Puts a model folder's tokenizer into the local bucket under its content hash
 * (`models/<pipeline>/tokenizers/<sha256>/`), as a pipeline's `chunking.tokenizer` names one.
 */
async function stageTokenizer(
  home: LocalHome,
  pipeline: string,
  folder: { readonly tokenizerJson: object; readonly tokenizerConfig: object },
): Promise<{ key: string; configKey: string }> {
  const json = JSON.stringify(folder.tokenizerJson);
  const config = JSON.stringify(folder.tokenizerConfig);
  const prefix = `models/${pipeline}/tokenizers/${createHash('sha256').update(json).update('\n').update(config).digest('hex')}/`;
  const key = `${prefix}tokenizer.json`;
  const configKey = `${prefix}tokenizer_config.json`;
  await home.store.put(key, json);
  await home.store.put(configKey, config);
  return { key, configKey };
}

/** A finalize that ended a stage and started the next one: says so. */
async function logStageStarted(home: LocalHome, runId: string, log: (line: string) => void): Promise<void> {
  const run = await home.runs.getRun(runId);
  if (run?.status === 'running' && run.stage !== undefined)
    log(
      `run ${runId}: stage ${run.stage} started (${run.totalUnits - run.doneUnits - run.failedUnits} units)`,
    );
}

/** The local stand-in for the deployed workers: model server, endpoint clients and queues. */
export interface LocalRuntime {
  /** The config as run: with the model id of the local model that really answers. */
  readonly config: PipelineConfig;
  readonly queue: LocalWorkQueue;
  /** Summaries of the runs this runtime finalized, by run id. */
  readonly summaries: ReadonlyMap<string, RunSummary>;
  /** Run-scoped capacity (pipelines with an instance endpoint): plan takes leases, finalize releases them. */
  readonly capacity?: RunCapacityDeps;
  /** Pipeline-folder files that replaced the bucket's copy when the runtime started (cli/seed-bundle.ts). */
  readonly replacedFiles: readonly ReplacedBundleFile[];
  close(): Promise<void>;
}

export interface LocalRuntimeOptions {
  readonly home: LocalHome;
  readonly config: PipelineConfig;
  readonly pipelinesDir?: string;
  readonly endpointUrl?: string;
  /** An ONNX sentence-transformer folder the built-in server runs instead of hash-embed (embed pipelines). */
  readonly modelDir?: string;
  readonly log: (line: string) => void;
  /** Phases and unit outcomes for a progress display; with it, finished units are not logged one by one. */
  readonly progress?: RunProgressEvents;
  readonly now?: () => Date;
  /**
   * Worker threads that run units (each with its own bounded heap and endpoint client,
   * as a Lambda worker); 0 runs them on the main thread.
   * @default {@link defaultUnitThreads}
   */
  readonly threads?: number;
  /**
   * Overrides of how units wait for a cold endpoint (tests shorten the delays and the
   * warm-up limit). @default the pipeline's: 30 s doubling to 900 s, up to `capacity.warmupLimitSeconds`
   */
  readonly warming?: Partial<WarmingPolicy>;
}

/**
 * Run-scoped capacity on one machine: leases in `<home>/state/capacity/` (shared by the
 * runs of every `sluice run` on the home), and the copies of the built-in server's
 * simulated inference component, read and set over SageMaker's own control-plane protocol
 * with the real SageMakerClient (imported only here: it takes about half a second to
 * load). A server at `--endpoint-url` has no control plane: its copies are kept in memory.
 */
async function localCapacityFor(
  home: LocalHome,
  config: PipelineConfig,
  model: LocalModel,
): Promise<{ deps: RunCapacityDeps; close(): void } | undefined> {
  if (pipelineCapacityOf(config) === undefined || model.endpointUrl === undefined) return undefined;
  const leases = new LocalCapacityLeases(path.join(home.dir, 'state', 'capacity'));
  if (model.server === undefined)
    return { deps: { leases, control: new LocalCapacityControl() }, close: () => {} };
  const [{ SageMakerClient }, { SageMakerCapacityControl }] = await Promise.all([
    import('@aws-sdk/client-sagemaker'),
    import('../shared/adapters/aws/sagemaker-capacity-control.ts'),
  ]);
  const client = new SageMakerClient({
    endpoint: model.server.url,
    region: LOCAL_COST_REGION,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  return {
    deps: { leases, control: new SageMakerCapacityControl({ client }) },
    close: () => client.destroy(),
  };
}

/** Units each worker thread works on at once: one reads and chunks while the other waits on the endpoint. */
const UNITS_PER_THREAD = 2;

/**
 * One unit thread per core but one (the main thread keeps a core for the queue, run
 * store, chunk index and the built-in model server), and never more than the pipeline's
 * `workers.maxConcurrency` units at once.
 */
export function defaultUnitThreads(config: PipelineConfig): number {
  return Math.max(1, Math.min(availableParallelism() - 1, config.workers.maxConcurrency));
}

/** Units a local run works on at once: two per thread (four on the main thread), at most `workers.maxConcurrency`. */
function unitsAtOnce(config: PipelineConfig, threads: number): number {
  return Math.min(config.workers.maxConcurrency, threads > 0 ? threads * UNITS_PER_THREAD : 4);
}

/**
 * Starts what a local run or redrive needs: the bundle seeded into the bucket, the model
 * server (unless `endpointUrl`), and an in-process queue with the deployed rules
 * (visibility timeout of 6x the worker timeout, `maxReceiveCount`, and a dead-letter
 * consumer that marks a unit failed when its last delivery died).
 */
export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const { home, log } = options;
  const replacedFiles = await seedBundle(home, options.config, options.pipelinesDir, log);
  const model = await startModelOf(options);
  const { config } = model;
  const capacity = await localCapacityFor(home, config, model);
  const consumers = new LocalConsumers({
    home,
    config,
    endpointUrl: model.endpointUrl,
    threads: options.threads ?? defaultUnitThreads(config),
    ...(capacity && { capacity: capacity.deps }),
    log,
    ...(options.progress && { progress: options.progress }),
    ...(options.warming && { warming: options.warming }),
    now: options.now ?? (() => new Date()),
    replacedFiles,
  });
  return {
    config,
    queue: consumers.queue,
    summaries: consumers.summaries,
    replacedFiles,
    ...(capacity && { capacity: capacity.deps }),
    // Every part is closed even when one fails (a failing close must not leave the model
    // server or the index open); the first failure is thrown after all have been tried.
    close: () =>
      closeAll([
        () => consumers.close(),
        // The chunk index's LevelDB lets one process hold it: let go once the run's units are done.
        () => home.chunkIndex.close(),
        async () => capacity?.close(),
        async () => model.server?.close(),
      ]),
  };
}

/** The run's model (see {@link startLocalModel}), its server's counters handed to the progress display. */
async function startModelOf(options: LocalRuntimeOptions): Promise<LocalModel> {
  if (options.endpointUrl === undefined) options.progress?.phase('starting the model');
  const { home, config, endpointUrl, modelDir, log } = options;
  const model = await startLocalModel(home, config, endpointUrl, modelDir, log);
  const server = model.server;
  if (server) options.progress?.endpointCounters(() => endpointCountersOf(server.stats()));
  return model;
}

/** What the local consumers work with: the home, the config as run, and how to report. */
interface LocalConsumersContext {
  readonly home: LocalHome;
  /** The config as run (with the model id of the local model that answers). */
  readonly config: PipelineConfig;
  readonly endpointUrl: string | undefined;
  /** Worker threads; 0 runs units on the main thread. */
  readonly threads: number;
  readonly capacity?: RunCapacityDeps;
  readonly log: (line: string) => void;
  readonly progress?: RunProgressEvents;
  readonly warming?: Partial<WarmingPolicy>;
  readonly now: () => Date;
  /** Bundle files seeding replaced, carried into the stored summary of the runs finalized here. */
  readonly replacedFiles: readonly ReplacedBundleFile[];
}

/** Where the queue's units are worked: on worker threads, or on the main thread. */
interface UnitRunner {
  run(unit: WorkUnit, delivery: Delivery): Promise<UnitOutcome>;
  close(): Promise<void>;
}

/**
 * The deployed consumers on one machine: the in-process queue with the deployed rules, and
 * what its messages run: a unit (worker threads, or the main thread), finalize (a summary
 * kept by run id, or the next stage started), and the dead-letter consumer, which marks a
 * unit failed when its last delivery died.
 */
class LocalConsumers {
  readonly queue: LocalWorkQueue;
  /** Summaries of the runs these consumers finalized, by run id. */
  readonly summaries = new Map<string, RunSummary>();
  private readonly units: UnitRunner;
  private readonly pipelines: ReadonlyMap<string, PipelineConfig>;

  constructor(private readonly context: LocalConsumersContext) {
    const { config, threads } = context;
    const concurrency = unitsAtOnce(config, threads);
    this.pipelines = new Map([[config.name, config]]);
    this.queue = new LocalWorkQueue({
      maxReceiveCount: config.workers.maxReceiveCount,
      concurrency,
      visibilityTimeoutMs: visibilityTimeoutMsFor(config.workers),
      onUnit: (unit, delivery) => this.workUnit(unit, delivery),
      onFinalize: (runId) => this.finalize(runId),
      onDeadLetter: (letter) => this.deadLetter(letter),
    });
    this.units =
      threads === 0 ? mainThreadUnits(context, this.queue) : threadUnits(context, this.queue, concurrency);
  }

  close(): Promise<void> {
    return this.units.close();
  }

  /** One delivery of a unit; its outcome logged (one line per unit unless a progress display shows them). */
  private async workUnit(unit: WorkUnit, delivery: Delivery): Promise<void> {
    const { config, log, progress } = this.context;
    const outcome = await this.units.run(unit, delivery);
    if (outcome.status === 'deferred')
      log(`unit ${unit.unitId}: endpoint has no capacity yet; trying again in ${outcome.delaySeconds} s`);
    if (outcome.status === 'failed') log(`unit ${unit.unitId} failed: ${outcome.reason}`);
    progress?.unitSettled(unit, outcome);
    if (outcome.status !== 'succeeded' || progress) return;
    const c = outcome.counts;
    const done = stageOfUnit(jobKindOf(config), unit).describeUnit(c);
    log(`unit ${unit.unitId}: ${c.records} records, ${done}, ${c.rejected} rejected`);
  }

  /** The end of a stage: the run's summary when it ended, else the next stage's units join the progress total. */
  private async finalize(runId: string): Promise<void> {
    const { home, capacity, progress } = this.context;
    progress?.phase(`finalizing run ${runId}`);
    const summary = await finalizeRun(
      {
        store: home.store,
        runs: home.runs,
        queue: this.queue,
        pipelines: this.pipelines,
        segmentStats: home.segmentStats,
        sourceManifests: LOCAL_SOURCE_MANIFESTS,
        chunkIndex: home.chunkIndex,
        // A local run is priced as if deployed with the configured instance type and memory.
        costing: { region: LOCAL_COST_REGION, estimate: true },
        ...(capacity && { capacity }),
        replacedFiles: this.context.replacedFiles,
      },
      runId,
      this.context.now(),
    );
    if (summary) {
      this.summaries.set(runId, summary);
      return;
    }
    await logStageStarted(home, runId, this.context.log);
    // The next stage's units join the progress total (units already counted stay as they are).
    if (progress) progress.queued((await home.runs.listUnits(runId)).map((unit) => ({ ...unit, runId })));
  }

  /** A unit whose last delivery died is marked failed (a finalize message is only listed). */
  private async deadLetter(letter: DeadLetter): Promise<void> {
    if (!('unitId' in letter.body)) return;
    const { home, progress } = this.context;
    await deadLetterUnit({ store: home.store, runs: home.runs, queue: this.queue }, letter.body, {
      receiveCount: letter.receiveCount,
      reason: letter.error,
    });
    progress?.unitSettled(letter.body, { status: 'failed', reason: letter.error });
  }
}

/** Units on the main thread (`threads: 0`): the endpoint client is built here, once. */
function mainThreadUnits(context: LocalConsumersContext, queue: LocalWorkQueue): UnitRunner {
  const { home, config, warming } = context;
  const deps: Promise<ProcessUnitDeps> = import('./threads/unit-deps.ts').then(({ localUnitDeps }) =>
    localUnitDeps({
      store: home.store,
      runs: home.runs,
      queue,
      chunkIndex: home.chunkIndex,
      config,
      endpointUrl: context.endpointUrl,
    }),
  );
  return {
    run: async (unit, delivery) =>
      processUnit(await deps, config, unit, { ...delivery, ...(warming === undefined ? {} : { warming }) }),
    close: async () => {},
  };
}

/** Units on worker threads, each with its own bounded heap and endpoint client, as a Lambda worker. */
function threadUnits(context: LocalConsumersContext, queue: LocalWorkQueue, concurrency: number): UnitRunner {
  const { home, config, warming } = context;
  const threads = new UnitThreads(
    {
      threads: context.threads,
      bucketDir: home.bucketDir,
      config,
      endpointUrl: context.endpointUrl,
      shared: { runs: home.runs, queue, chunkIndex: home.chunkIndex },
    },
    concurrency,
  );
  return {
    run: (unit, delivery) =>
      threads.run(unit, {
        isLastAttempt: delivery.isLastAttempt,
        ...(warming === undefined ? {} : { warming }),
      }),
    close: () => threads.close(),
  };
}

/** The summary of a run this runtime finalized, else the one the run store holds. */
export async function finalSummaryOf(
  home: LocalHome,
  runtime: LocalRuntime,
  runId: string,
): Promise<RunSummary | undefined> {
  return runtime.summaries.get(runId) ?? (await home.runs.getSummary(runId));
}

/**
 * The deployed sweeper's pass, once at the end of a local run: leases of local runs that
 * died (killed processes) are released, and copies are set as the live leases and the
 * cooldown call for. The run's own copies are still in their cooldown, which its cost
 * charges as an estimate; no process stays behind to scale them in, so the next run on
 * this home finds them warm or sweeps them.
 */
async function sweepLocalCapacity(
  home: LocalHome,
  runtime: LocalRuntime,
  now: Date,
  log: (line: string) => void,
): Promise<void> {
  const capacity = pipelineCapacityOf(runtime.config);
  if (!runtime.capacity || !capacity) return;
  const [sweep] = await sweepCapacity({ ...runtime.capacity, runs: home.runs }, [capacity], now);
  if (!sweep) return;
  for (const leak of sweep.leaked) log(`capacity: released the lease of run ${leak.runId} (${leak.reason})`);
  if (sweep.error !== undefined) log(`capacity: sweep of ${sweep.component} failed: ${sweep.error}`);
  else if (sweep.coolingDown)
    log(
      `capacity: ${sweep.copies} ${sweep.component} copies kept for the ${capacity.capacity.cooldownSeconds} s cooldown (in the run's cost as an estimate)`,
    );
}

/**
 * `sluice run`: the deployed flow on one machine. Inputs are staged into the local
 * bucket as uploads, then the same plan, work and finalize use cases run, with the
 * in-process queue applying the deployed retry and dead-letter rules, and the real
 * SageMakerRuntimeClient calling a local model server.
 */
export async function runLocalPipeline(options: LocalRunOptions): Promise<LocalRunResult> {
  const { home } = options;
  const now = options.now ?? (() => new Date());
  const started = Date.now();
  const skippedInputs: SkippedInput[] = [];
  const prefixes = new FolderPrefixes(options.config.name, home);
  const inputs = await resolveInputs(options.paths, options.config.name, skippedInputs, prefixes);
  logSkippedInputs(skippedInputs, options.log);
  for (const note of prefixes.notes) options.log(note);
  const runtime = await startLocalRuntime(options);
  let lease: RunLease | undefined;
  try {
    options.progress?.phase(`staging ${inputs.length} input files`);
    const pending = new PendingDeletions(home.dir, options.config.name);
    const removedKeys = await unstageVanished(home.store, inputs, pending);
    await stageInputs(home.store, inputs);
    const runId = newRunId(now());
    // Held until the run is finalized: a `redrive --resume` of it meanwhile is refused.
    lease = await acquireRunLease(home.dir, runId);
    const planMs = await planLocalRun(options, runtime, {
      runId,
      trigger: 'local',
      keys: inputs.map((i) => i.key),
      removedKeys,
      now: now(),
    });
    const workMs = await workLocalRun(options, runtime, now);
    const summary = await finalSummaryOf(home, runtime, runId);
    if (!summary)
      throw new Error(`run ${runId} did not finish: finalize failed (see dead-lettered messages above)`);
    await pending.recorded(removedKeys);
    return {
      summary: {
        ...summary,
        timings: { ...summary.timings, planMs, workMs, totalMs: Date.now() - started },
        ...(runtime.replacedFiles.length > 0 && { replacedFiles: [...runtime.replacedFiles] }),
      },
      deadLetters: runtime.queue.deadLetters.length,
      skippedInputs,
    };
  } finally {
    // The run lease goes even when closing the runtime fails, or a redrive --resume of the
    // run would be refused for as long as this process lives.
    try {
      await runtime.close();
    } finally {
      await lease?.release();
    }
  }
}

/** The first {@link MAX_SKIPS_LOGGED} skipped folder entries, one per line, and how many more. */
function logSkippedInputs(skippedInputs: readonly SkippedInput[], log: (line: string) => void): void {
  for (const skip of skippedInputs.slice(0, MAX_SKIPS_LOGGED)) log(`skipped ${skip.path}: ${skip.reason}`);
  if (skippedInputs.length > MAX_SKIPS_LOGGED)
    log(
      `skipped ${skippedInputs.length - MAX_SKIPS_LOGGED} more folder entries (listed in the --json output)`,
    );
}

/** Plans the run (its units stored and sent, its capacity lease taken); returns how long planning took, in ms. */
async function planLocalRun(
  options: LocalRunOptions,
  runtime: LocalRuntime,
  request: PlanRunRequest,
): Promise<number> {
  const { home, log } = options;
  options.progress?.phase('planning: sampling the inputs to cut units of equal cost');
  const planStarted = Date.now();
  const plan = await planRun(
    {
      store: home.store,
      runs: home.runs,
      queue: runtime.queue,
      ...(runtime.capacity && { capacity: runtime.capacity }),
    },
    runtime.config,
    request,
  );
  const planMs = Date.now() - planStarted;
  if (plan.capacity?.error !== undefined)
    log(`capacity: lease taken, copies not raised (${plan.capacity.error}); the end-of-run sweep retries`);
  log(
    `run ${request.runId}: ${plan.inputCount} input files -> ${plan.units.length} units${(plan.run.stages?.length ?? 1) > 1 ? ` (stages: ${plan.run.stages?.join(', ')})` : ''}`,
  );
  options.progress?.queued(plan.units);
  return planMs;
}

/** Delivers every unit of every stage and finalizes the run, then the capacity sweep; returns the work time in ms. */
async function workLocalRun(
  options: LocalRunOptions,
  runtime: LocalRuntime,
  now: () => Date,
): Promise<number> {
  const workStarted = Date.now();
  await runtime.queue.drain();
  const workMs = Date.now() - workStarted;
  for (const dead of runtime.queue.deadLetters)
    options.log(`dead-lettered: ${JSON.stringify(dead.body).slice(0, 120)}: ${dead.error}`);
  await sweepLocalCapacity(options.home, runtime, now(), options.log);
  return workMs;
}

/** The built-in server's counters as progress shows them: calls refused for want of a GPU slot or a copy are throttles. */
function endpointCountersOf(stats: ModelServerStats): EndpointCounters {
  return {
    calls: stats.requests,
    inputs: stats.inputs,
    throttled: stats.throttled + stats.capacity.noCapacity,
  };
}

/** Runs every closer in order, then throws the first failure, if any. */
async function closeAll(closers: readonly (() => Promise<unknown>)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const close of closers) {
    try {
      await close();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw failures[0];
}
