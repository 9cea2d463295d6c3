import { workPoolsOf } from '../shared/capacity/work-pools.ts';
import type {
  CapacityConfig,
  PipelineConfig,
  ScorePipelineConfig,
} from '../shared/config/pipeline-config.ts';
import type { FeatureSpec } from '../shared/scoring/features/feature-spec.ts';
import { embeddingTableKeys } from '../shared/scoring/features/feature-transformer.ts';

/**
 * One stack serves every pipeline it is given, so resources shared by all of them (the
 * queues' redelivery limit; the work queue and the work function) are sized for the most
 * demanding one. A stack whose pipelines split into two work pools (`workPoolsOf`, issue 14)
 * sizes each work function by its own pool only: `Work` by the endpoint pool, `WorkCompute`
 * by the compute pool, so a memory-hungry recommend pipeline does not raise the memory (and
 * the bill) of the workers that wait on a GPU.
 */
export interface DeploymentSettings {
  /** Work function timeout: the longest `workers.timeoutSeconds` of the work queue's pipelines. */
  readonly workTimeoutSeconds: number;
  /** Work function memory: the largest `workers.memoryMiB` of the work queue's pipelines. */
  readonly workMemoryMiB: number;
  /** Work event source `maxConcurrency`: the largest `workers.maxConcurrency` of the work queue's pipelines. */
  readonly workMaxConcurrency: number;
  /** Deliveries before a message is dead-lettered: the largest `workers.maxReceiveCount` of all pipelines. */
  readonly maxReceiveCount: number;
  /**
   * `WorkCompute` and its compute queue, sized by the compute pool's pipelines; absent when
   * the stack does not split (all its pipelines run on `Work`).
   */
  readonly workCompute?: WorkFunctionSettings;
}

/** How one work function and its queue are sized, from the pipelines whose units it runs. */
export interface WorkFunctionSettings {
  /** The longest `workers.timeoutSeconds`. */
  readonly timeoutSeconds: number;
  /** The largest `workers.memoryMiB`. */
  readonly memoryMiB: number;
  /** The event source's `maxConcurrency`: the largest `workers.maxConcurrency`. */
  readonly maxConcurrency: number;
}

/** Derives the stack-wide and per-work-function sizing from validated pipeline configs (at least one). */
export function deploymentSettings(pipelines: readonly PipelineConfig[]): DeploymentSettings {
  if (pipelines.length === 0) throw new Error('Sluice needs at least one pipeline config to deploy');
  const pools = workPoolsOf(pipelines);
  const work = workFunctionSettings(pools.work);
  return {
    workTimeoutSeconds: work.timeoutSeconds,
    workMemoryMiB: work.memoryMiB,
    workMaxConcurrency: work.maxConcurrency,
    maxReceiveCount: Math.max(...pipelines.map((p) => p.workers.maxReceiveCount)),
    ...(pools.split ? { workCompute: workFunctionSettings(pools.compute) } : {}),
  };
}

function workFunctionSettings(pipelines: readonly PipelineConfig[]): WorkFunctionSettings {
  const max = (pick: (p: PipelineConfig) => number) => Math.max(...pipelines.map(pick));
  return {
    timeoutSeconds: max((p) => p.workers.timeoutSeconds),
    memoryMiB: max((p) => p.workers.memoryMiB),
    maxConcurrency: max((p) => p.workers.maxConcurrency),
  };
}

/**
 * Model ids only the local runtime serves: `sluice-hash-embed-v1` is the weight-free hash
 * embedder of `sluice run` and the schema's default `endpoint.model`. No SageMaker
 * endpoint can load it (TEI would look it up on the Hugging Face Hub and fail its health
 * check minutes into the deploy), so synth refuses to deploy it.
 */
export const LOCAL_ONLY_MODELS: readonly string[] = ['sluice-hash-embed-v1'];

/**
 * The configs as their endpoints will serve them: with `hfModelId` (context
 * `sluice:hfModelId`) as every embed pipeline's `endpoint.model`, so the model the TEI
 * container loads is the model the workers record with every embedding and fold into
 * every chunk fingerprint (an incremental run after a model change re-embeds instead of
 * carrying the old model's vectors). Refuses, in one line naming the pipeline and the fix,
 * an embed pipeline whose model is local-only.
 */
