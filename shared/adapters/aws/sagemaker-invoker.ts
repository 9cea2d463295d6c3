import {
  InvokeEndpointCommand,
  type SageMakerRuntimeClient,
  type SageMakerRuntimeClientConfig,
} from '@aws-sdk/client-sagemaker-runtime';
import type { ConcurrencyLimiter } from '../../endpoint/adaptive-limiter.ts';
import { MAX_INVOKE_PAYLOAD_BYTES } from '../../endpoint/payload-limit.ts';
import { EndpointThrottled, EndpointUnavailable, EndpointWarming, ModelError } from '../../errors/errors.ts';
import type { CallStats } from '../../ports/embedding-endpoint.ts';
import { awsErrorName, httpStatusOf, isNetworkError } from './aws-error.ts';
import { fullJitterDelay, realSleep, type Sleep } from './backoff.ts';

/**
 * Settings of the SageMakerRuntimeClient the invokers of a process share (spread them into
 * its constructor):
 * - one attempt per call: the invoker owns retries (the SDK's would multiply with them,
 *   hide throttling from the run's stats, and not honour `timeoutMs` per attempt);
 * - the middleware stack resolved once and reused (`cacheMiddleware`), instead of on
 *   every call: about 0.1 ms of CPU per call (`perCallCpu` in `npm run bench -- overhead`).
 *   The cache is used only by calls that pass no per-call options, so an attempt cannot
 *   carry its own abort signal; instead
 * - the HTTP handler ends an attempt after `requestTimeoutMs` and destroys its socket
 *   (`throwOnRequestTimeout`). Give it the longest `timeoutMs` of the pipelines sharing the
 *   client: an attempt of a pipeline with a shorter one is still abandoned on time by the
 *   invoker, and its socket freed at `requestTimeoutMs`;
 * - `maxSockets` for every request the limiters may allow at once.
 */
export function sageMakerClientSettings(options: { requestTimeoutMs: number; maxSockets: number }) {
  const agent = { maxSockets: options.maxSockets };
  return {
    maxAttempts: 1,
    cacheMiddleware: true,
    requestHandler: {
      requestTimeout: options.requestTimeoutMs,
      throwOnRequestTimeout: true,
      httpAgent: agent,
      httpsAgent: agent,
    },
  } satisfies SageMakerRuntimeClientConfig;
}

export interface SageMakerInvokerOptions {
  /** Created once per process and injected, with {@link sageMakerClientSettings}. */
  readonly client: SageMakerRuntimeClient;
  readonly endpointName: string;
  /**
   * The inference component that hosts the model, where the endpoint has one (run-scoped
   * capacity, `pipelineCapacityOf(config)?.componentName`): sent as `InferenceComponentName`
   * (header `X-Amzn-SageMaker-Inference-Component`), which SageMaker requires to route a call
   * on an endpoint hosting inference components. @default none: the endpoint's own variant
   */
  readonly inferenceComponentName?: string;
  /** Retries after the first attempt (so at most `maxRetries + 1` HTTP calls per batch). */
  readonly maxRetries: number;
  /** Budget of one HTTP attempt; an attempt past it is abandoned and retried. */
  readonly timeoutMs: number;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
  /** @default 100 */
  readonly baseDelayMs?: number;
  /** @default 20000 */
  readonly maxDelayMs?: number;
  /**
   * Shared by every batch of the worker: each HTTP attempt waits for a slot, and throttling
   * and attempt timeouts lower the limit (see AdaptiveLimiter). Backoff sleeps hold no slot.
   * Without one, concurrency is whatever the caller runs at once.
   */
  readonly limiter?: ConcurrencyLimiter;
  /** A batch whose request body would be larger is split in halves. @default 6 MiB, SageMaker's limit */
  readonly maxPayloadBytes?: number;
}

