import type { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { pipelineCapacityOf } from '../../capacity/names.ts';
import {
  type GeneratePipelineConfig,
  type PipelineConfig,
  type ScorePipelineConfig,
  scoringEndpointNameOf,
} from '../../config/pipeline-config.ts';
import { AdaptiveLimiter } from '../../endpoint/adaptive-limiter.ts';
import { ConfigError } from '../../errors/errors.ts';
import { type ChatEndpoint, chatLimiterOptions, chatTimeoutMs } from '../../jobs/generate/chat-endpoint.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import { InWorkerScoringEndpoint } from '../../scoring/in-worker/in-worker-scoring-endpoint.ts';
import { maxModelBytesFor, XgboostModelCache } from '../../scoring/in-worker/model-cache.ts';
import { OpenAiChatEndpoint } from '../http/openai-chat-endpoint.ts';
import type { Sleep } from './backoff.ts';
import { SageMakerChatEndpoint } from './sagemaker-chat-endpoint.ts';
import { SageMakerEmbeddingEndpoint } from './sagemaker-embedding-endpoint.ts';
import { sageMakerClientSettings } from './sagemaker-invoker.ts';
import { SageMakerScoringEndpoint } from './sagemaker-scoring-endpoint.ts';

/** One attempt's budget for a generate pipeline: its own, else sized from `generation.maxTokens`. */
const generateTimeoutMs = (config: GeneratePipelineConfig): number =>
  config.endpoint.timeoutMs ?? chatTimeoutMs(config.generation.maxTokens);

/** The most requests a pipeline's worker keeps in flight to its endpoint. */
const maxInFlight = (config: PipelineConfig): number =>
  config.kind === 'embed' || config.kind === 'generate'
    ? config.endpoint.concurrency
    : config.kind === 'score'
      ? config.model.concurrency
      : 0;

/** How long one attempt of a pipeline's endpoint calls may take. */
const attemptTimeoutMs = (config: PipelineConfig): number =>
  config.kind === 'generate'
    ? generateTimeoutMs(config)
    : config.kind === 'embed'
      ? config.endpoint.timeoutMs
      : config.kind === 'score'
        ? config.model.timeoutMs
        : 0;

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
  readonly chatEndpoint?: ChatEndpoint;
}

export interface PipelineEndpointRegistryOptions {
  /** Waits between the invokers' retries. @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /**
   * Where score pipelines with `model.hosting: in-worker` read their model
   * (`model.modelKey`). Required for them; the endpoint hostings never read it.
   */
  readonly store?: ObjectStore;
  /**
   * The models in-worker scoring holds. @default one cache per registry: a registry is
   * built once per worker (Lambda container, local unit thread), so a model is read and
   * compiled once per worker and checked for a new version once a minute.
   */
  readonly modelCache?: XgboostModelCache;
}

/**
 * Builds (once per pipeline) the model client a pipeline calls. Embedding pipelines and
 * score pipelines hosted on an endpoint (`model.hosting` `serverless` or `instance`) call
 * SageMaker over one shared SageMakerRuntimeClient; `in-worker` scoring evaluates the
 * XGBoost JSON model in the worker and calls nothing. Embedding endpoints get one
 * adaptive limiter per endpoint name, so pipelines that share an endpoint share its
 * capacity.
 */
export class PipelineEndpointRegistry {
  private readonly byPipeline = new Map<string, PipelineEndpoints>();
  private readonly limiters = new Map<string, AdaptiveLimiter>();
  private readonly modelCache: XgboostModelCache;
  private client: SageMakerRuntimeClient | undefined;

  /**
   * @param sagemaker the shared client, or how to make it: made on the first endpoint
   * built, so a worker whose pipelines all score in-worker never makes one.
   */
  constructor(
    private readonly sagemaker: SageMakerRuntimeClient | (() => SageMakerRuntimeClient),
    private readonly options: PipelineEndpointRegistryOptions = {},
  ) {
    this.modelCache = options.modelCache ?? new XgboostModelCache();
  }

  private sageMakerClient(): SageMakerRuntimeClient {
    this.client ??= typeof this.sagemaker === 'function' ? this.sagemaker() : this.sagemaker;
    return this.client;
  }

  endpointsFor(config: PipelineConfig): PipelineEndpoints {
    const known = this.byPipeline.get(config.name);
    if (known) return known;
    const sleep = this.options.sleep === undefined ? {} : { sleep: this.options.sleep };
    // Run-scoped capacity hosts the model as an inference component: calls must name it.
    const componentName = pipelineCapacityOf(config)?.componentName;
    const component = componentName === undefined ? {} : { inferenceComponentName: componentName };
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
          client: this.sageMakerClient(),
          endpointName: endpoint.name,
          maxRetries: endpoint.maxRetries,
          timeoutMs: endpoint.timeoutMs,
          limiter,
          ...component,
          ...sleep,
        }),
      };
    } else if (config.kind === 'generate') {
      built = { chatEndpoint: this.chat(config, component, sleep) };
    } else if (config.kind !== 'score') {
      // A kind that calls no model (recommend).
      built = {};
    } else if (config.model.hosting === 'in-worker') {
      built = { scoringEndpoint: this.inWorker(config) };
    } else {
      // `serverless` calls the endpoint itself; `instance` names its inference component.
      const { model } = config;
      built = {
        scoringEndpoint: new SageMakerScoringEndpoint({
          client: this.sageMakerClient(),
          endpointName: scoringEndpointNameOf(config),
          maxRetries: model.maxRetries,
          timeoutMs: model.timeoutMs,
          ...component,
          ...sleep,
        }),
      };
    }
    this.byPipeline.set(config.name, built);
    return built;
  }

  /**
   * A generate pipeline's LLM: plain HTTP to `endpoint.url` (an OpenAI-compatible server),
   * else SageMaker InvokeEndpoint; either way through one adaptive limiter per endpoint,
   * with an attempt budget sized from `generation.maxTokens`.
   */
  private chat(
    config: GeneratePipelineConfig,
    component: { inferenceComponentName?: string },
    sleep: { sleep?: Sleep },
  ): ChatEndpoint {
    const { endpoint } = config;
    const limiterKey = endpoint.url ?? endpoint.name;
    let limiter = this.limiters.get(limiterKey);
    if (!limiter) {
      limiter = new AdaptiveLimiter(chatLimiterOptions(endpoint));
      this.limiters.set(limiterKey, limiter);
    }
    const timeoutMs = generateTimeoutMs(config);
    if (endpoint.url !== undefined)
      return new OpenAiChatEndpoint({
        url: endpoint.url,
        maxRetries: endpoint.maxRetries,
        timeoutMs,
        limiter,
        ...sleep,
      });
    return new SageMakerChatEndpoint({
      client: this.sageMakerClient(),
      endpointName: endpoint.name,
      maxRetries: endpoint.maxRetries,
      timeoutMs,
      limiter,
      ...component,
      ...sleep,
    });
  }

  private inWorker(config: ScorePipelineConfig): InWorkerScoringEndpoint {
    const { store } = this.options;
    if (!store)
      throw new ConfigError(
        `pipeline ${config.name}: model.hosting in-worker reads ${config.model.modelKey} from the object store, and this worker was given none`,
      );
    return new InWorkerScoringEndpoint({
      store,
      modelKey: config.model.modelKey,
      cache: this.modelCache,
      limits: { maxModelBytes: maxModelBytesFor(config.workers.memoryMiB) },
    });
  }
}