export function withDeployedModels(
  pipelines: readonly PipelineConfig[],
  hfModelId?: string,
): PipelineConfig[] {
  return pipelines.map((pipeline): PipelineConfig => {
    if (pipeline.kind !== 'embed') return pipeline;
    const model = hfModelId ?? pipeline.endpoint.model;
    if (LOCAL_ONLY_MODELS.includes(model)) {
      const where =
        hfModelId === undefined
          ? `pipeline ${pipeline.name}: endpoint.model is "${model}"`
          : `context sluice:hfModelId is "${model}"`;
      throw new Error(
        `${where}, a local-only model that no SageMaker endpoint serves: set endpoint.model in pipelines/${pipeline.name}.json to a Hugging Face model id (e.g. "BAAI/bge-small-en-v1.5") or pass -c sluice:hfModelId=<model id>`,
      );
    }
    return model === pipeline.endpoint.model
      ? pipeline
      : { ...pipeline, endpoint: { ...pipeline.endpoint, model } };
  });
}

/** What one SageMaker endpoint must serve; pipelines naming the same endpoint share it. */
export interface EndpointSpec {
  readonly endpointName: string;
  readonly instanceType: string;
  /** Pipelines served by this endpoint, in config order. */
  readonly pipelines: readonly string[];
  /** Hugging Face model id the TEI container loads (`endpoint.model`), also recorded with every embedding. */
  readonly model: string;
  /** TEI `MAX_BATCH_TOKENS`: the largest `batching.maxBatchTokens` of those pipelines. */
  readonly maxBatchTokens: number;
  /** TEI `MAX_CLIENT_BATCH_SIZE`: the largest `batching.maxBatchSize` of those pipelines. */
  readonly maxClientBatchSize: number;
  /** `endpoint.capacity`, which pipelines sharing the endpoint must agree on (one scalable target). */
  readonly capacity: CapacityConfig;
}

/**
 * Groups pipelines by `endpoint.name`. `instanceTypeOverride` (context
 * `sluice:embeddingInstanceType`) replaces every config's `endpoint.instanceType`;
 * without it, pipelines sharing an endpoint must agree on the instance type.
 */
export function endpointSpecs(
  pipelines: readonly PipelineConfig[],
  instanceTypeOverride?: string,
): EndpointSpec[] {
  const byName = new Map<string, EndpointSpec>();
  for (const pipeline of pipelines) {
    if (pipeline.kind !== 'embed') continue;
    const { endpoint, batching } = pipeline;
    checkCapacity(pipeline.name, 'endpoint.capacity', endpoint.capacity);
    const instanceType = instanceTypeOverride ?? endpoint.instanceType;
    const seen = byName.get(endpoint.name);
    if (!seen) {
      byName.set(endpoint.name, {
        endpointName: endpoint.name,
        instanceType,
        pipelines: [pipeline.name],
        model: endpoint.model,
        maxBatchTokens: batching.maxBatchTokens,
        maxClientBatchSize: batching.maxBatchSize,
        capacity: endpoint.capacity,
      });
      continue;
    }
    if (seen.model !== endpoint.model) {
      throw new Error(
        `pipelines ${seen.pipelines.join(', ')} and ${pipeline.name} share endpoint ${endpoint.name} ` +
          `but name models ${seen.model} and ${endpoint.model}: one endpoint serves one model`,
      );
    }
    if (seen.instanceType !== instanceType) {
      throw new Error(
        `pipelines ${seen.pipelines.join(', ')} and ${pipeline.name} share endpoint ${endpoint.name} ` +
          `but ask for instance types ${seen.instanceType} and ${instanceType}: use one instance type or another endpoint.name`,
      );
    }
    checkSameCapacity(
      `pipelines ${seen.pipelines.join(', ')} and ${pipeline.name} share endpoint ${endpoint.name}`,
      'endpoint.capacity',
      seen.capacity,
      endpoint.capacity,
    );
    byName.set(endpoint.name, {
      ...seen,
      pipelines: [...seen.pipelines, pipeline.name],
      maxBatchTokens: Math.max(seen.maxBatchTokens, batching.maxBatchTokens),
      maxClientBatchSize: Math.max(seen.maxClientBatchSize, batching.maxBatchSize),
    });
  }
  return [...byName.values()];
}