type Failure =
  | { readonly kind: 'warming'; readonly error: unknown }
  | { readonly kind: 'throttled'; readonly error: unknown }
  | { readonly kind: 'unavailable'; readonly error: unknown }
  | { readonly kind: 'fatal'; readonly error: unknown };

const THROTTLING_STATUSES = new Set([429, 503]);

/**
 * SageMaker's answer to a call on an inference component with no copies (scaled to zero, or
 * copies being added): HTTP 400 `ValidationError` "Inference Component has no capacity to
 * process this request. ApplicationAutoScaling may be in-progress (if configured) or try to
 * increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API." (AWS ML blog,
 * "Unlock cost savings with the new scale down to zero feature in SageMaker Inference", 2024;
 * see docs/capacity.md). The type alone is any bad request, so the message decides.
 */
const NO_CAPACITY_MESSAGE = /no capacity to process this request/i;

/** One request: its body, content types, cost for the limiter and how to read the answer. */
export interface InvokeRequest<T> {
  readonly body: string;
  readonly contentType: string;
  readonly accept: string;
  /** What the endpoint computes for it, so the limiter compares latencies of like with like. */
  readonly cost: number;
  /** Reads the response; an exception here is a malformed answer, retried like a 5xx. */
  readonly parse: (body: Uint8Array | undefined) => T;
}

/**
 * InvokeEndpoint with the retry rules every Sluice endpoint shares: throttling
 * (ThrottlingException, a container 429/503), 5xx, network errors, per-attempt
 * timeouts and malformed responses are retried with exponential backoff and full
 * jitter; a container 4xx is the model refusing the payload and is thrown at once as
 * ModelError. With a `limiter`, every attempt runs through it and throttling and
 * timeouts lower its limit (adaptive concurrency).
 */
export class SageMakerInvoker {
  readonly endpointName: string;
  readonly maxPayloadBytes: number;
  readonly inferenceComponentName: string | undefined;
  private readonly client: SageMakerRuntimeClient;
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly limiter: ConcurrencyLimiter | undefined;

  constructor(options: SageMakerInvokerOptions) {
    this.client = options.client;
    this.endpointName = options.endpointName;
    this.inferenceComponentName = options.inferenceComponentName;
    this.maxRetries = Math.max(0, options.maxRetries);
    this.timeoutMs = options.timeoutMs;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 20_000;
    this.limiter = options.limiter;
    this.maxPayloadBytes = options.maxPayloadBytes ?? MAX_INVOKE_PAYLOAD_BYTES;
  }

  async invoke<T>(request: InvokeRequest<T>, stats: CallStats): Promise<T> {
    const { cost } = request;
    let last: Failure | undefined;
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      if (attempt > 0) {
        stats.retries += 1;
        await this.sleep(fullJitterDelay(attempt - 1, this.baseDelayMs, this.maxDelayMs, this.random));
      }
      stats.endpointCalls += 1;
      let responseBody: Uint8Array | undefined;
      try {
        responseBody = this.limiter
          ? await this.limiter.run(() => this.invokeOnce(request), { cost, isOverload })
          : await this.invokeOnce(request);
      } catch (error) {
        last = classify(error);
        if (last.kind === 'fatal') throw toFatalError(error, this.endpointName);
        // No capacity yet: retrying in-process would only sleep in the worker; the unit
        // waits on the queue instead (processUnit), with no retry or limit spent here.
        if (last.kind === 'warming') throw this.warming(error);
        if (last.kind === 'throttled') stats.throttled += 1;
        continue;
      }
      try {
        return request.parse(responseBody);
      } catch (error) {
        last = { kind: 'unavailable', error };
      }
    }

