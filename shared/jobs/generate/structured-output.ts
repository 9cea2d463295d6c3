import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ConfigError } from '../../errors/errors.ts';
import type { ChatAnswer, ChatMessage } from './chat-contract.ts';

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the
// module object, so take its `default` where present.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

/** At most this many validation errors are quoted (to the model and in `rejects`). */
const MAX_QUOTED_ERRORS = 5;

/** The result of checking one answer against `output.jsonSchema`. */
export type CheckedAnswer =
  | { readonly ok: true; readonly value: unknown; readonly json: string }
  | { readonly ok: false; readonly error: string };

/** `output.jsonSchema` compiled once per pipeline. */
export interface OutputSchema {
  /** The schema as configured, quoted in repair messages. */
  readonly schema: Readonly<Record<string, unknown>>;
  check(answer: string): CheckedAnswer;
}

/**
 * Compiles `output.jsonSchema` for `pipeline` with Ajv in strict mode (unknown keywords and
 * ambiguous schemas are errors) plus the standard formats. Draft-07 keywords. A schema Ajv
 * refuses is a {@link ConfigError} in one line: `pipeline "triage": output.jsonSchema: ...`.
 */
export function compileOutputSchema(
  pipeline: string,
  schema: Readonly<Record<string, unknown>>,
): OutputSchema {
  const ajv = addFormats(new Ajv({ strict: true, allErrors: true }));
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`pipeline "${pipeline}": output.jsonSchema: ${message.split('\n')[0] ?? message}`, {
      cause: error,
    });
  }
  return {
    schema,
    check(answer) {
      const text = stripJsonFence(answer);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        return { ok: false, error: `answer is not JSON (${reason})` };
      }
      if (validate(value)) return { ok: true, value, json: JSON.stringify(value) };
      return { ok: false, error: describeValidationErrors(validate.errors ?? []) };
    },
  };
}

/**
 * The JSON inside a Markdown code fence (```json ... ``` or ``` ... ```) when the whole
 * answer is one fenced block, otherwise the trimmed answer. Models add fences even when
 * asked not to; the content is still the answer.
 */
export function stripJsonFence(answer: string): string {
  const trimmed = answer.trim();
  const fenced = /^```(?:json|JSON)?[ \t]*\r?\n([\s\S]*?)\r?\n?```$/.exec(trimmed);
  return fenced ? fenced[1]!.trim() : trimmed;
}

/** Ajv errors as `/priority: must be equal to one of the allowed values (low, high); ...`. */
export function describeValidationErrors(errors: readonly ErrorObject[]): string {
  const lines = errors.slice(0, MAX_QUOTED_ERRORS).map((e) => {
    const where = e.instancePath === '' ? '(root)' : e.instancePath;
    return `${where}: ${e.message ?? e.keyword}${detail(e)}`;
  });
  const more = errors.length - MAX_QUOTED_ERRORS;
  if (more > 0) lines.push(`and ${more} more`);
  return lines.join('; ');
}

function detail(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    return ` (${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')})`;
  }
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    return ` ("${params.additionalProperty}")`;
  }
  if (e.keyword === 'const' && 'allowedValue' in params) {
    return ` (${JSON.stringify(params.allowedValue)})`;
  }
  return '';
}

/** The follow-up user message that asks for a corrected answer, quoting what was wrong. */
export function repairMessage(error: string, schema: Readonly<Record<string, unknown>>): ChatMessage {
  return {
    role: 'user',
    content:
      `Your previous answer was not valid: ${error}.\n` +
      'Reply again with only a JSON value that matches this JSON Schema, with no other text:\n' +
      JSON.stringify(schema),
  };
}

/** One call to the model; the endpoint adapter (SageMaker, HTTP, local backend) provides it. */
export type ChatCall = (messages: readonly ChatMessage[]) => Promise<ChatAnswer>;

interface Totals {
  /** Calls made: 1 + repairs. */
  readonly attempts: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly finishReason: string | null;
}

/** What one record ends with: an answer for the table, or a reject reason. */
export type GenerationOutcome =
  | (Totals & { readonly ok: true; readonly output: string; readonly outputJson: string | null })
  | (Totals & { readonly ok: false; readonly reason: string; readonly lastOutput: string });

/**
 * Asks `call` once and, with a schema, repairs an invalid answer up to `maxRepairs` times:
 * each repair sends the conversation so far plus the invalid answer and a
 * {@link repairMessage}. Without a schema the first answer is the output and
 * `outputJson` is null. Tokens are summed over every attempt (all were paid for).
 * Endpoint errors from `call` propagate: they are the endpoint client's to retry.
 */
export async function generateWithRepairs(
  call: ChatCall,
  messages: readonly ChatMessage[],
  schema: OutputSchema | undefined,
  maxRepairs: number,
): Promise<GenerationOutcome> {
  const conversation: ChatMessage[] = [...messages];
  let attempts = 0;
  let promptTokens = 0;
  let completionTokens = 0;
  for (;;) {
    const answer = await call(conversation);
    attempts += 1;
    promptTokens += answer.usage?.promptTokens ?? 0;
    completionTokens += answer.usage?.completionTokens ?? 0;
    const totals = { attempts, promptTokens, completionTokens, finishReason: answer.finishReason };
    if (!schema) return { ok: true, output: answer.content, outputJson: null, ...totals };

    const checked = schema.check(answer.content);
    if (checked.ok) return { ok: true, output: answer.content, outputJson: checked.json, ...totals };
    const error =
      answer.finishReason === 'length' ? `answer cut at max_tokens; ${checked.error}` : checked.error;
    if (attempts > maxRepairs) {
      return {
        ok: false,
        reason: `invalid JSON output after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${error}`,
        lastOutput: answer.content,
        ...totals,
      };
    }
    conversation.push({ role: 'assistant', content: answer.content }, repairMessage(error, schema.schema));
  }
}
