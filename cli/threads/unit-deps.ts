import { SageMakerRuntimeClient, type SageMakerRuntimeClientConfig } from '@aws-sdk/client-sagemaker-runtime';
import {
  PipelineEndpointRegistry,
  sageMakerClientSettingsFor,
} from '../../shared/adapters/aws/pipeline-endpoints.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import type { ChunkIndex } from '../../shared/ports/chunk-index.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import type { ProcessUnitDeps } from '../../shared/work/process-unit.ts';

/**
 * The SDK client a local run calls its model through (an endpoint override to the local
 * server), with the settings a deployed worker's client has for the same pipelines.
 * `extra` is for benchmarks that compare client settings.
 */
export function localSageMakerClient(
  endpointUrl: string,
  pipelines: Iterable<PipelineConfig>,
  extra: Pick<SageMakerRuntimeClientConfig, 'cacheMiddleware'> = {},
): SageMakerRuntimeClient {
  return new SageMakerRuntimeClient({
    endpoint: endpointUrl,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...sageMakerClientSettingsFor(pipelines),
    ...extra,
  });
}

/**
 * What a local worker runs units with, on a unit thread or the main thread: the shared
 * state it is given, and its own token counter and endpoint client (as a Lambda worker).
 * Loaded only where units run, so a main thread that only coordinates threads never
 * loads the SageMaker client.
 */
export function localUnitDeps(options: {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  readonly chunkIndex: ChunkIndex;
  readonly config: PipelineConfig;
  /** The model server; absent when the pipeline scores in the worker and calls none. */
  readonly endpointUrl: string | undefined;
}): ProcessUnitDeps {
  const { store, runs, queue, chunkIndex, config, endpointUrl } = options;
  return {
    store,
    runs,
    queue,
    chunkIndex,
    tokenCounter: new EstimatingTokenCounter(),
    // In-worker scoring reads its model from the local bucket, once per thread (as per
    // container), and needs no SageMaker client.
    ...new PipelineEndpointRegistry(
      () => {
        if (endpointUrl === undefined)
          throw new Error(`pipeline ${config.name}: no model server was started for this run`);
        return localSageMakerClient(endpointUrl, [config]);
      },
      { store },
    ).endpointsFor(config),
  };
}