    const attempts = this.maxRetries + 1;
    const cause = last?.error;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    if (last?.kind === 'throttled') {
      throw new EndpointThrottled(
        `endpoint ${this.endpointName} still throttling after ${attempts} attempts${detail}`,
        { cause },
      );
    }
    throw new EndpointUnavailable(`endpoint ${this.endpointName} failed ${attempts} attempts${detail}`, {
      cause,
    });
  }

  private warming(error: unknown): EndpointWarming {
    const target = this.inferenceComponentName
      ? `endpoint ${this.endpointName} (inference component ${this.inferenceComponentName})`
      : `endpoint ${this.endpointName}`;
    const detail = error instanceof Error ? `: ${error.message.split('\n')[0]}` : '';
    return new EndpointWarming(this.endpointName, `${target} has no capacity yet${detail}`, { cause: error });
  }

  /**
   * One HTTP attempt, abandoned after `timeoutMs` whatever the request handler does (its
   * own request timeout, see {@link sageMakerClientSettings}, frees the socket). The call
   * passes no per-call options, so the client's cached middleware stack serves it.
   */
  private async invokeOnce(request: InvokeRequest<unknown>): Promise<Uint8Array | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`no response within ${this.timeoutMs} ms`);
        error.name = 'TimeoutError';
        reject(error);
      }, this.timeoutMs);
    });
    try {
      const command = new InvokeEndpointCommand({
        EndpointName: this.endpointName,
        ContentType: request.contentType,
        Accept: request.accept,
        Body: new TextEncoder().encode(request.body),
        ...(this.inferenceComponentName === undefined
          ? {}
          : { InferenceComponentName: this.inferenceComponentName }),
      });
      const out = await Promise.race([this.client.send(command), timedOut]);
      return out.Body;
    } finally {
      clearTimeout(timer);
    }
  }
}

function classify(error: unknown): Failure {
  const name = awsErrorName(error);
  const status = httpStatusOf(error);
  if (isWarming(error)) return { kind: 'warming', error };
  if (name === 'ModelError') {
    const original = (error as { OriginalStatusCode?: number }).OriginalStatusCode;
    if (original !== undefined && THROTTLING_STATUSES.has(original)) return { kind: 'throttled', error };
    if (original !== undefined && original >= 500) return { kind: 'unavailable', error };
    return { kind: 'fatal', error };
  }
  if (name === 'ThrottlingException' || status === 429) return { kind: 'throttled', error };
  if (
    name === 'ServiceUnavailable' ||
    name === 'InternalFailure' ||
    (status !== undefined && status >= 500)
  ) {
    return { kind: 'unavailable', error };
  }
  if (isNetworkError(error)) return { kind: 'unavailable', error };
  return { kind: 'fatal', error };
}

/**
 * The endpoint has no capacity yet: `ModelNotReadyException` (HTTP 429: a serverless
 * endpoint still provisioning, or a multi-model endpoint loading the model), or the
 * `ValidationError` of an inference component with no copies. Checked before throttling,
 * which also answers 429.
 */
function isWarming(error: unknown): boolean {
  const name = awsErrorName(error);
  if (name === 'ModelNotReadyException') return true;
  if (name !== 'ValidationError') return false;
  const message = error instanceof Error ? error.message : String((error as { message?: unknown }).message);
  return NO_CAPACITY_MESSAGE.test(message);
}

/** Throttling, and an attempt that timed out, mean the endpoint has more work than it can take. */
function isOverload(error: unknown): boolean {
  return classify(error).kind === 'throttled' || awsErrorName(error) === 'TimeoutError';
}

/** A container 4xx becomes our ModelError; anything else that cannot be retried propagates as it is. */
function toFatalError(error: unknown, endpointName: string): unknown {
  if (awsErrorName(error) !== 'ModelError') return error;
  const { OriginalStatusCode, OriginalMessage } = error as {
    OriginalStatusCode?: number;
    OriginalMessage?: string;
  };
  const reason = (OriginalMessage ?? (error as Error).message ?? '').split('\n')[0]?.slice(0, 300);
  return new ModelError(
    `endpoint ${endpointName} rejected the batch (status ${OriginalStatusCode ?? 'unknown'}): ${reason}`,
    OriginalStatusCode,
    { cause: error },
  );
}
