import { createHash } from 'node:crypto';
import { BackendInputError } from './backend.ts';

/**
 * NOT A LANGUAGE MODEL. A weight-free, deterministic chat backend for tests, benchmarks
 * and the two-command start of `generate` pipelines: it speaks the OpenAI-compatible chat
 * completions contract (messages in; `choices[0].message`, `finish_reason`, `usage` out)
 * and answers from fixed keyword rules over the prompt. It understands nothing.
 *
 * Rules (over the last user message, lower-cased):
 * - a prompt that mentions JSON is answered with a JSON object
 *   `{"priority", "category", "summary"}` (the sample ticket-triage schema): priority
 *   `high` for outage words (down, outage, urgent, crash, cannot, data loss), `low` for
 *   questions and thanks, else `normal`; category `billing`, `account`, `bug` or `other` by
 *   keywords; summary the first 12 words of the ticket text (after the first line break);
 * - any other prompt is answered with one line `priority: <p>; category: <c>`.
 *
 * Faults, so clients can be tested against what real servers do:
 * - `invalidJsonRate` (0..1): that share of JSON answers is broken (a missing brace), chosen
 *   by a hash of the request, so the same request always gets the same answer and a repair
 *   request (a different conversation) gets a fresh draw;
 * - `throttleRate` (0..1): that share of requests is refused as overloaded (spread evenly,
 *   so a retry is eventually served);
 * - an answer longer than `max_tokens` tokens is cut there, with `finish_reason: "length"`;
 * - markers in the last user message force a fault for that record: `[[invalid-json]]`
 *   (every answer to it broken), `[[long]]` (an answer of about 4,000 tokens, cut at
 *   `max_tokens`).
 *
 * "Tokens" are words and punctuation marks, a stand-in for a real tokenizer's counts.
 */
export interface RulesChatOptions {
  /** Share of JSON answers returned broken. @default 0 */
  readonly invalidJsonRate?: number;
  /** Share of requests refused as overloaded. @default 0 */
  readonly throttleRate?: number;
}

export const RULES_CHAT_MODEL = 'sluice-rules-chat-v1';

/** One chat completion request as the backend reads it (OpenAI-compatible). */
interface ChatRequestIn {
  readonly messages: readonly { readonly role: string; readonly content: string }[];
  readonly maxTokens: number;
}

/** What the model server needs of a chat backend. */
export interface ChatBackend {
  readonly kind: 'chat';
  readonly description: string;
  readonly model: string;
  /** The response body (JSON text), or undefined to throttle the request. */
  complete(body: string): string | undefined;
}

const TOKEN = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

/** Words and punctuation marks: the backend's stand-in for tokens. */
export function countTokens(text: string): number {
  return text.match(TOKEN)?.length ?? 0;
}

/** The first `max` tokens of `text`, with the text between them kept as it was. */
function cutAtTokens(text: string, max: number): string {
  let count = 0;
  for (const match of text.matchAll(TOKEN)) {
    count += 1;
    if (count > max) return text.slice(0, match.index);
  }
  return text;
}

function rate(name: string, value: number | undefined): number {
  const r = value ?? 0;
  if (!(r >= 0 && r <= 1)) throw new RangeError(`rules-chat: ${name} must be from 0 to 1, got ${value}`);
  return r;
}

