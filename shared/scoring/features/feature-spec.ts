import { createHash } from 'node:crypto';
import { z } from 'zod';
import { configErrorOf } from '../../config/config-issue.ts';

/** The record field a feature reads and the name its output columns start with. */
const base = {
  /** Record field (JSONL key or CSV header) the feature reads. */
  column: z.string().min(1),
  /** Output name; defaults to `column`. Needed when two features read the same column. */
  name: z.string().min(1).optional(),
};

const numericFeatureSchema = z
  .strictObject({
    ...base,
    type: z.literal('numeric'),
    /**
     * `standardize` (x - mean) / std, `minmax` (x - min) / (max - min), `robust`
     * (x - median) / IQR, `log1p` ln(1 + x), `none` x as is (tree models need no scaling).
     */
    transform: z.enum(['none', 'standardize', 'minmax', 'robust', 'log1p']).default('none'),
    /**
     * What a missing value becomes before the transform: the fitted `mean` or `median`,
     * `zero`, a `constant`, or `keep` it missing (NaN, which XGBoost routes by each
     * split's default direction).
     */
    impute: z.enum(['keep', 'mean', 'median', 'zero', 'constant']).default('keep'),
    /** The value for `impute: "constant"`. */
    constant: z.number().optional(),
  })
  .refine((f) => (f.impute === 'constant') === (f.constant !== undefined), {
    message: 'constant is required with impute "constant" and only allowed with it',
    path: ['constant'],
  });

const onehotFeatureSchema = z.strictObject({
  ...base,
  type: z.literal('onehot'),
  /** The most frequent categories that get a column each; the rest share `<name>=__unknown__`. */
  topK: z.number().int().min(1).max(1000).default(20),
  /** Categories seen fewer times than this in the fitted data go to the unknown column. */
  minCount: z.number().int().min(1).default(1),
  /** Categories counted while fitting (Misra-Gries); bounds memory on high-cardinality columns. */
  capacity: z.number().int().min(1).max(1_000_000).optional(),
});

const hashFeatureSchema = z.strictObject({
  ...base,
  type: z.literal('hash'),
  /** Output columns; categories are hashed into them (MurmurHash3, UTF-8). */
  buckets: z
    .number()
    .int()
    .min(2)
    .max(2 ** 20),
  /** Add +1 or -1 (from another hash bit) instead of always +1, so collisions cancel on average. */
  signed: z.boolean().default(false),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .default(0),
});

const embeddingFeatureSchema = z.strictObject({
  ...base,
  type: z.literal('embedding'),
  /** Object key (S3 or the local bucket) of the lookup table: JSON `{"cat": [..]}` or CSV `cat,v1,..,vd`. */
  table: z.string().min(1),
  dimension: z.number().int().min(1).max(4096),
  /** Vector for categories the table lacks (and missing values): zeros or a given vector. */
  unknown: z.union([z.literal('zeros'), z.array(z.number())]).default('zeros'),
});

const featureSchema = z.discriminatedUnion('type', [
  numericFeatureSchema,
  onehotFeatureSchema,
  hashFeatureSchema,
  embeddingFeatureSchema,
]);

export const featureSpecSchema = z
  .strictObject({
    /**
     * Build a numeric column for each of the model's feature names (docs/scoring.md,
     * "Inferring the spec from the model"); `features` then lists only the exceptions
     * (transforms, encoders), which take the place of the columns they name.
     */
    infer: z.boolean().optional(),
    features: z.array(featureSchema),
    /** Relative accuracy of the quantile sketch behind `robust` and `impute: "median"`. */
    quantileAccuracy: z.number().min(1e-4).max(0.1).default(0.001),
  })
  .superRefine((spec, ctx) => {
    if (spec.features.length === 0 && spec.infer !== true) {
      ctx.addIssue({
        code: 'custom',
        path: ['features'],
        message:
          'lists no feature: list them, or set "infer": true to build them from the model\'s feature names',
      });
    }
    const seen = new Set<string>();
    spec.features.forEach((feature, i) => {
      const name = feature.name ?? feature.column;
      if (seen.has(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['features', i, 'name'],
          message: `duplicate feature name "${name}" (set "name" to tell them apart)`,
        });
      }
      seen.add(name);
      if (
        feature.type === 'embedding' &&
        Array.isArray(feature.unknown) &&
        feature.unknown.length !== feature.dimension
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['features', i, 'unknown'],
          message: `has ${feature.unknown.length} values, dimension is ${feature.dimension}`,
        });
      }
    });
  });

export type FeatureSpec = z.infer<typeof featureSpecSchema>;
export type FeatureSpecInput = z.input<typeof featureSpecSchema>;
export type FeatureDefinition = FeatureSpec['features'][number];
export type NumericFeature = Extract<FeatureDefinition, { type: 'numeric' }>;
export type OnehotFeature = Extract<FeatureDefinition, { type: 'onehot' }>;
export type HashFeature = Extract<FeatureDefinition, { type: 'hash' }>;
export type EmbeddingFeature = Extract<FeatureDefinition, { type: 'embedding' }>;

/** The output name of a feature: `name`, or its `column`. */
export const featureName = (feature: FeatureDefinition): string => feature.name ?? feature.column;

/**
 * Validates a feature spec. An unknown or wrong key fails with one line naming its path,
 * e.g. `features: features.1.bukets: unknown key`.
 */
export function parseFeatureSpec(raw: unknown, source = 'features'): FeatureSpec {
  const result = featureSpecSchema.safeParse(raw);
  if (result.success) return result.data;
  throw configErrorOf(result.error, source, (issue, path) =>
    issue.code === 'invalid_union' && path.startsWith('features.')
      ? 'must be one of numeric, onehot, hash, embedding'
      : undefined,
  );
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/**
 * sha256 of the validated spec (defaults filled, keys sorted): fitted statistics carry
 * it, so statistics fitted for one spec are never applied under another.
 */
export function featureSpecHash(spec: FeatureSpec): string {
  return `sha256:${createHash('sha256')
    .update(JSON.stringify(canonical(spec)))
    .digest('hex')}`;
}
