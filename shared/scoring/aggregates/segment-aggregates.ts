import { Moments, type MomentsState } from '../stats/moments.ts';
import { QuantileSketch, type QuantileSketchState } from '../stats/quantile-sketch.ts';
import { type BetaPrior, type BetaPriorOptions, fitBetaPrior, rateMap, rateMle } from './beta-prior.ts';

/** A segment's identity: the values of the segment columns, null where missing. */
export type SegmentValues = readonly (string | null)[];

/** The segment that collects rows once a partial holds `maxSegments` distinct segments. */
export const OTHER_SEGMENT = '__other__';

/** Version of the serialised partial aggregates. */
export const SEGMENT_AGGREGATES_VERSION = 1;

/** One segment's mergeable partial aggregate, plain JSON. */
export interface SegmentPartial {
  readonly segment: (string | null)[];
  /** Rows in the segment. */
  readonly count: number;
  /** Moments of the score (rows with a finite score). */
  readonly score: MomentsState;
  readonly sketch: QuantileSketchState | null;
  /** Rows whose outcome is known (or every scored row, with a threshold). */
  readonly trials: number;
  readonly positives: number;
}

/** What a unit stores and finalize merges: every segment's partial for one run. */
export interface SegmentAggregatesState {
  readonly version: typeof SEGMENT_AGGREGATES_VERSION;
  readonly segmentColumns: string[];
  readonly segments: SegmentPartial[];
}

export interface SegmentAggregatorOptions {
  /** Record columns whose values make the segment key, in order. */
  readonly segmentColumns: readonly string[];
  /** Keep score quantiles (one sketch per segment); false saves memory on many segments. @default true */
  readonly quantiles?: boolean;
  /** Relative accuracy of the score quantiles. @default 0.01 */
  readonly relativeAccuracy?: number;
  /** Distinct segments one partial holds before the rest go to `__other__`. @default 10000 */
  readonly maxSegments?: number;
}

/** The key of a segment: its values as a JSON array, unambiguous whatever the values contain. */
export const segmentKey = (values: SegmentValues): string => JSON.stringify(values);

/** Reads a record's segment values: strings as they are, numbers and booleans as text, null when missing. */
export function segmentValuesOf(
  record: Readonly<Record<string, unknown>>,
  columns: readonly string[],
): SegmentValues {
  return columns.map((column) => {
    const raw = record[column];
    if (raw === undefined || raw === null || raw === '') return null;
    return typeof raw === 'string' ? raw : typeof raw === 'object' ? JSON.stringify(raw) : String(raw);
  });
}

/**
 * Salt of a unit for a hot segment: spreads one segment's partials over `buckets` storage
 * keys (`<segmentKey>#<salt>`) so units do not all update one item; finalize merges the
 * salted partials back by segment, so the salt never changes a result.
 */
export function segmentSalt(unitId: string, buckets: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < unitId.length; i += 1) h = Math.imul(h ^ unitId.charCodeAt(i), 0x01000193) >>> 0;
  return h % Math.max(1, buckets);
}

class SegmentAccumulator {
  count = 0;
  trials = 0;
  positives = 0;
  readonly score = new Moments();

  constructor(
    readonly segment: (string | null)[],
    readonly sketch: QuantileSketch | null,
  ) {}

  toJSON(): SegmentPartial {
    return {
      segment: this.segment,
      count: this.count,
      score: this.score.toJSON(),
      sketch: this.sketch?.toJSON() ?? null,
      trials: this.trials,
      positives: this.positives,
    };
  }
}

/**
 * Per-segment aggregates of scores, mergeable across units: count, mean and quantiles of
 * the score, and positives out of trials for a rate. Each unit adds its rows and stores
 * `toJSON()`; finalize merges the partials in any order (merging is associative and
 * commutative: counts add, moments merge by Chan's update, sketches add bins) and calls
 * {@link finalizeSegments}.
 */
export class SegmentAggregator {
  readonly segmentColumns: string[];
  private readonly quantiles: boolean;
  private readonly relativeAccuracy: number;
  private readonly maxSegments: number;
  private readonly segments = new Map<string, SegmentAccumulator>();

  constructor(options: SegmentAggregatorOptions) {
    this.segmentColumns = [...options.segmentColumns];
    this.quantiles = options.quantiles ?? true;
    this.relativeAccuracy = options.relativeAccuracy ?? 0.01;
    this.maxSegments = options.maxSegments ?? 10_000;
  }

  private segmentFor(values: SegmentValues): SegmentAccumulator {
    const key = segmentKey(values);
    let acc = this.segments.get(key);
    if (acc) return acc;
    if (this.segments.size >= this.maxSegments) {
      const other = this.segmentColumns.map(() => OTHER_SEGMENT);
      return this.segments.get(segmentKey(other)) ?? this.create(other);
    }
    acc = this.create([...values]);
    return acc;
  }

  private create(values: (string | null)[]): SegmentAccumulator {
    const acc = new SegmentAccumulator(
      values,
      this.quantiles ? new QuantileSketch({ relativeAccuracy: this.relativeAccuracy, maxBins: 1024 }) : null,
    );
    this.segments.set(segmentKey(values), acc);
    return acc;
  }

  /**
   * Adds one scored row.
   * @param positive the row's binary outcome (or `score >= threshold`); undefined when unknown, which leaves it out of the rate.
   */
  add(values: SegmentValues, score: number, positive?: boolean): void {
    if (values.length !== this.segmentColumns.length) {
      throw new RangeError(`a segment has ${this.segmentColumns.length} values, got ${values.length}`);
    }
    const acc = this.segmentFor(values);
    acc.count += 1;
    if (Number.isFinite(score)) {
      acc.score.add(score);
      acc.sketch?.add(score);
    }
    if (positive !== undefined) {
      acc.trials += 1;
      if (positive) acc.positives += 1;
    }
  }

