import type { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import type { PipelineConfig } from '../../config/pipeline-config.ts';
import { AdaptiveLimiter } from '../../endpoint/adaptive-limiter.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import type { Sleep } from './backoff.ts';
import { SageMakerEmbeddingEndpoint } from './sagemaker-embedding-endpoint.ts';
import { sageMakerClientSettings } from './sagemaker-invoker.ts';
import { SageMakerScoringEndpoint } from './sagemaker-scoring-endpoint.ts';

/** The most requests a pipeline's worker keeps in flight to its endpoint. */
const maxInFlight = (config: PipelineConfig): number =>
  config.kind === 'embed' ? config.endpoint.concurrency : config.model.concurrency;

/** How long one attempt of a pipeline's endpoint calls may take. */
const attemptTimeoutMs = (config: PipelineConfig): number =>
  config.kind === 'embed' ? config.endpoint.timeoutMs : config.model.timeoutMs;

/**
 * {@link sageMakerClientSettings} for one client shared by these pipelines' endpoints: the
 * longest attempt any of them allows (60 s with none), and a socket for every request
 * their limiters may allow at once (at least the SDK's default pool of 50).
 */
export function sageMakerClientSettingsFor(pipelines: Iterable<PipelineConfig>) {
  const configs = [...pipelines];
  return sageMakerClientSettings({
    requestTimeoutMs: configs.length === 0 ? 60_000 : Math.max(...configs.map(attemptTimeoutMs)),
    maxSockets: Math.max(50, ...configs.map(maxInFlight)),
  });
}

/** The model clients a worker uses for one pipeline: embedding or scoring, by its kind. */
export interface PipelineEndpoints {
  readonly endpoint?: EmbeddingEndpoint;
  readonly scoringEndpoint?: ScoringEndpoint;
}

/**
 * Builds (once per pipeline) the endpoint client a pipeline calls, over one shared
 * SageMakerRuntimeClient. Embedding endpoints get one adaptive limiter per endpoint
 * name, so pipelines that share an endpoint share its capacity.
 */
export class PipelineEndpointRegistry {
  private readonly byPipeline = new Map<string, PipelineEndpoints>();
  private readonly limiters = new Map<string, AdaptiveLimiter>();

  constructor(
    private readonly client: SageMakerRuntimeClient,
    private readonly options: { readonly sleep?: Sleep } = {},
  ) {}

  endpointsFor(config: PipelineConfig): PipelineEndpoints {
    const known = this.byPipeline.get(config.name);
    if (known) return known;
    const sleep = this.options.sleep === undefined ? {} : { sleep: this.options.sleep };
    let built: PipelineEndpoints;
    if (config.kind === 'embed') {
      const { endpoint } = config;
      let limiter = this.limiters.get(endpoint.name);
      if (!limiter) {
        limiter = new AdaptiveLimiter({
          initialLimit: endpoint.initialConcurrency,
          maxLimit: endpoint.concurrency,
        });
        this.limiters.set(endpoint.name, limiter);
      }
      built = {
        endpoint: new SageMakerEmbeddingEndpoint({
          client: this.client,
          endpointName: endpoint.name,
          maxRetries: endpoint.maxRetries,
          timeoutMs: endpoint.timeoutMs,
          limiter,
          ...sleep,
        }),
      };
    } else {
      const { model } = config;
      built = {
        scoringEndpoint: new SageMakerScoringEndpoint({
          client: this.client,
          endpointName: model.endpointName,
          maxRetries: model.maxRetries,
          timeoutMs: model.timeoutMs,
          ...sleep,
        }),
      };
    }
    this.byPipeline.set(config.name, built);
    return built;
  }
}
