import { z } from 'zod';
import { capacitySchema } from '../../config/capacity-config.ts';
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

/**
 * The LLM endpoint of a `generate` pipeline: a SageMaker endpoint (deployed; locally the
 * built-in rules-chat backend answers on its route), or `url`, an OpenAI-compatible server
 * (`sluice run --endpoint-url` sets it).
 */
export const generateEndpointSchema = z
  .strictObject({
    /** SageMaker endpoint name (deployed) and local model-server route. */
    name: z
      .string()
      .regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, 'must be a valid SageMaker endpoint name')
      .default('sluice-llm'),
    /**
     * An OpenAI-compatible server (vLLM, llama.cpp's server, Ollama): requests go to
     * `<url>/v1/chat/completions` over HTTP instead of SageMaker InvokeEndpoint.
     */
    url: z.url({ protocol: /^https?$/ }).optional(),
    /** SageMaker instance type for the deployed endpoint. */
    instanceType: z
      .string()
      .regex(/^ml\./, 'must be a SageMaker instance type such as ml.g5.2xlarge')
      .default('ml.g5.2xlarge'),
    /**
     * Most requests one worker keeps in flight. LLM servers batch continuously, so
     * throughput grows with requests in flight until their KV cache is full; the adaptive
     * limiter settles below this where latency or throttling says the server is full.
     */
    concurrency: z.number().int().min(1).max(1024).default(64),
    /** Requests in flight when a worker starts, before the limiter learns the server's capacity. */
    initialConcurrency: z.number().int().min(1).max(1024).default(8),
    maxRetries: z.number().int().min(0).max(20).default(6),
    /** Budget of one attempt. @default 30 s + 100 ms per `generation.maxTokens` (chatTimeoutMs) */
    timeoutMs: z.number().int().positive().optional(),
    /**
     * Longest prompt, in tokens after the model's chat template, the deployed server accepts
     * (TGI `MAX_INPUT_TOKENS`; `MAX_TOTAL_TOKENS` adds `generation.maxTokens`). A longer
     * prompt is refused by the server (a reject naming it), not truncated.
     */
    maxInputTokens: z.number().int().min(16).max(131_072).default(4096),
    /**
     * GPUs one copy of the model spans (tensor parallel, TGI `SM_NUM_GPUS`).
     * @default every GPU of `instanceType` (infra/images/gpu-instances.ts)
     */
    gpusPerCopy: z.number().int().min(1).max(8).optional(),
    /**
     * The model's size in billions of parameters (8.03 for Llama 3.1 8B), which the deploy
     * checks against the copy's GPU memory. @default the size infra/images/gpu-instances.ts
     * lists for `model`; a model it does not list must give it to be deployed.
     */
    modelParametersBillions: z.number().positive().max(2000).optional(),
    /**
     * Run-scoped capacity of the deployed endpoint (the model as a SageMaker inference
     * component scaled to 0 copies between runs); unused with `url`. Its
     * `workPerSecondPerCopy` counts the input's estimated tokens (`planning.charsPerToken`),
     * the unit cost plan cuts by, as for embedding.
     */
    capacity: capacitySchema,
  })
  .prefault({});

/**
 * The keys a `generate` pipeline has besides the engine's common ones, for
 * shared/config/pipeline-config.ts to spread beside them.
 */
export const generatePipelineFields = {
  ...generateSettingsSchema.shape,
  endpoint: generateEndpointSchema,
};

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

/** A parsed pipeline config with the kind's settings (a `generate` pipeline). */
export type GenerateSettingsOf = GenerateSettings & { readonly name: string };

/** The settings of a config already validated, compiled (templates, output schema); throws ConfigError. */
export function compileGenerateJob(config: GenerateSettingsOf): GenerateJob {
  const settings: GenerateSettings = {
    kind: 'generate',
    model: config.model,
    prompt: config.prompt,
    generation: config.generation,
    output: config.output,
  };
  return {
    pipeline: config.name,
    settings,
    params: settings.generation,
    template: compilePromptTemplate(config.name, settings.prompt),
    outputSchema: settings.output.jsonSchema
      ? compileOutputSchema(config.name, settings.output.jsonSchema)
      : undefined,
  };
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
