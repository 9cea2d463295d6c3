import { z } from 'zod';
import { ConfigError } from '../../errors/errors.ts';
import { type FeatureSpec, featureName, featureSpecHash } from './feature-spec.ts';

/** Version of the fitted-statistics artifact; bumped when its meaning changes. */
export const FITTED_FEATURES_VERSION = 1;

const numericStatsSchema = z.strictObject({
  kind: z.literal('numeric'),
  /** Values seen (not missing, not invalid). */
  count: z.number().int().min(0),
  missing: z.number().int().min(0),
  /** Values that did not parse as numbers; those records are rejected when transformed. */
  invalid: z.number().int().min(0),
  mean: z.number(),
  /** Population standard deviation. */
  std: z.number().min(0),
  min: z.number(),
  max: z.number(),
  /** Present when the transform or imputation needs it (robust, impute median). */
  median: z.number().nullable(),
  q1: z.number().nullable(),
  q3: z.number().nullable(),
});

const onehotStatsSchema = z.strictObject({
  kind: z.literal('onehot'),
  /** The categories that get a column, most frequent first. */
  categories: z.array(z.string()),
  counts: z.array(z.number().min(0)),
  count: z.number().int().min(0),
  missing: z.number().int().min(0),
  invalid: z.number().int().min(0),
  /** Bound on how far the counts may be under the truth (0 = exact). */
  maxUndercount: z.number().min(0),
});

const observedStatsSchema = z.strictObject({
  kind: z.enum(['hash', 'embedding']),
  count: z.number().int().min(0),
  missing: z.number().int().min(0),
  invalid: z.number().int().min(0),
});

export const fittedFeaturesSchema = z.strictObject({
  version: z.literal(FITTED_FEATURES_VERSION),
  fittedAt: z.string().datetime(),
  /** {@link featureSpecHash} of the spec these statistics belong to. */
  specHash: z.string(),
  /** Records the statistics were fitted on. */
  rows: z.number().int().min(0),
  stats: z.record(
    z.string(),
    z.discriminatedUnion('kind', [numericStatsSchema, onehotStatsSchema, observedStatsSchema]),
  ),
});

export type NumericStats = z.infer<typeof numericStatsSchema>;
export type OnehotStats = z.infer<typeof onehotStatsSchema>;
export type ObservedStats = z.infer<typeof observedStatsSchema>;
export type FeatureStats = NumericStats | OnehotStats | ObservedStats;
/** The versioned artifact of fitted statistics: `{version, fittedAt, specHash, rows, stats}` by feature name. */
export type FittedFeatures = z.infer<typeof fittedFeaturesSchema>;

/**
 * Reads a stored fitted-statistics artifact for `spec`. Fails with one line when it is
 * malformed, of another version, or fitted for another spec (then the fix is a refit).
 */
export function parseFittedFeatures(
  raw: unknown,
  spec: FeatureSpec,
  source = 'feature statistics',
): FittedFeatures {
  const result = fittedFeaturesSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(
      `${source}: ${issue.path.join('.') || '(root)'}: ${issue.message}; refit the statistics`,
    );
  }
  const fitted = result.data;
  const expected = featureSpecHash(spec);
  if (fitted.specHash !== expected) {
    throw new ConfigError(
      `${source}: fitted for another feature spec (${fitted.specHash.slice(0, 19)}, now ${expected.slice(0, 19)}); refit the statistics`,
    );
  }
  for (const feature of spec.features) {
    const stats = fitted.stats[featureName(feature)];
    const kind = feature.type === 'numeric' ? 'numeric' : feature.type;
    if (!stats || stats.kind !== kind) {
      throw new ConfigError(
        `${source}: no ${kind} statistics for feature "${featureName(feature)}"; refit the statistics`,
      );
    }
  }
  return fitted;
}

export type FitDecision =
  | { readonly action: 'reuse'; readonly fitted: FittedFeatures }
  | { readonly action: 'fit'; readonly reason: string };

/**
 * Whether a run reuses stored statistics or fits them again: it refits when asked to,
 * when none are stored, or when the stored ones do not belong to this spec (the reason
 * says which, for the run summary). Reusing is the default so that a nightly re-scoring
 * applies the same scaling as the run the model was validated on.
 */
export function decideFit(spec: FeatureSpec, stored: unknown, refit: boolean): FitDecision {
  if (refit) return { action: 'fit', reason: 'refit requested' };
  if (stored === undefined || stored === null) return { action: 'fit', reason: 'no stored statistics' };
  try {
    return { action: 'reuse', fitted: parseFittedFeatures(stored, spec) };
  } catch (error) {
    if (error instanceof ConfigError) return { action: 'fit', reason: error.message };
    throw error;
  }
}
