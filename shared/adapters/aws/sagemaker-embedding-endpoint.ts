import { InvokeEndpointCommand, type SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import type { ConcurrencyLimiter } from '../../endpoint/adaptive-limiter.ts';
import { MAX_INVOKE_PAYLOAD_BYTES } from '../../endpoint/payload-limit.ts';
import { EndpointThrottled, EndpointUnavailable, ModelError } from '../../errors/errors.ts';
import type { CallStats, EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import { awsErrorName, httpStatusOf, isNetworkError } from './aws-error.ts';
import { fullJitterDelay, realSleep, type Sleep } from './backoff.ts';

export interface SageMakerEmbeddingEndpointOptions {
  /**
   * Created once per process and injected. Create it with `maxAttempts: 1` so this class
   * owns retries: otherwise the SDK's own retries multiply with these, hide throttling from
   * `stats`, and do not honour `timeoutMs` per attempt.
   */
  readonly client: SageMakerRuntimeClient;
  readonly endpointName: string;
  /** Retries after the first attempt (so at most `maxRetries + 1` HTTP calls per batch). */
  readonly maxRetries: number;
  /** Budget of one HTTP attempt; an attempt past it is aborted and retried. */
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
  | { readonly kind: 'throttled'; readonly error: unknown }
  | { readonly kind: 'unavailable'; readonly error: unknown }
  | { readonly kind: 'fatal'; readonly error: unknown };

const THROTTLING_STATUSES = new Set([429, 503]);

/**
 * (secondary adapter) EmbeddingEndpoint over a SageMaker real-time endpoint serving the
 * TEI contract: `{"inputs": [...], "truncate": true}` -> `number[][]`.
 *
 * Retries throttling (ThrottlingException, a container 429/503), 5xx, network errors,
 * per-attempt timeouts and malformed responses with exponential backoff and full jitter.
 * A container 4xx is the model refusing the payload and is thrown at once as ModelError.
 * With a `limiter`, every attempt runs through it and throttling and timeouts lower its
 * limit (adaptive concurrency). A batch whose JSON would pass SageMaker's 6 MB payload
 * limit is split in halves, sent as separate requests, and its vectors joined in order.
 */
export class SageMakerEmbeddingEndpoint implements EmbeddingEndpoint {
  private readonly client: SageMakerRuntimeClient;
  private readonly endpointName: string;
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly limiter: ConcurrencyLimiter | undefined;
  private readonly maxPayloadBytes: number;

  constructor(options: SageMakerEmbeddingEndpointOptions) {
    this.client = options.client;
    this.endpointName = options.endpointName;
    this.maxRetries = Math.max(0, options.maxRetries);
    this.timeoutMs = options.timeoutMs;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 20_000;
    this.limiter = options.limiter;
    this.maxPayloadBytes = options.maxPayloadBytes ?? MAX_INVOKE_PAYLOAD_BYTES;
  }

  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    if (inputs.length === 0) return [];
    const body = JSON.stringify({ inputs, truncate: true });
    const bytes = Buffer.byteLength(body);
    if (bytes <= this.maxPayloadBytes) return this.embedWithRetries(inputs, body, stats);
    if (inputs.length === 1) {
      throw new ModelError(
        `endpoint ${this.endpointName}: one input makes a ${bytes}-byte request, over the ${this.maxPayloadBytes}-byte payload limit`,
        413,
      );
    }
    const half = Math.ceil(inputs.length / 2);
    const [head, tail] = await Promise.all([
      this.embed(inputs.slice(0, half), stats),
      this.embed(inputs.slice(half), stats),
    ]);
    return [...head, ...tail];
  }

  private async embedWithRetries(
    inputs: readonly string[],
    body: string,
    stats: CallStats,
  ): Promise<number[][]> {
    // What the endpoint computes grows with the padded batch: longest input x count.
    const cost = inputs.reduce((longest, text) => Math.max(longest, text.length), 1) * inputs.length;
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
          ? await this.limiter.run(() => this.invokeOnce(body), { cost, isOverload })
          : await this.invokeOnce(body);
      } catch (error) {
        last = classify(error);
        if (last.kind === 'fatal') throw toFatalError(error, this.endpointName);
        if (last.kind === 'throttled') stats.throttled += 1;
        continue;
      }
      try {
        return parseEmbeddings(responseBody, inputs.length);
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

  /** One HTTP attempt, abandoned after `timeoutMs` even if the request handler ignores the signal. */
  private async invokeOnce(body: string): Promise<Uint8Array | undefined> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`no response within ${this.timeoutMs} ms`);
        error.name = 'TimeoutError';
        controller.abort(error);
        reject(error);
      }, this.timeoutMs);
    });
    try {
      const command = new InvokeEndpointCommand({
        EndpointName: this.endpointName,
        ContentType: 'application/json',
        Accept: 'application/json',
        Body: new TextEncoder().encode(body),
      });
      const out = await Promise.race([
        this.client.send(command, { abortSignal: controller.signal }),
        timedOut,
      ]);
      return out.Body;
    } finally {
      clearTimeout(timer);
    }
  }
}

function classify(error: unknown): Failure {
  const name = awsErrorName(error);
  const status = httpStatusOf(error);
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

/** Parses the TEI response: one vector per input, all of one dimension, all finite numbers. */
function parseEmbeddings(body: Uint8Array | undefined, expected: number): number[][] {
  if (body === undefined) throw new EndpointUnavailable('endpoint returned an empty body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new EndpointUnavailable('endpoint returned a body that is not JSON', { cause: error });
  }
  if (!Array.isArray(parsed) || parsed.length !== expected) {
    const got = Array.isArray(parsed) ? `${parsed.length} vectors` : typeof parsed;
    throw new EndpointUnavailable(`endpoint returned ${got} for ${expected} inputs`);
  }
  const dimension = Array.isArray(parsed[0]) ? parsed[0].length : -1;
  for (const vector of parsed) {
    if (
      !Array.isArray(vector) ||
      vector.length !== dimension ||
      dimension === 0 ||
      !vector.every((x) => typeof x === 'number' && Number.isFinite(x))
    ) {
      throw new EndpointUnavailable(
        `endpoint returned vectors that are not ${dimension}-dimensional numbers`,
      );
    }
  }
  return parsed as number[][];
}
