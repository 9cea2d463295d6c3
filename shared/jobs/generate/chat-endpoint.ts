import type { CallStats } from '../../ports/embedding-endpoint.ts';

/**
 * (port) An LLM behind the OpenAI-compatible chat completions contract
 * (chat-contract.ts): posts one request body and returns the response body. Adapters:
 * SageMaker `InvokeEndpoint` (shared/adapters/aws/sagemaker-chat-endpoint.ts) and plain
 * HTTP to `/v1/chat/completions` (shared/adapters/http/openai-chat-endpoint.ts). Both
 * retry throttling, 5xx and timeouts and keep requests in flight through the adaptive
 * limiter; a request the model refuses (4xx) throws ModelError.
 */
export interface ChatEndpoint {
  /**
   * @param cost what the server computes for it (prompt plus `max_tokens` tokens, estimated),
   * so the limiter compares latencies of like requests
   */
  complete(body: string, cost: number, stats: CallStats): Promise<string>;
}

/**
 * The adaptive limiter's settings for an LLM endpoint. A continuous-batching server's
 * latency grows with the requests it decodes together (each step takes longer with a
 * bigger batch) and with each answer's length, which is not known in advance: both are
 * normal until the KV cache is full. So latency counts as queueing only at 4 times the
 * unloaded latency (2 for embedding batches), and throttling (the server refusing work
 * past its cache and queue) stays the main signal (bench/generate-saturation.ts: at 2 the
 * limiter settled at 6 of the server's 48 slots). Such a server's capacity (its KV cache
 * slots) is often many times the initial limit, so the limit starts by doubling (slow
 * start) until the first throttle or high latency, instead of climbing one step per window
 * from 8; embedding and scoring endpoints keep the additive climb.
 */
export function chatLimiterOptions(endpoint: {
  readonly initialConcurrency: number;
  readonly concurrency: number;
}) {
  return {
    initialLimit: Math.min(endpoint.initialConcurrency, endpoint.concurrency),
    maxLimit: endpoint.concurrency,
    latencyTolerance: 4,
    slowStart: true,
  };
}

/** Waiting for the first token: the request queue and the prompt's prefill. */
const FIRST_TOKEN_BUDGET_MS = 30_000;
/**
 * The slowest decode a loaded server is allowed per output token: 10 tokens/s, where a
 * 7-8B model on one GPU decodes 30 to 100 per stream even with a full batch.
 */
const MS_PER_OUTPUT_TOKEN = 100;

/**
 * The budget of one attempt of a chat request: 30 s for the queue and prefill plus 100 ms
 * per token of `max_tokens`, so a long answer is not abandoned half-written and a short
 * one is not waited on for minutes (512 tokens: 81 s; 4,096: 440 s).
 */
export function chatTimeoutMs(maxTokens: number): number {
  return FIRST_TOKEN_BUDGET_MS + MS_PER_OUTPUT_TOKEN * maxTokens;
}