  /** Folds another partial in (another unit's, or a salted part of a hot segment). */
  merge(other: SegmentAggregator | SegmentAggregatesState): this {
    const state = other instanceof SegmentAggregator ? other.toJSON() : other;
    if (
      state.version !== SEGMENT_AGGREGATES_VERSION ||
      segmentKey(state.segmentColumns) !== segmentKey(this.segmentColumns)
    ) {
      throw new RangeError(
        `cannot merge aggregates over ${JSON.stringify(state.segmentColumns)} into ${JSON.stringify(this.segmentColumns)}`,
      );
    }
    for (const part of state.segments) {
      const acc = this.segments.get(segmentKey(part.segment)) ?? this.create([...part.segment]);
      acc.count += part.count;
      acc.trials += part.trials;
      acc.positives += part.positives;
      acc.score.merge(part.score);
      if (acc.sketch && part.sketch) acc.sketch.merge(part.sketch);
    }
    return this;
  }

  get size(): number {
    return this.segments.size;
  }

  /** Segments sorted by key, so the same data always serialises the same way. */
  toJSON(): SegmentAggregatesState {
    return {
      version: SEGMENT_AGGREGATES_VERSION,
      segmentColumns: [...this.segmentColumns],
      segments: [...this.segments.entries()]
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([, acc]) => acc.toJSON()),
    };
  }

  static fromJSON(
    state: SegmentAggregatesState,
    options: Omit<SegmentAggregatorOptions, 'segmentColumns'> = {},
  ) {
    return new SegmentAggregator({ ...options, segmentColumns: state.segmentColumns }).merge(state);
  }
}

/** One row of the `segment_stats` table. */
export interface SegmentStats {
  /** Segment column -> value (null where missing). */
  readonly segment: Record<string, string | null>;
  readonly key: string;
  readonly count: number;
  /** Mean score; null when no row had a finite score. */
  readonly scoreMean: number | null;
  /** Score quantiles by name (`p10`, `p50`, `p90` ...); empty without a sketch. */
  readonly scoreQuantiles: Record<string, number>;
  readonly trials: number;
  readonly positives: number;
  /** Maximum-likelihood rate k / n; null without trials. */
  readonly rateMle: number | null;
  /** Bayes (posterior mean) rate under the prior fitted to all segments; see {@link rateMap}. */
  readonly rateMap: number;
}

export interface FinalizeSegmentsOptions extends BetaPriorOptions {
  /** Quantiles to report. @default [0.1, 0.5, 0.9] */
  readonly quantiles?: readonly number[];
}

/** `0.5` -> `p50`, `0.999` -> `p99.9`. */
export const quantileName = (q: number): string => `p${Number((q * 100).toFixed(4))}`;

/**
 * Turns merged partials into per-segment statistics: the Beta prior is fitted once to
 * all segments' positives and trials (see {@link fitBetaPrior}), then each segment gets
 * its MLE rate and its shrunk ("MAP") rate, so a segment of 2 rows with 0 positives
 * reads as close to the pooled rate rather than 0%.
 */
export function finalizeSegments(
  aggregates: SegmentAggregator | SegmentAggregatesState,
  options: FinalizeSegmentsOptions = {},
): { prior: BetaPrior; segments: SegmentStats[] } {
  const state = aggregates instanceof SegmentAggregator ? aggregates.toJSON() : aggregates;
  const quantiles = options.quantiles ?? [0.1, 0.5, 0.9];
  const prior = fitBetaPrior(state.segments, options);
  const segments = state.segments.map((part): SegmentStats => {
    const sketch = part.sketch ? QuantileSketch.fromJSON(part.sketch) : null;
    const scoreQuantiles: Record<string, number> = {};
    if (sketch && sketch.count > 0)
      for (const q of quantiles) scoreQuantiles[quantileName(q)] = sketch.quantile(q);
    return {
      segment: Object.fromEntries(state.segmentColumns.map((column, i) => [column, part.segment[i] ?? null])),
      key: segmentKey(part.segment),
      count: part.count,
      scoreMean: part.score.count > 0 ? part.score.mean : null,
      scoreQuantiles,
      trials: part.trials,
      positives: part.positives,
      rateMle: rateMle(part),
      rateMap: rateMap(part, prior),
    };
  });
  return { prior, segments };
}

/**
 * A row's binary outcome for the rate: the outcome column when configured (1/0,
 * true/false, yes/no; undefined when missing or unreadable), otherwise
 * `score >= threshold` when a threshold is configured, otherwise undefined.
 */
export function positiveOf(
  record: Readonly<Record<string, unknown>>,
  score: number,
  options: { outcomeColumn?: string; threshold?: number },
): boolean | undefined {
  if (options.outcomeColumn !== undefined) {
    const raw = record[options.outcomeColumn];
    if (typeof raw === 'boolean') return raw;
    if (typeof raw === 'number') return raw === 1 ? true : raw === 0 ? false : undefined;
    if (typeof raw === 'string') {
      const text = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'y', 't'].includes(text)) return true;
      if (['0', 'false', 'no', 'n', 'f'].includes(text)) return false;
    }
    return undefined;
  }
  if (options.threshold !== undefined && Number.isFinite(score)) return score >= options.threshold;
  return undefined;
}