/**
 * Key prefix of the objects score pipelines read besides their inputs (fitted feature
 * statistics, embedding lookup tables). The functions are granted this prefix, so every
 * such key a config names must lie under it.
 */
export const MODELS_PREFIX = 'models/';

/** What one scoring endpoint (SageMaker's built-in XGBoost container) must serve. */
export interface ScoringEndpointSpec {
  readonly endpointName: string;
  /** `model.hosting` of its pipelines (in-worker pipelines have no endpoint). */
  readonly hosting: 'instance' | 'serverless';
  readonly instanceType: string;
  /** `model.capacity` (hosting `instance`). */
  readonly capacity: CapacityConfig;
  /** `model.serverless` (hosting `serverless`). */
  readonly serverless: ScorePipelineConfig['model']['serverless'];
  /** Object key of the `model.tar.gz` in the data bucket. */
  readonly modelDataKey: string;
  /** Pipelines served by this endpoint, in config order. */
  readonly pipelines: readonly string[];
}

/**
 * The `model.tar.gz` SageMaker loads for a score pipeline: `model.modelDataKey`, or
 * `model.modelKey` with its `.json` extension replaced by `.tar.gz`
 * (`models/credit-risk/model.json` -> `models/credit-risk/model.tar.gz`).
 */
export function modelDataKeyOf(model: ScorePipelineConfig['model']): string {
  return model.modelDataKey ?? `${model.modelKey.replace(/\.json$/, '')}.tar.gz`;
}

/**
 * Groups the score pipelines that call a SageMaker endpoint (`model.hosting` `instance` or
 * `serverless`; `in-worker` pipelines have none) by `model.endpointName`. Pipelines sharing
 * an endpoint must agree on the model archive, the hosting and its settings (instance type
 * and capacity, or serverless memory and concurrency): one endpoint serves one model one way.
 * Refuses, with one line naming the pipeline and key, what the deployed stack could not
 * serve: a model archive that is not a `.tar.gz` (SageMaker's ModelDataUrl must be one),
 * and feature statistics or embedding tables outside `models/`, which the functions
 * cannot read or write.
 */
export function scoringEndpointSpecs(pipelines: readonly PipelineConfig[]): ScoringEndpointSpec[] {
  const byName = new Map<string, ScoringEndpointSpec>();
  for (const pipeline of pipelines) {
    if (pipeline.kind !== 'score') continue;
    checkModelKeys(pipeline);
    const { endpointName, instanceType, hosting, capacity, serverless } = pipeline.model;
    if (hosting === 'in-worker') continue;
    // Locally the pipeline's name routes to the local model server; a deployed endpoint is named by the user.
    if (endpointName === undefined)
      throw new Error(
        `pipeline ${pipeline.name}: model.endpointName is required with model.hosting "${hosting}": the stack deploys a SageMaker endpoint by that name (or set model.hosting "in-worker", which needs none)`,
      );
    if (hosting === 'instance') checkCapacity(pipeline.name, 'model.capacity', capacity);
    const modelDataKey = modelDataKeyOf(pipeline.model);
    const seen = byName.get(endpointName);
    if (!seen) {
      byName.set(endpointName, {
        endpointName,
        hosting,
        instanceType,
        capacity,
        serverless,
        modelDataKey,
        pipelines: [pipeline.name],
      });
      continue;
    }
    const sharing = `pipelines ${seen.pipelines.join(', ')} and ${pipeline.name} share endpoint ${endpointName}`;
    if (seen.modelDataKey !== modelDataKey) {
      throw new Error(
        `${sharing} but load models ${seen.modelDataKey} and ${modelDataKey}: one endpoint serves one model`,
      );
    }
    if (seen.hosting !== hosting) {
      throw new Error(
        `${sharing} but host it as ${seen.hosting} and ${hosting} (model.hosting): use one hosting or another model.endpointName`,
      );
    }
    if (hosting === 'instance' && seen.instanceType !== instanceType) {
      throw new Error(
        `${sharing} but ask for instance types ${seen.instanceType} and ${instanceType}: use one instance type or another model.endpointName`,
      );
    }
    if (hosting === 'instance') checkSameCapacity(sharing, 'model.capacity', seen.capacity, capacity);
    if (
      hosting === 'serverless' &&
      (seen.serverless.memoryMiB !== serverless.memoryMiB ||
        seen.serverless.maxConcurrency !== serverless.maxConcurrency)
    ) {
      throw new Error(
        `${sharing} but size it differently (model.serverless ${JSON.stringify(seen.serverless)} and ${JSON.stringify(serverless)}): use one model.serverless or another model.endpointName`,
      );
    }
    byName.set(endpointName, { ...seen, pipelines: [...seen.pipelines, pipeline.name] });
  }
  return [...byName.values()];
}