/** A number in [0, 1) from the request text: the same request always draws the same. */
function draw(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

const HIGH = /\b(down|outage|urgent|crash(es|ed)?|cannot|can't|data loss|502|500)\b/;
const LOW = /\b(question|how do i|how can i|thanks|thank you|feature request|wondering)\b/;
const CATEGORIES: readonly (readonly [string, RegExp])[] = [
  ['billing', /\b(invoice|charged?|refund|payment|billing|card|price)\b/],
  ['account', /\b(password|login|log in|sign in|account|2fa|email address)\b/],
  ['bug', /\b(error|bug|broken|crash(es|ed)?|fails?|exception|down|outage|data loss|gone)\b/],
];

function triage(text: string): { priority: string; category: string } {
  const lower = text.toLowerCase();
  const priority = HIGH.test(lower) ? 'high' : LOW.test(lower) ? 'low' : 'normal';
  const category = CATEGORIES.find(([, re]) => re.test(lower))?.[0] ?? 'other';
  return { priority, category };
}

function parseRequest(body: string): ChatRequestIn {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new BackendInputError('request body is not valid JSON');
  }
  const request = parsed as { messages?: unknown; max_tokens?: unknown; stream?: unknown } | null;
  const messages = request?.messages;
  if (
    !Array.isArray(messages) ||
    messages.length === 0 ||
    !messages.every(
      (m) =>
        m !== null &&
        typeof m === 'object' &&
        typeof (m as { role?: unknown }).role === 'string' &&
        typeof (m as { content?: unknown }).content === 'string',
    )
  )
    throw new BackendInputError('"messages" must be a non-empty array of {role, content} strings');
  if (request?.stream === true) throw new BackendInputError('streaming is not supported by this backend');
  const maxTokens = request?.max_tokens ?? 512;
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1)
    throw new BackendInputError('"max_tokens" must be a positive integer');
  return { messages: messages as ChatRequestIn['messages'], maxTokens };
}

/** See the module comment: rules over the prompt, not a language model. */
export class RulesChatBackend implements ChatBackend {
  readonly kind = 'chat' as const;
  readonly model = RULES_CHAT_MODEL;
  readonly description: string;
  private readonly invalidJsonRate: number;
  private readonly throttleRate: number;
  /** Throttling spreads refusals evenly: one each time this reaches 1. */
  private throttleCredit = 0;
  private sequence = 0;

  constructor(options: RulesChatOptions = {}) {
    this.invalidJsonRate = rate('invalidJsonRate', options.invalidJsonRate);
    this.throttleRate = rate('throttleRate', options.throttleRate);
    const faults = [
      this.invalidJsonRate > 0 ? `${this.invalidJsonRate * 100}% of JSON answers broken` : '',
      this.throttleRate > 0 ? `${this.throttleRate * 100}% of requests throttled` : '',
    ].filter(Boolean);
    this.description = `rules-chat: NOT a language model; answers chat completions from keyword rules over the prompt (ticket triage), deterministic${faults.length ? `; ${faults.join(', ')}` : ''}`;
  }

  complete(body: string): string | undefined {
    const request = parseRequest(body);
    this.throttleCredit += this.throttleRate;
    if (this.throttleCredit >= 1) {
      this.throttleCredit -= 1;
      return undefined;
    }
    const last = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const prompt = request.messages.map((m) => m.content).join('\n');
    let content = this.answer(request.messages, last, body);
    let finishReason = 'stop';
    if (countTokens(content) > request.maxTokens) {
      content = cutAtTokens(content, request.maxTokens);
      finishReason = 'length';
    }
    this.sequence += 1;
    return JSON.stringify({
      id: `chatcmpl-sluice-${this.sequence}`,
      object: 'chat.completion',
      created: 0,
      model: this.model,
      system_fingerprint: 'sluice-rules-chat: not a language model',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finishReason }],
      usage: {
        prompt_tokens: countTokens(prompt),
        completion_tokens: countTokens(content),
        total_tokens: countTokens(prompt) + countTokens(content),
      },
    });
  }

  private answer(messages: ChatRequestIn['messages'], last: string, body: string): string {
    // A repair message quotes the schema; the ticket is in the first user message.
    const ticket = messages.find((m) => m.role === 'user')?.content ?? last;
    const wantsJson = messages.some((m) => /\bjson\b/i.test(m.content));
    const { priority, category } = triage(ticket);
    if (ticket.includes('[[long]]')) return `${'word '.repeat(4000)}`.trim();
    if (!wantsJson) return `priority: ${priority}; category: ${category}`;
    const text = ticket.split('\n').slice(1).join(' ').trim() || ticket;
    const summary = text.split(/\s+/).filter(Boolean).slice(0, 12).join(' ');
    const json = JSON.stringify({ priority, category, summary });
    const broken = ticket.includes('[[invalid-json]]') || draw(body) < this.invalidJsonRate;
    return broken ? json.slice(0, -1) : json;
  }
}
