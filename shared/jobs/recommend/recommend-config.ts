import { z } from 'zod';
import { configErrorOf } from '../../config/config-issue.ts';

/**
 * The `recommend` part of a pipeline config (see docs/recommendations.md and the
 * Recommendations contract in the design). The engine's common keys (`planning`,
 * `workers`, `schedule`) are added when the kind is registered; this schema holds what
 * only this kind reads.
 */
/** The interaction fields a recommend pipeline's `input` has besides the common input keys. */
export const recommendInputFields = {
  /** @default 'user_id' */
  userField: z.string().min(1).default('user_id'),
  /** @default 'item_id' */
  itemField: z.string().min(1).default('item_id'),
  /** Absent = implicit feedback: every interaction has value 1. */
  valueField: z.string().min(1).optional(),
  /** Optional; ISO 8601 or epoch seconds. Orders duplicates and the evaluation holdout. */
  timestampField: z.string().min(1).optional(),
};

export const recommendInputSchema = z
  .strictObject({
    format: z.enum(['auto', 'jsonl', 'csv', 'parquet']).default('auto'),
    ...recommendInputFields,
  })
  .prefault({});

export const neighboursSchema = z
  .strictObject({
    /** Defaults to `pearson` for explicit feedback, `cosine` for implicit. */
    similarity: z.enum(['cosine', 'pearson']).optional(),
    /** @default 40 */
    k: z.number().int().min(1).max(1000).default(40),
    /** λ in s' = s * n / (n + λ). @default 10 */
    shrinkage: z.number().min(0).default(10),
    /** @default 2 */
    minCommonItems: z.number().int().min(1).default(2),
    /** @default 2 */
    minNeighbours: z.number().int().min(1).default(2),
    /** Users an item contributes to similarities through (deterministic sample). @default 5000 */
    maxItemUsers: z.number().int().min(2).default(5000),
  })
  .prefault({});

export const recommendOutputSchema = z
  .strictObject({
    table: z.literal('recommendations').default('recommendations'),
    /** @default 20 */
    topN: z.number().int().min(1).max(1000).default(20),
  })
  .prefault({});

export const evaluationSchema = z
  .strictObject({
    /** Share of each eligible user's latest interactions held out; 0 = no evaluation. @default 0 */
    holdoutFraction: z.number().min(0).lt(1).default(0),
    /** Users with fewer interactions are not evaluated (all their interactions are kept). @default 5 */
    minUserItems: z.number().int().min(2).default(5),
  })
  .prefault({});

export const shardingSchema = z
  .strictObject({
    /** Estimated similarity work (postings touched) per user shard. @default 50,000,000 */
    targetUnitWork: z.number().int().positive().default(50_000_000),
    /** `greedy` balances best; `contiguous` keeps user ranges (smaller unit messages). @default 'greedy' */
    method: z.enum(['greedy', 'contiguous']).default('greedy'),
  })
  .prefault({});

export const recommendSettingsSchema = z.strictObject({
  kind: z.literal('recommend'),
  input: recommendInputSchema,
  neighbours: neighboursSchema,
  output: recommendOutputSchema,
  evaluation: evaluationSchema,
  sharding: shardingSchema,
});

export type RecommendSettings = z.infer<typeof recommendSettingsSchema>;
export type RecommendInputFields = z.infer<typeof recommendInputSchema>;
/** The field names an interaction is read by (a pipeline's `input` has more keys). */
export type InteractionFields = Pick<
  RecommendInputFields,
  'userField' | 'itemField' | 'valueField' | 'timestampField'
>;
export type NeighboursSettings = z.infer<typeof neighboursSchema>;
export type Similarity = 'cosine' | 'pearson';

/** The similarity a pipeline uses: the configured one, else pearson for explicit and cosine for implicit. */
export function similarityOf(settings: {
  readonly input: Pick<InteractionFields, 'valueField'>;
  readonly neighbours: Pick<NeighboursSettings, 'similarity'>;
}): Similarity {
  return settings.neighbours.similarity ?? (settings.input.valueField ? 'pearson' : 'cosine');
}

/** Validates the recommend keys; one line naming the key path on failure. */
export function parseRecommendSettings(raw: unknown, source = 'pipeline'): RecommendSettings {
  const result = recommendSettingsSchema.safeParse(raw);
  if (result.success) return result.data;
  throw configErrorOf(result.error, source);
}