/**
 * Refuses a capacity no scalable target can have: always-on with more copies kept between
 * runs than it may ever hold (Application Auto Scaling needs min <= max).
 */
function checkCapacity(pipeline: string, field: string, capacity: CapacityConfig): void {
  if (capacity.mode === 'always-on' && capacity.minCopies > capacity.maxCopies) {
    throw new Error(
      `pipeline ${pipeline}: ${field}.minCopies ${capacity.minCopies} is more than ${field}.maxCopies ${capacity.maxCopies}: always-on keeps minCopies up, so raise maxCopies or lower minCopies`,
    );
  }
}

/**
 * Pipelines sharing an endpoint share its inference component and so its one scalable
 * target: the copies they may hold and whether copies stay up between runs must agree.
 * (Per-copy throughput, target run time, cooldown and limits are read per run and may differ.)
 */
function checkSameCapacity(sharing: string, field: string, a: CapacityConfig, b: CapacityConfig): void {
  const scaling = (c: CapacityConfig) =>
    c.mode === 'always-on'
      ? `always-on, ${c.minCopies} to ${c.maxCopies} copies`
      : `run-scoped, up to ${c.maxCopies} copies`;
  if (scaling(a) !== scaling(b)) {
    throw new Error(
      `${sharing} but scale it differently (${field}: ${scaling(a)} and ${scaling(b)}): use one ${field}.mode, minCopies and maxCopies or another endpoint name`,
    );
  }
}

function checkModelKeys(pipeline: ScorePipelineConfig): void {
  if (pipeline.model.hosting === 'in-worker') {
    // The work function reads the JSON model itself, with the models/ read it has for score pipelines.
    if (!pipeline.model.modelKey.startsWith(MODELS_PREFIX)) {
      throw new Error(
        `pipeline ${pipeline.name}: model.modelKey "${pipeline.model.modelKey}" must be under ${MODELS_PREFIX}: with model.hosting in-worker the work function reads the model there`,
      );
    }
  }
  const modelDataKey = modelDataKeyOf(pipeline.model);
  if (pipeline.model.hosting !== 'in-worker' && !modelDataKey.endsWith('.tar.gz')) {
    throw new Error(
      `pipeline ${pipeline.name}: model.modelDataKey "${modelDataKey}" must name a .tar.gz archive (SageMaker loads models only from one)`,
    );
  }
  const keys: [string, string][] = [
    ['featureStats.key', pipeline.featureStats.key],
    ...embeddingTableKeys(pipeline.featureSpec as FeatureSpec).map((key): [string, string] => [
      'featureSpec embedding table',
      key,
    ]),
  ];
  for (const [field, key] of keys) {
    if (!key.startsWith(MODELS_PREFIX)) {
      throw new Error(
        `pipeline ${pipeline.name}: ${field} "${key}" must be under ${MODELS_PREFIX}: the deployed functions may read and write model files only there`,
      );
    }
  }
}

/**
 * Every SageMaker endpoint name is deployed once: an embedding and a scoring endpoint
 * cannot share a name (SageMaker names are unique per account and region).
 */
export function checkEndpointNames(
  embedding: readonly EndpointSpec[],
  scoring: readonly ScoringEndpointSpec[],
): void {
  const embeddingNames = new Map(embedding.map((e) => [e.endpointName, e.pipelines]));
  for (const spec of scoring) {
    const embedders = embeddingNames.get(spec.endpointName);
    if (embedders) {
      throw new Error(
        `endpoint ${spec.endpointName} is named by embed pipelines ${embedders.join(', ')} and score pipelines ${spec.pipelines.join(', ')}: give each its own endpoint name`,
      );
    }
  }
}
