import type { ConcurrencyLimiter } from '../../endpoint/adaptive-limiter.ts';
import { EndpointThrottled, EndpointUnavailable, ModelError } from '../../errors/errors.ts';
import type { ChatEndpoint } from '../../jobs/generate/chat-endpoint.ts';
import type { CallStats } from '../../ports/embedding-endpoint.ts';
import { fullJitterDelay, realSleep, type Sleep } from '../aws/backoff.ts';

export interface OpenAiChatEndpointOptions {
  /**
   * The server: a base URL (`http://127.0.0.1:8000`, `http://127.0.0.1:8000/v1`) or the
   * full route; requests go to `<base>/v1/chat/completions`.
   */
  readonly url: string;
  /** Retries after the first attempt. */
  readonly maxRetries: number;
  /** Budget of one attempt (chatTimeoutMs of `max_tokens`). */
  readonly timeoutMs: number;
  /** Shared by every request of the worker; throttling and timeouts lower its limit. */
  readonly limiter?: ConcurrencyLimiter;
  /** Sent as `Authorization: Bearer ...` where the server wants one (vLLM `--api-key`). */
  readonly apiKey?: string;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
  /** @default 100 */
  readonly baseDelayMs?: number;
  /** @default 20000 */
  readonly maxDelayMs?: number;
}

/** `http://h:p`, `http://h:p/v1` or the full route -> the chat completions route. */
export function chatCompletionsUrl(url: string): string {
  const base = url.replace(/\/+$/, '');
  if (base.endsWith('/chat/completions')) return base;
  if (base.endsWith('/v1')) return `${base}/chat/completions`;
  return `${base}/v1/chat/completions`;
}

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
}

class AttemptTimeout extends Error {
  override readonly name = 'TimeoutError';
}

/** 429 and 503 are servers saying "too much" (vLLM, TGI and Ollama answer a full queue so). */
const isThrottle = (error: unknown): boolean =>
  error instanceof HttpStatusError && (error.status === 429 || error.status === 503);
const isOverload = (error: unknown): boolean => isThrottle(error) || error instanceof AttemptTimeout;

/**
 * (secondary adapter) ChatEndpoint over plain HTTP to any OpenAI-compatible server (vLLM,
 * llama.cpp's server, Ollama, TGI): `sluice run --endpoint-url`. The retry rules are the
 * SageMaker invoker's: 429/503, other 5xx, network errors and attempt timeouts are retried
 * with exponential backoff and full jitter; another 4xx is the server refusing the request
 * and is thrown at once as ModelError.
 */
export class OpenAiChatEndpoint implements ChatEndpoint {
  readonly url: string;
  private readonly sleep: Sleep;
  private readonly random: () => number;

  constructor(private readonly options: OpenAiChatEndpointOptions) {
    this.url = chatCompletionsUrl(options.url);
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
  }

  async complete(body: string, cost: number, stats: CallStats): Promise<string> {
    const { maxRetries, limiter } = this.options;
    let last: unknown;
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      if (attempt > 0) {
        stats.retries += 1;
        const base = this.options.baseDelayMs ?? 100;
        await this.sleep(fullJitterDelay(attempt - 1, base, this.options.maxDelayMs ?? 20_000, this.random));
      }
      stats.endpointCalls += 1;
      try {
        return limiter
          ? await limiter.run(() => this.post(body), { cost, isOverload })
          : await this.post(body);
      } catch (error) {
        if (error instanceof HttpStatusError && error.status < 500 && !isThrottle(error))
          throw new ModelError(
            `${this.url} refused the request (status ${error.status}): ${error.message}`,
            error.status,
            { cause: error },
          );
        if (isThrottle(error)) stats.throttled += 1;
        last = error;
      }
    }
    const detail = last instanceof Error ? `: ${last.message}` : '';
    if (isThrottle(last))
      throw new EndpointThrottled(`${this.url} still throttling after ${maxRetries + 1} attempts${detail}`, {
        cause: last,
      });
    throw new EndpointUnavailable(`${this.url} failed ${maxRetries + 1} attempts${detail}`, { cause: last });
  }

  private async post(body: string): Promise<string> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
        },
        body,
        signal: controller.signal,
      });
      const text = await response.text();
      if (!response.ok) throw new HttpStatusError(response.status, firstLineOf(text));
      return text;
    } catch (error) {
      if (controller.signal.aborted)
        throw new AttemptTimeout(`no response within ${this.options.timeoutMs} ms`, { cause: error });
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** An error body's message in one line (OpenAI-style `{"error": {"message"}}` or `{"error": "..."}`). */
function firstLineOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = parsed.error as { message?: unknown } | string | undefined;
    const message = typeof error === 'string' ? error : (error?.message ?? parsed.message);
    if (typeof message === 'string') return message.split('\n')[0]!.slice(0, 300);
  } catch {
    // not JSON: the text itself
  }
  return text.split('\n')[0]!.slice(0, 300);
}
