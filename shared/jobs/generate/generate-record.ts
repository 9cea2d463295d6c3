import type { RejectRow } from '../../domain/types.ts';
import { type ChatMessage, promptFingerprint } from './chat-contract.ts';
import type { GenerateJob } from './generate-config.ts';
import { type ChatCall, generateWithRepairs } from './structured-output.ts';

/** Longest excerpt of a rejected answer kept in `rejects` (characters). */
const MAX_EXCERPT_CHARS = 200;

/** A record read with `shape: 'row'` (every field), as the readers yield it. */
export interface GenerateInput {
  readonly id: string;
  readonly values: Readonly<Record<string, unknown>>;
  readonly metadata: Record<string, string | null>;
  readonly line: number;
  readonly byteOffset: number;
}

/**
 * One row of the `generations` table, less `run_id` and `pipeline` (the writer adds them
 * and the partition columns). See the Generations contract in the design.
 */
export interface GenerationRow {
  readonly record_id: string;
  readonly prompt_sha256: string;
  readonly model: string;
  readonly output: string;
  /** The parsed answer as JSON text; null without `output.jsonSchema`. */
  readonly output_json: string | null;
  readonly finish_reason: string | null;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly attempts: number;
  readonly source_key: string;
  readonly metadata: Record<string, string | null>;
}

/** Every record ends as exactly one of these. */
export type RecordOutcome =
  | { readonly kind: 'generated'; readonly row: GenerationRow }
  | {
      readonly kind: 'rejected';
      readonly reject: RejectRow;
      /** Calls made before the reject (0 when the prompt could not be rendered); they cost tokens. */
      readonly attempts: number;
      readonly promptTokens: number;
      readonly completionTokens: number;
    };

/** A record's prompt, rendered and fingerprinted, or the reason it cannot be asked. */
export type PreparedPrompt =
  | { readonly ok: true; readonly messages: ChatMessage[]; readonly promptSha256: string }
  | { readonly ok: false; readonly reason: string };

/** Renders the record's messages and fingerprints them (model and parameters included). */
export function preparePrompt(job: GenerateJob, record: GenerateInput): PreparedPrompt {
  const prompt = job.template.render(record.values);
  if (!prompt.ok) return prompt;
  return {
    ok: true,
    messages: prompt.messages,
    promptSha256: promptFingerprint(prompt.messages, job.settings.model, job.params),
  };
}

function rejectOf(record: GenerateInput, sourceKey: string, reason: string, excerpt: string): RejectRow {
  return {
    source_key: sourceKey,
    byte_offset: record.byteOffset,
    line: record.line,
    reason,
    excerpt: excerpt.slice(0, MAX_EXCERPT_CHARS),
  };
}

/** The outcome of a record whose prompt could not be rendered: a reject, no call made. */
export function unrenderedOutcome(record: GenerateInput, sourceKey: string, reason: string): RecordOutcome {
  return {
    kind: 'rejected',
    reject: rejectOf(record, sourceKey, reason, record.id),
    attempts: 0,
    promptTokens: 0,
    completionTokens: 0,
  };
}

/**
 * Asks a prepared prompt, repairing invalid JSON, and turns the answer into a table row or
 * a reject. Endpoint errors propagate to the unit (its retry policy decides).
 */
export async function answerPrompt(
  job: GenerateJob,
  call: ChatCall,
  record: GenerateInput,
  sourceKey: string,
  prompt: { readonly messages: readonly ChatMessage[]; readonly promptSha256: string },
): Promise<RecordOutcome> {
  const outcome = await generateWithRepairs(
    call,
    prompt.messages,
    job.outputSchema,
    job.settings.output.maxRepairs,
  );
  if (!outcome.ok) {
    return {
      kind: 'rejected',
      reject: rejectOf(record, sourceKey, outcome.reason, outcome.lastOutput),
      attempts: outcome.attempts,
      promptTokens: outcome.promptTokens,
      completionTokens: outcome.completionTokens,
    };
  }
  return {
    kind: 'generated',
    row: {
      record_id: record.id,
      prompt_sha256: prompt.promptSha256,
      model: job.settings.model,
      output: outcome.output,
      output_json: outcome.outputJson,
      finish_reason: outcome.finishReason,
      prompt_tokens: outcome.promptTokens,
      completion_tokens: outcome.completionTokens,
      attempts: outcome.attempts,
      source_key: sourceKey,
      metadata: record.metadata,
    },
  };
}

/**
 * (use case, per record) render the prompt -> fingerprint it -> ask, repairing invalid
 * JSON -> a table row or a reject. `call` is the endpoint adapter bound to the job's
 * model and parameters. Endpoint errors propagate to the unit, whose retry and
 * throttling policy decides; only what the record itself causes becomes a reject.
 */
export async function generateRecord(
  job: GenerateJob,
  call: ChatCall,
  record: GenerateInput,
  sourceKey: string,
): Promise<RecordOutcome> {
  const prompt = preparePrompt(job, record);
  if (!prompt.ok) return unrenderedOutcome(record, sourceKey, prompt.reason);
  return answerPrompt(job, call, record, sourceKey, prompt);
}
