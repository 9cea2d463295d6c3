import { ConfigError } from '../../errors/errors.ts';
import { FeatureValueError } from '../errors.ts';
import { HeavyHitters, type HeavyHittersState } from '../stats/heavy-hitters.ts';
import { Moments, type MomentsState } from '../stats/moments.ts';
import { QuantileSketch, type QuantileSketchState } from '../stats/quantile-sketch.ts';
import { type FeatureDefinition, type FeatureSpec, featureName, featureSpecHash } from './feature-spec.ts';
import { type FeatureStats, FITTED_FEATURES_VERSION, type FittedFeatures } from './fitted-features.ts';
import { categoryValue, numericValue, type RawRecord } from './record-values.ts';

interface Tally {
  count: number;
  missing: number;
  invalid: number;
}

type NumericPartial = Tally & { kind: 'numeric'; moments: MomentsState; sketch: QuantileSketchState | null };
type OnehotPartial = Tally & { kind: 'onehot'; categories: HeavyHittersState };
type ObservedPartial = Tally & { kind: 'hash' | 'embedding' };
type FeaturePartial = NumericPartial | OnehotPartial | ObservedPartial;

/**
 * A unit's partial statistics, plain JSON: what a work unit stores for finalize to merge.
 */
export interface FeatureFitPartial {
  readonly version: typeof FITTED_FEATURES_VERSION;
  readonly specHash: string;
  readonly rows: number;
  readonly features: Record<string, FeaturePartial>;
}

/** Default Misra-Gries capacity for a one-hot feature: far more than topK, so the top K are exact in practice. */
const capacityFor = (topK: number, capacity: number | undefined) => capacity ?? Math.max(1000, 20 * topK);

/** Whether a numeric feature needs quantiles (and so a sketch). */
const needsQuantiles = (feature: FeatureDefinition) =>
  feature.type === 'numeric' && (feature.transform === 'robust' || feature.impute === 'median');

class FeatureAccumulator {
  readonly tally: Tally = { count: 0, missing: 0, invalid: 0 };
  readonly moments: Moments | null;
  readonly sketch: QuantileSketch | null;
  readonly categories: HeavyHitters | null;

  constructor(
    readonly feature: FeatureDefinition,
    quantileAccuracy: number,
  ) {
    this.moments = feature.type === 'numeric' ? new Moments() : null;
    this.sketch = needsQuantiles(feature)
      ? new QuantileSketch({ relativeAccuracy: quantileAccuracy, maxBins: 8192 })
      : null;
    this.categories =
      feature.type === 'onehot' ? new HeavyHitters(capacityFor(feature.topK, feature.capacity)) : null;
  }

  observe(record: RawRecord): void {
    const { feature, tally } = this;
    try {
      if (feature.type === 'numeric') {
        const x = numericValue(record, feature.column);
        if (Number.isNaN(x)) tally.missing += 1;
        else {
          tally.count += 1;
          this.moments!.add(x);
          this.sketch?.add(x);
        }
      } else {
        const category = categoryValue(record, feature.column);
        if (category === undefined) tally.missing += 1;
        else {
          tally.count += 1;
          this.categories?.add(category);
        }
      }
    } catch (error) {
      // The record will be rejected when transformed; fitting just leaves it out.
      if (error instanceof FeatureValueError) tally.invalid += 1;
      else throw error;
    }
  }

  merge(partial: FeaturePartial): void {
    const kind = this.feature.type;
    if (partial.kind !== kind) {
      throw new ConfigError(
        `feature "${featureName(this.feature)}": cannot merge ${partial.kind} statistics into ${kind}`,
      );
    }
    this.tally.count += partial.count;
    this.tally.missing += partial.missing;
    this.tally.invalid += partial.invalid;
    if (partial.kind === 'numeric') {
      this.moments!.merge(partial.moments);
      if (this.sketch && partial.sketch) this.sketch.merge(partial.sketch);
    } else if (partial.kind === 'onehot') this.categories!.merge(partial.categories);
  }

