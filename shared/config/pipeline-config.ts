import { z } from 'zod';
import { ConfigError } from '../errors/errors.ts';

const inputSchema = z
  .strictObject({
    /** Input format; `auto` picks by file extension (.jsonl/.ndjson/.json, .csv, anything else = text). */
    format: z.enum(['auto', 'jsonl', 'csv', 'text']).default('auto'),
    idField: z.string().min(1).default('id'),
    textField: z.string().min(1).default('text'),
    /** Record fields copied to the output as extra string columns. */
    metadataFields: z.array(z.string().min(1)).default([]),
    /** Records larger than this are rejected rather than read into memory. */
    maxRecordBytes: z
      .number()
      .int()
      .positive()
      .default(1024 * 1024),
  })
  .prefault({});

const chunkingSchema = z
  .strictObject({
    maxTokens: z.number().int().min(8).max(8192).default(256),
    overlapTokens: z.number().int().min(0).default(32),
    /**
     * Exact token counts from the model's `tokenizer.json`, stored in the bucket under this
     * key (and its `tokenizer_config.json` under `configKey`). Without it, a conservative
     * estimate is used.
     */
    tokenizer: z.strictObject({ key: z.string().min(1), configKey: z.string().min(1).optional() }).optional(),
  })
  .prefault({})
  .refine((c) => c.overlapTokens < c.maxTokens, {
    message: 'overlapTokens must be smaller than maxTokens',
    path: ['overlapTokens'],
  });

const batchingSchema = z
  .strictObject({
    /** Padded tokens per request (longest input x batch size), TEI's max-batch-tokens default. */
    maxBatchTokens: z.number().int().positive().default(16384),
    /** Inputs per request, TEI's max-client-batch-size default. */
    maxBatchSize: z.number().int().positive().max(1024).default(32),
    /** Chunks sorted by length together before batches are cut. */
    sortWindow: z.number().int().positive().default(2048),
  })
  .prefault({});

const endpointSchema = z.strictObject({
  /** SageMaker endpoint name (deployed) and local model-server route. */
  name: z.string().regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, 'must be a valid SageMaker endpoint name'),
  /** Request/response shape: TEI's `{"inputs": [...]}` -> `[[...]]`. */
  contract: z.enum(['tei']).default('tei'),
  /** Model id recorded with every embedding and in content hashes. */
  model: z.string().min(1).default('sluice-hash-embed-v1'),
  dimension: z.number().int().min(2).max(8192).default(384),
  /** Longest input the model accepts, special tokens included (BERT-class models: 512). */
  maxInputTokens: z.number().int().min(8).max(32768).default(512),
  /** SageMaker instance type for the deployed endpoint. */
  instanceType: z
    .string()
    .regex(/^ml\./, 'must be a SageMaker instance type such as ml.g5.xlarge')
    .default('ml.g5.xlarge'),
  /** Concurrent requests one worker keeps in flight. */
  concurrency: z.number().int().min(1).max(256).default(4),
  maxRetries: z.number().int().min(0).max(20).default(6),
  timeoutMs: z.number().int().positive().default(60_000),
});

const planningSchema = z
  .strictObject({
    /** Estimated tokens one unit should hold; sized so a unit finishes well inside the worker time limit. */
    targetUnitTokens: z.number().int().positive().default(2_000_000),
    /** Characters per token assumed when estimating cost before reading a file. */
    charsPerToken: z.number().positive().default(4),
  })
  .prefault({});

const workersSchema = z
  .strictObject({
    /** Workers running at once (deployed: SQS event source maxConcurrency; local: in-process workers). */
    maxConcurrency: z.number().int().min(2).max(1000).default(8),
    timeoutSeconds: z.number().int().min(30).max(900).default(600),
    memoryMiB: z.number().int().min(256).max(10240).default(2048),
    /** Deliveries before a unit is dead-lettered. */
    maxReceiveCount: z.number().int().min(1).max(100).default(5),
  })
  .prefault({});

const scheduleSchema = z.strictObject({
  /** EventBridge Scheduler expression: `cron(...)` or `rate(...)`. */
  expression: z.string().regex(/^(cron|rate)\(.+\)$/, 'must be cron(...) or rate(...)'),
  /** Dataset prefix the scheduled run reads, e.g. `datasets/docs/`. */
  prefix: z.string().min(1),
  timezone: z.string().default('UTC'),
});

export const pipelineConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and dashes'),
    kind: z.literal('embed'),
    description: z.string().optional(),
    input: inputSchema,
    chunking: chunkingSchema,
    batching: batchingSchema,
    endpoint: endpointSchema,
    planning: planningSchema,
    workers: workersSchema,
    incremental: z
      .strictObject({
        /** Skip chunks whose fingerprint is unchanged since they were last embedded (point lookups by chunk id). */
        enabled: z.boolean().default(true),
      })
      .prefault({}),
    output: z.strictObject({ table: z.literal('embeddings').default('embeddings') }).prefault({}),
    schedule: scheduleSchema.optional(),
  })
  .refine((c) => c.chunking.maxTokens <= c.endpoint.maxInputTokens, {
    message: 'must not exceed endpoint.maxInputTokens, the longest input the model accepts',
    path: ['chunking', 'maxTokens'],
  });

export type PipelineConfig = z.infer<typeof pipelineConfigSchema>;
export type PipelineConfigInput = z.input<typeof pipelineConfigSchema>;

/**
 * Validates a parsed pipeline config. Unknown or wrong keys fail with one line that
 * names the key path, e.g. `pipeline docs: chunking.maxTokenz: unknown key`.
 */
export function parsePipelineConfig(raw: unknown, source = 'pipeline'): PipelineConfig {
  const result = pipelineConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  let path = issue.path.join('.');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...issue.path, issue.keys[0]].join('.');
    message = 'unknown key';
  }
  throw new ConfigError(`${source}: ${path || '(root)'}: ${message}`);
}
