import { z } from 'zod';
import { ConfigError } from '../errors/errors.ts';
import { generatePipelineFields } from '../jobs/generate/generate-config.ts';
import {
  evaluationSchema,
  neighboursSchema,
  recommendInputFields,
  recommendOutputSchema,
  shardingSchema,
} from '../jobs/recommend/recommend-config.ts';
import { featureSpecSchema } from '../scoring/features/feature-spec.ts';
import { explainSchema, scoreOutputIssue, scoresOutputSchema } from '../scoring/score-output-config.ts';
import { capacitySchema } from './capacity-config.ts';
import { configErrorOf } from './config-issue.ts';

const inputSchema = z
  .strictObject({
    /** Input format; `auto` picks by file extension (.jsonl/.ndjson/.json, .csv, anything else = text). */
    format: z.enum(['auto', 'jsonl', 'csv', 'text', 'parquet']).default('auto'),
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
    /**
     * A gzip input that expands more than this many times (past its first MiB) is read no
     * further: the rest of it is one reject. gzip's own maximum is about 1,032; text
     * compresses 3 to 20 times. 100 is Apache POI's zip-bomb default (min inflate ratio 0.01).
     */
    maxDecompressionRatio: z.number().min(2).default(100),
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

const endpointNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, 'must be a valid SageMaker endpoint name');

const endpointSchema = z.strictObject({
  /** SageMaker endpoint name (deployed) and local model-server route. */
  name: endpointNameSchema,
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
  /** Most requests one worker keeps in flight; the adaptive limiter settles below it (docs/sizing.md). */
  concurrency: z.number().int().min(1).max(256).default(16),
  /** Requests in flight when a worker starts, before the limiter learns the endpoint's capacity. */
  initialConcurrency: z.number().int().min(1).max(256).default(4),
  maxRetries: z.number().int().min(0).max(20).default(6),
  timeoutMs: z.number().int().positive().default(60_000),
  /** Run-scoped GPU capacity (inference component scaled to 0 between runs). */
  capacity: capacitySchema,
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

/**
 * How a whole run is judged, whatever its kind (docs/decisions.md, "A run fails when its
 * rejects exceed a tolerated share").
 */
const runSchema = z
  .strictObject({
    /**
     * The share of the run's input records that may be rejected before the run ends
     * `failed` (its rejects and results are still written), like Step Functions Distributed
     * Map's `ToleratedFailurePercentage`. Exactly at the share is tolerated; 100 never fails
     * a run for its rejects; 0 fails it for one reject.
     */
    toleratedRejectPercent: z.number().min(0).max(100).default(10),
  })
  .prefault({});

/** Keys every pipeline has, whatever it does. */
const commonKeys = {
  $schema: z.string().optional(),
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and dashes'),
  description: z.string().optional(),
  input: inputSchema,
  planning: planningSchema,
  workers: workersSchema,
  run: runSchema,
  schedule: scheduleSchema.optional(),
};

const scoreModelSchema = z.strictObject({
  /**
   * SageMaker endpoint name (deployed) and local model-server route. Required where the
   * stack deploys an endpoint (`hosting` `serverless` or `instance`: synth refuses a
   * pipeline without it); optional for `in-worker` and local runs.
   * @default the pipeline's name, as the local model-server route
   */
  endpointName: endpointNameSchema.optional(),
  /**
   * Object key of the XGBoost JSON model in the bucket: the local server evaluates it;
   * deployed, SageMaker's built-in XGBoost container loads `modelDataKey`.
   */
  modelKey: z.string().min(1),
  /** Object key of the `model.tar.gz` the SageMaker XGBoost container loads. @default `<modelKey without .json>.tar.gz` */
  modelDataKey: z.string().min(1).optional(),
  /** Model id recorded with every score. @default the model key */
  modelId: z.string().min(1).optional(),
  instanceType: z
    .string()
    .regex(/^ml\./, 'must be a SageMaker instance type such as ml.m5.large')
    .default('ml.m5.large'),
  /** For `multi:softprob` models: the class whose probability is the `score` column. */
  scoreClass: z.number().int().min(0).default(0),
  /** Rows per `text/csv` request (requests also stay under SageMaker's 6 MB). */
  maxRowsPerRequest: z.number().int().min(1).max(100_000).default(2000),
  concurrency: z.number().int().min(1).max(256).default(4),
  maxRetries: z.number().int().min(0).max(20).default(6),
  timeoutMs: z.number().int().positive().default(60_000),
  /**
   * Where the model runs (docs/decisions.md, "Scoring runs in the worker by default"):
   * `in-worker`: the work Lambda evaluates the XGBoost JSON model itself, no endpoint;
   * `serverless`: SageMaker Serverless Inference (scales to zero by itself);
   * `instance`: a run-scoped inference component on `instanceType` (see `capacity`).
   */
  hosting: z.enum(['in-worker', 'serverless', 'instance']).default('in-worker'),
  /** SageMaker Serverless Inference settings (hosting `serverless`). */
  serverless: z
    .strictObject({
      /** 1024 to 6144 MB in 1 GB steps, as SageMaker allows. */
      memoryMiB: z
        .union([
          z.literal(1024),
          z.literal(2048),
          z.literal(3072),
          z.literal(4096),
          z.literal(5120),
          z.literal(6144),
        ])
        .default(2048),
      /** Concurrent invocations the serverless endpoint allows (1 to 200). */
      maxConcurrency: z.number().int().min(1).max(200).default(20),
    })
    .prefault({}),
  /** Run-scoped capacity (hosting `instance`). */
  capacity: capacitySchema,
});

const segmentsSchema = z
  .strictObject({
    /** Columns whose values name a segment; none = one segment for the whole run. */
    columns: z.array(z.string().min(1)).default([]),
    /** What counts as a positive for segment rates: a 0/1 outcome column, or a score threshold. */
    positive: z
      .union([z.strictObject({ column: z.string().min(1) }), z.strictObject({ threshold: z.number() })])
      .optional(),
    quantiles: z.array(z.number().gt(0).lt(1)).default([0.1, 0.5, 0.9]),
    /** Segments tracked per unit; the rest are counted under `__other__`. */
    maxSegments: z.number().int().min(1).max(1_000_000).default(10_000),
  })
  .prefault({});

export const scorePipelineConfigSchema = z
  .strictObject({
    ...commonKeys,
    kind: z.literal('score'),
    /**
     * Feature transforms (see docs/scoring.md). `"infer"` (or left out): one numeric column
     * per feature name of the model; `{"infer": true, "features": [...]}` lists only the
     * exceptions (transforms, encoders), which take the place of the columns they name.
     */
    featureSpec: z.preprocess(
      (raw) => (raw === undefined || raw === 'infer' ? { infer: true, features: [] } : raw),
      featureSpecSchema,
    ),
    /**
     * Where fitted feature statistics live; reused by later runs unless `refit`. Read and
     * written only when a transform needs statistics (standardize, minmax, robust, impute
     * mean or median, onehot); then the run fits them in its first stage.
     * @default key `models/<name>/feature-stats.json`
     */
    featureStats: z
      .strictObject({ key: z.string().min(1).optional(), refit: z.boolean().default(false) })
      .prefault({}),
    model: scoreModelSchema,
    segments: segmentsSchema,
    /** Reason codes per row (docs/reason-codes.md): `topK` input columns by |contribution|. */
    explain: explainSchema.optional(),
    output: scoresOutputSchema,
  })
  .superRefine((config, ctx) => {
    const issue = scoreOutputIssue(config);
    if (issue) ctx.addIssue({ code: 'custom', ...issue });
  })
  .transform((config) => ({
    ...config,
    featureStats: {
      ...config.featureStats,
      key: config.featureStats.key ?? `models/${config.name}/feature-stats.json`,
    },
  }));

export const embedPipelineConfigSchema = z
  .strictObject({
    ...commonKeys,
    kind: z.literal('embed'),
    chunking: chunkingSchema,
    batching: batchingSchema,
    endpoint: endpointSchema,
    incremental: z
      .strictObject({
        /** Skip chunks whose fingerprint is unchanged since they were last embedded (point lookups by chunk id). */
        enabled: z.boolean().default(true),
      })
      .prefault({}),
    output: z.strictObject({ table: z.literal('embeddings').default('embeddings') }).prefault({}),
  })
  .refine((c) => c.chunking.maxTokens <= c.endpoint.maxInputTokens, {
    message: 'must not exceed endpoint.maxInputTokens, the longest input the model accepts',
    path: ['chunking', 'maxTokens'],
  })
  .refine((c) => c.endpoint.initialConcurrency <= c.endpoint.concurrency, {
    message: 'must not exceed endpoint.concurrency, the most requests in flight',
    path: ['endpoint', 'initialConcurrency'],
  });

/** User-based collaborative filtering (docs/recommendations.md, the Recommendations contract). */
export const recommendPipelineConfigSchema = z
  .strictObject({
    ...commonKeys,
    kind: z.literal('recommend'),
    /** The common input keys plus the interaction fields (`userField`, `itemField`, ...). */
    input: inputSchema.unwrap().extend(recommendInputFields).prefault({}),
    neighbours: neighboursSchema,
    output: recommendOutputSchema,
    evaluation: evaluationSchema,
    sharding: shardingSchema,
  })
  .refine((c) => c.input.format !== 'text', {
    message: 'text has no fields to read interactions from: use csv, jsonl or parquet',
    path: ['input', 'format'],
  });

/** Batch LLM generation (docs/generate.md, the Generations contract). */
export const generatePipelineConfigSchema = z.strictObject({ ...commonKeys, ...generatePipelineFields });

export const pipelineConfigSchema = z.discriminatedUnion('kind', [
  embedPipelineConfigSchema,
  scorePipelineConfigSchema,
  recommendPipelineConfigSchema,
  generatePipelineConfigSchema,
]);

export type CapacityConfig = z.infer<typeof capacitySchema>;
export type EmbedPipelineConfig = z.infer<typeof embedPipelineConfigSchema>;
export type ScorePipelineConfig = z.infer<typeof scorePipelineConfigSchema>;
export type RecommendPipelineConfig = z.infer<typeof recommendPipelineConfigSchema>;
export type GeneratePipelineConfig = z.infer<typeof generatePipelineConfigSchema>;
export type PipelineConfig =
  | EmbedPipelineConfig
  | ScorePipelineConfig
  | RecommendPipelineConfig
  | GeneratePipelineConfig;
export type EmbedPipelineConfigInput = z.input<typeof embedPipelineConfigSchema>;
/** Input shape of an embedding pipeline config (the common case in tests and examples). */
export type PipelineConfigInput = EmbedPipelineConfigInput;

/** Narrows a config to an embedding pipeline, with a one-line error naming the pipeline otherwise. */
export function asEmbedPipeline(config: PipelineConfig): EmbedPipelineConfig {
  if (config.kind !== 'embed')
    throw new ConfigError(`pipeline ${config.name} is a ${config.kind} pipeline, not an embed pipeline`);
  return config;
}

/** Validates a config that must be an embedding pipeline. */
export function parseEmbedPipelineConfig(raw: unknown, source = 'pipeline'): EmbedPipelineConfig {
  return asEmbedPipeline(parsePipelineConfig(raw, source));
}

/**
 * The endpoint a score pipeline's model is called at: `model.endpointName`, else (local runs
 * and in-worker pipelines, where no endpoint is deployed) the pipeline's name as the local
 * model-server route. Synth refuses a deployed endpoint without a name (infra/deployment-settings.ts).
 */
export function scoringEndpointNameOf(config: ScorePipelineConfig): string {
  return config.model.endpointName ?? config.name;
}

/** The SageMaker endpoint a pipeline calls. */
export function endpointNameOf(config: PipelineConfig): string | undefined {
  if (config.kind === 'embed') return config.endpoint.name;
  return config.kind === 'score' ? scoringEndpointNameOf(config) : undefined;
}

/**
 * Validates a parsed pipeline config. Unknown or wrong keys fail with one line that
 * names the key path, e.g. `pipeline docs: chunking.maxTokenz: unknown key`.
 */
export function parsePipelineConfig(raw: unknown, source = 'pipeline'): PipelineConfig {
  const result = pipelineConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  throw configErrorOf(result.error, source);
}