  toJSON(): FeaturePartial {
    const { feature, tally } = this;
    if (feature.type === 'numeric') {
      return {
        kind: 'numeric',
        ...tally,
        moments: this.moments!.toJSON(),
        sketch: this.sketch?.toJSON() ?? null,
      };
    }
    if (feature.type === 'onehot') return { kind: 'onehot', ...tally, categories: this.categories!.toJSON() };
    return { kind: feature.type, ...tally };
  }

  finish(): FeatureStats {
    const { feature, tally } = this;
    if (feature.type === 'numeric') {
      const m = this.moments!;
      const q = (p: number) => (this.sketch && this.sketch.count > 0 ? this.sketch.quantile(p) : null);
      return {
        kind: 'numeric',
        ...tally,
        mean: m.mean,
        std: m.std,
        min: m.min,
        max: m.max,
        median: q(0.5),
        q1: q(0.25),
        q3: q(0.75),
      };
    }
    if (feature.type === 'onehot') {
      const top = this.categories!.top(feature.topK, feature.minCount);
      return {
        kind: 'onehot',
        ...tally,
        categories: top.map(([category]) => category),
        counts: top.map(([, count]) => count),
        maxUndercount: this.categories!.maxUndercount,
      };
    }
    return { kind: feature.type, ...tally };
  }
}

/**
 * Fits a feature spec's statistics in one pass that merges across units: each unit
 * observes its records and stores `toJSON()`; finalize merges the partials (in any
 * order) and calls `finish()` for the versioned artifact. Numeric columns keep Welford
 * moments (mean, variance, min, max) and, where the spec needs quantiles, a mergeable
 * log-histogram sketch; one-hot columns keep Misra-Gries category counts.
 */
export class FeatureStatsAccumulator {
  readonly specHash: string;
  rows = 0;
  private readonly features: FeatureAccumulator[];

  constructor(readonly spec: FeatureSpec) {
    this.specHash = featureSpecHash(spec);
    this.features = spec.features.map((feature) => new FeatureAccumulator(feature, spec.quantileAccuracy));
  }

  /** Counts one record. Values that do not parse are counted as invalid, not thrown. */
  observe(record: RawRecord): void {
    this.rows += 1;
    for (const feature of this.features) feature.observe(record);
  }

  /** Folds another unit's partial statistics in; both must be for the same spec. */
  merge(other: FeatureStatsAccumulator | FeatureFitPartial): this {
    const partial = other instanceof FeatureStatsAccumulator ? other.toJSON() : other;
    if (partial.version !== FITTED_FEATURES_VERSION || partial.specHash !== this.specHash) {
      throw new ConfigError('feature statistics: a partial of another spec or version cannot be merged');
    }
    this.rows += partial.rows;
    for (const feature of this.features) {
      const name = featureName(feature.feature);
      const part = partial.features[name];
      if (!part) throw new ConfigError(`feature statistics: the partial has no statistics for "${name}"`);
      feature.merge(part);
    }
    return this;
  }

  toJSON(): FeatureFitPartial {
    return {
      version: FITTED_FEATURES_VERSION,
      specHash: this.specHash,
      rows: this.rows,
      features: Object.fromEntries(this.features.map((f) => [featureName(f.feature), f.toJSON()])),
    };
  }

  static fromJSON(spec: FeatureSpec, partial: FeatureFitPartial): FeatureStatsAccumulator {
    return new FeatureStatsAccumulator(spec).merge(partial);
  }

  /** The artifact to store and reuse: statistics by feature name, stamped with the spec's hash. */
  finish(fittedAt: Date = new Date()): FittedFeatures {
    return {
      version: FITTED_FEATURES_VERSION,
      fittedAt: fittedAt.toISOString(),
      specHash: this.specHash,
      rows: this.rows,
      stats: Object.fromEntries(this.features.map((f) => [featureName(f.feature), f.finish()])),
    };
  }
}
