import { z } from 'zod';
import { configErrorOf } from '../../config/config-issue.ts';
import type { GenerationParams } from './chat-contract.ts';
import { compilePromptTemplate, type PromptTemplate } from './prompt-template.ts';
import { compileOutputSchema, type OutputSchema } from './structured-output.ts';

/**
 * The `generate` part of a pipeline config (see docs/generate.md and the Generations
 * contract in the design). The engine's common keys (`planning`, `workers`, `schedule`)
 * and the input reader's keys are added when the kind is registered; this schema holds
 * what only this kind reads.
 */
export const promptSchema = z.strictObject({
  /** Liquid template of the system message; absent = no system message. */
  system: z.string().min(1).optional(),
  /** Liquid template of the user message; record fields are its variables. */
  user: z.string().min(1),
});

export const generationParamsSchema = z
  .strictObject({
    /** Upper bound on completion tokens; also sizes the per-request timeout. @default 512 */
    maxTokens: z.number().int().min(1).max(131_072).default(512),
    /** 0 = greedy, the repeatable choice for labelling and extraction. @default 0 */
    temperature: z.number().min(0).max(2).default(0),
    /** @default 1 */
    topP: z.number().gt(0).max(1).default(1),
    /** Stop sequences (OpenAI allows up to 4). @default [] */
    stop: z.array(z.string().min(1)).max(4).default([]),
    /** Sampling seed, where the server honours it. */
    seed: z.number().int().min(0).optional(),
  })
  .prefault({});

export const generateOutputSchema = z
  .strictObject({
    table: z.literal('generations').default('generations'),
    /** JSON Schema (draft-07) every answer must match; absent = free text, `output_json` null. */
    jsonSchema: z.record(z.string(), z.unknown()).optional(),
    /** Repair requests after an invalid answer before the record is rejected. @default 2 */
    maxRepairs: z.number().int().min(0).max(10).default(2),
  })
  .prefault({});

export const generateSettingsSchema = z.strictObject({
  kind: z.literal('generate'),
  /** Model id sent as `model` (the served model name on vLLM/Ollama; TGI ignores it). */
  model: z.string().min(1),
  prompt: promptSchema,
  generation: generationParamsSchema,
  output: generateOutputSchema,
});

export type GenerateSettings = z.infer<typeof generateSettingsSchema>;

/** Settings with their templates and output schema compiled once, at config load. */
export interface GenerateJob {
  readonly pipeline: string;
  readonly settings: GenerateSettings;
  readonly params: GenerationParams;
  readonly template: PromptTemplate;
  /** Undefined without `output.jsonSchema`. */
  readonly outputSchema: OutputSchema | undefined;
}

/**
 * Validates the kind's part of `pipeline`'s config (read from `source`) and compiles it.
 * Every problem is a one-line ConfigError naming the file or pipeline and the key.
 */
export function loadGenerateJob(pipeline: string, raw: unknown, source: string): GenerateJob {
  const parsed = generateSettingsSchema.safeParse(raw);
  if (!parsed.success) throw configErrorOf(parsed.error, source);
  const settings = parsed.data;
  return {
    pipeline,
    settings,
    params: settings.generation,
    template: compilePromptTemplate(pipeline, settings.prompt),
    outputSchema: settings.output.jsonSchema
      ? compileOutputSchema(pipeline, settings.output.jsonSchema)
      : undefined,
  };
}
