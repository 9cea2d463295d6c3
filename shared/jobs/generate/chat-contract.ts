import { createHash } from 'node:crypto';
import { z } from 'zod';
import { SluiceError } from '../../errors/errors.ts';

/**
 * The endpoint contract of the `generate` kind: OpenAI-compatible chat completions, the
 * body SageMaker's LLM containers accept on `InvokeEndpoint` (`/invocations`).
 *
 * Sources (checked 2026-12):
 * - TGI Messages API, "fully compatible with the OpenAI Chat Completion API" from TGI
 *   1.4.0: https://huggingface.co/docs/text-generation-inference/messages_api and
 *   https://huggingface.co/docs/text-generation-inference/reference/api_reference
 *   (request `model`, `messages`, `max_tokens`, `stream`; on SageMaker the same body is
 *   posted to the endpoint). On SageMaker the TGI container (the Hugging Face LLM DLC,
 *   image `huggingface-pytorch-tgi-inference`) takes this body on `/invocations` when the
 *   model's environment sets `MESSAGES_API_ENABLED=true`; the endpoint construct must set it.
 * - LMI (DJL Serving, vLLM backend) "Chat Completions API Schema":
 *   https://docs.djl.ai/docs/serving/serving/docs/lmi/user_guides/chat_input_output_schema.html
 *   "On SageMaker, Chat Completions API schema is supported with the /invocations endpoint
 *   without additional configurations. If the request contains the "messages" field, LMI
 *   will treat the request as a chat completions style request". `messages` is required,
 *   `model` optional; `max_tokens`, `temperature`, `top_p`, `stop`, `seed` as in OpenAI.
 * - Response (both): `choices[i].message.{role, content}`, `choices[i].finish_reason`
 *   (`stop`, `length`; older TGI also `eos_token`), `usage.{prompt_tokens,
 *   completion_tokens, total_tokens}`.
 *
 * We never stream (`stream` left out, false by default in both) and always ask for one
 * choice (`n` left out, default 1).
 */

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

/** Generation parameters as the pipeline config names them (camelCase). */
export interface GenerationParams {
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly stop: readonly string[];
  readonly seed?: number | undefined;
}

/** The request body posted to the endpoint (snake_case, as on the wire). */
export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  max_tokens: number;
  temperature: number;
  top_p: number;
  stop?: string[];
  seed?: number;
}

/** Builds the wire body; empty `stop` and an unset `seed` are left out rather than sent as `[]`/`null`. */
export function chatRequestOf(
  messages: readonly ChatMessage[],
  model: string,
  params: GenerationParams,
): ChatCompletionRequest {
  const request: ChatCompletionRequest = {
    model,
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    max_tokens: params.maxTokens,
    temperature: params.temperature,
    top_p: params.topP,
  };
  if (params.stop.length > 0) request.stop = [...params.stop];
  if (params.seed !== undefined) request.seed = params.seed;
  return request;
}

/** An answer as the rest of the kind uses it. */
export interface ChatAnswer {
  readonly content: string;
  /** `stop`, `length` (cut at max_tokens), or what the server said; null when it said nothing. */
  readonly finishReason: string | null;
  /** Absent when the server sends no `usage` (some local servers). */
  readonly usage?: { readonly promptTokens: number; readonly completionTokens: number } | undefined;
}

/** The endpoint answered 2xx with a body that is not a chat completion. Retrying the same request will not help. */
export class ChatResponseInvalid extends SluiceError {}

const tokenCount = z.number().int().min(0);

// Loose objects: servers add fields (id, created, system_fingerprint, logprobs) we ignore.
const chatCompletionSchema = z.looseObject({
  choices: z
    .array(
      z.looseObject({
        message: z.looseObject({
          content: z.string({ error: 'no text content (null or missing)' }),
        }),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1, { error: 'no choices' }),
  usage: z
    .looseObject({
      prompt_tokens: tokenCount,
      completion_tokens: tokenCount,
    })
    .nullish(),
});

/** Parses a chat completion (already decoded JSON); throws {@link ChatResponseInvalid} with one line naming the field. */
export function parseChatCompletion(body: unknown): ChatAnswer {
  const parsed = chatCompletionSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.join('.') || '(root)';
    throw new ChatResponseInvalid(`chat completion response: ${path}: ${issue.message}`, {
      cause: parsed.error,
    });
  }
  const choice = parsed.data.choices[0]!;
  const usage = parsed.data.usage;
  return {
    content: choice.message.content,
    finishReason: choice.finish_reason ?? null,
    usage: usage
      ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens }
      : undefined,
  };
}

/** Parses the raw response body of `InvokeEndpoint` or an HTTP server. */
export function parseChatCompletionBody(text: string): ChatAnswer {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    const start = text.slice(0, 80).replace(/\s+/g, ' ');
    throw new ChatResponseInvalid(`chat completion response is not JSON: "${start}"`, {
      cause: error,
    });
  }
  return parseChatCompletion(body);
}

/** JSON with object keys sorted at every depth and `undefined` members left out, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    // No prototype: a member named `__proto__` stays a member instead of replacing it.
    const out: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(value).sort()) {
      const member = (value as Record<string, unknown>)[key];
      if (member !== undefined) out[key] = sortKeys(member);
    }
    return out;
  }
  return value;
}

/**
 * sha256 (hex) of what decides an answer: the rendered messages, the model and the
 * generation parameters. The prompt cache keys on it and the `generations` table stores
 * it as `prompt_sha256`. The leading version tag lets a change of this recipe miss the
 * cache instead of returning answers to a different question.
 */
export function promptFingerprint(
  messages: readonly ChatMessage[],
  model: string,
  params: GenerationParams,
): string {
  const canonical = canonicalJson({
    v: 1,
    model,
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    params: {
      maxTokens: params.maxTokens,
      temperature: params.temperature,
      topP: params.topP,
      stop: [...params.stop],
      seed: params.seed,
    },
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/** Posts one JSON body and returns the response body as text (SageMaker InvokeEndpoint, HTTP). */
export type InvokeJson = (body: string) => Promise<string>;

/**
 * A call function for {@link ChatMessage} lists over any transport that posts JSON: builds
 * the request with the job's model and parameters, parses the answer. Transport errors
 * (throttling, 5xx) propagate as the transport raised them; a body that is not a chat
 * completion throws {@link ChatResponseInvalid}.
 */
export function chatCallOver(
  invoke: InvokeJson,
  model: string,
  params: GenerationParams,
): (messages: readonly ChatMessage[]) => Promise<ChatAnswer> {
  return async (messages) =>
    parseChatCompletionBody(await invoke(JSON.stringify(chatRequestOf(messages, model, params))));
}
