import type { PipelineConfig } from '../shared/config/pipeline-config.ts';

/**
 * One stack serves every pipeline it is given, so resources shared by all of them
 * (the work queue, the worker function) are sized for the most demanding one.
 */
export interface DeploymentSettings {
  /** Worker function timeout: the longest `workers.timeoutSeconds`. */
  readonly workTimeoutSeconds: number;
  /** Worker function memory: the largest `workers.memoryMiB`. */
  readonly workMemoryMiB: number;
  /** Work event source `maxConcurrency`: the largest `workers.maxConcurrency`. */
  readonly workMaxConcurrency: number;
  /** Deliveries before a message is dead-lettered: the largest `workers.maxReceiveCount`. */
  readonly maxReceiveCount: number;
}

/** Derives the stack-wide sizing from validated pipeline configs (at least one). */
export function deploymentSettings(pipelines: readonly PipelineConfig[]): DeploymentSettings {
  if (pipelines.length === 0) throw new Error('Sluice needs at least one pipeline config to deploy');
  const max = (pick: (p: PipelineConfig) => number) => Math.max(...pipelines.map(pick));
  return {
    workTimeoutSeconds: max((p) => p.workers.timeoutSeconds),
    workMemoryMiB: max((p) => p.workers.memoryMiB),
    workMaxConcurrency: max((p) => p.workers.maxConcurrency),
    maxReceiveCount: max((p) => p.workers.maxReceiveCount),
  };
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
    byName.set(endpoint.name, {
      ...seen,
      pipelines: [...seen.pipelines, pipeline.name],
      maxBatchTokens: Math.max(seen.maxBatchTokens, batching.maxBatchTokens),
      maxClientBatchSize: Math.max(seen.maxClientBatchSize, batching.maxBatchSize),
    });
  }
  return [...byName.values()];
}
