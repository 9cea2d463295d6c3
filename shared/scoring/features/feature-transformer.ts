import { ConfigError } from '../../errors/errors.ts';
import { FeatureValueError } from '../errors.ts';
import type { EmbeddingTable } from './embedding-table.ts';
import {
  type EmbeddingFeature,
  type FeatureSpec,
  featureName,
  featureSpecHash,
  type HashFeature,
  type NumericFeature,
  type OnehotFeature,
} from './feature-spec.ts';
import type { FittedFeatures, NumericStats, OnehotStats } from './fitted-features.ts';
import { categoryValue, numericValue, type RawRecord } from './record-values.ts';
import { hashBucket } from './stable-hash.ts';

/** The one-hot column that every category outside the fitted top K (and a missing value) lights. */
export const UNKNOWN_CATEGORY = '__unknown__';

/** Writes one feature's columns for a record at `out[offset..]`. */
type ColumnWriter = (record: RawRecord, out: Float64Array, offset: number) => void;

interface CompiledFeature {
  readonly columns: string[];
  readonly write: ColumnWriter;
}

function compileNumeric(feature: NumericFeature, stats: NumericStats): CompiledFeature {
  const name = featureName(feature);
  const need = (value: number | null, what: string) => {
    if (value === null)
      throw new ConfigError(`feature "${name}": the fitted statistics have no ${what}; refit them`);
    return value;
  };
  let fill = Number.NaN;
  if (feature.impute === 'mean') fill = stats.mean;
  else if (feature.impute === 'median') fill = need(stats.median, 'median');
  else if (feature.impute === 'zero') fill = 0;
  else if (feature.impute === 'constant') fill = feature.constant!;

  let shift = 0;
  let scale = 1;
  if (feature.transform === 'standardize') {
    shift = stats.mean;
    scale = stats.std > 0 ? stats.std : 1;
  } else if (feature.transform === 'minmax') {
    shift = stats.min;
    scale = stats.max > stats.min ? stats.max - stats.min : 1;
  } else if (feature.transform === 'robust') {
    shift = need(stats.median, 'median');
    const iqr = need(stats.q3, 'third quartile') - need(stats.q1, 'first quartile');
    scale = iqr > 0 ? iqr : 1;
  }
  const log = feature.transform === 'log1p';
  return {
    columns: [name],
    write(record, out, offset) {
      let x = numericValue(record, feature.column);
      if (Number.isNaN(x)) x = fill;
      if (log) {
        if (x <= -1) throw new FeatureValueError(`column "${feature.column}": log1p is undefined for ${x}`);
        out[offset] = Math.log1p(x);
      } else out[offset] = (x - shift) / scale;
    },
  };
}

function compileOnehot(feature: OnehotFeature, stats: OnehotStats): CompiledFeature {
  const name = featureName(feature);
  const index = new Map(stats.categories.map((category, i) => [category, i]));
  const unknown = stats.categories.length;
  return {
    columns: [...stats.categories.map((c) => `${name}=${c}`), `${name}=${UNKNOWN_CATEGORY}`],
    write(record, out, offset) {
      out.fill(0, offset, offset + unknown + 1);
      const category = categoryValue(record, feature.column);
      const i = category === undefined ? undefined : index.get(category);
      out[offset + (i ?? unknown)] = 1;
    },
  };
}

function compileHash(feature: HashFeature): CompiledFeature {
  const name = featureName(feature);
  const { buckets, signed, seed } = feature;
  return {
    columns: Array.from({ length: buckets }, (_, i) => `${name}#${i}`),
    write(record, out, offset) {
      out.fill(0, offset, offset + buckets);
      const category = categoryValue(record, feature.column);
      if (category === undefined) return;
      const { bucket, sign } = hashBucket(category, buckets, seed);
      out[offset + bucket] = signed ? sign : 1;
    },
  };
}

function compileEmbedding(feature: EmbeddingFeature, table: EmbeddingTable | undefined): CompiledFeature {
  const name = featureName(feature);
  if (!table) throw new ConfigError(`feature "${name}": embedding table "${feature.table}" was not loaded`);
  for (const [category, vector] of table) {
    if (vector.length !== feature.dimension) {
      throw new ConfigError(
        `feature "${name}": table "${feature.table}" has a ${vector.length}-value vector for "${category}", dimension is ${feature.dimension}`,
      );
    }
  }
  const fallback =
    feature.unknown === 'zeros' ? new Float64Array(feature.dimension) : Float64Array.from(feature.unknown);
  return {
    columns: Array.from({ length: feature.dimension }, (_, i) => `${name}[${i}]`),
    write(record, out, offset) {
      const category = categoryValue(record, feature.column);
      out.set((category === undefined ? undefined : table.get(category)) ?? fallback, offset);
    },
  };
}

/** The embedding tables a spec needs, by their `table` key, for the caller to load. */
export function embeddingTableKeys(spec: FeatureSpec): string[] {
  return [...new Set(spec.features.flatMap((f) => (f.type === 'embedding' ? [f.table] : [])))];
}

/**
 * Turns raw records into numeric feature rows with fitted statistics: the same spec and
 * the same statistics always give the same columns in the same order (features in spec
 * order; one-hot columns in fitted frequency order with `__unknown__` last; hash buckets
 * `name#i`; embedding dimensions `name[i]`).
 */
export class FeatureTransformer {
  /** Output column names, in row order. */
  readonly columns: readonly string[];
  /** The record field each output column is read from (`region` for `region=north`), for reason codes. */
  readonly columnInputs: readonly string[];
  readonly width: number;
  private readonly writers: { write: ColumnWriter; offset: number }[];

  /**
   * @param tables embedding tables by the spec's `table` key (see {@link embeddingTableKeys}).
   * @throws ConfigError when the statistics belong to another spec or a table is missing.
   */
  constructor(
    spec: FeatureSpec,
    fitted: FittedFeatures,
    tables: ReadonlyMap<string, EmbeddingTable> = new Map(),
  ) {
    if (fitted.specHash !== featureSpecHash(spec)) {
      throw new ConfigError('feature statistics were fitted for another feature spec; refit them');
    }
    const columns: string[] = [];
    const columnInputs: string[] = [];
    this.writers = [];
    for (const feature of spec.features) {
      const stats = fitted.stats[featureName(feature)];
      let compiled: CompiledFeature;
      if (feature.type === 'numeric' && stats?.kind === 'numeric') compiled = compileNumeric(feature, stats);
      else if (feature.type === 'onehot' && stats?.kind === 'onehot')
        compiled = compileOnehot(feature, stats);
      else if (feature.type === 'hash') compiled = compileHash(feature);
      else if (feature.type === 'embedding') compiled = compileEmbedding(feature, tables.get(feature.table));
      else
        throw new ConfigError(`feature "${featureName(feature)}": no ${feature.type} statistics; refit them`);
      this.writers.push({ write: compiled.write, offset: columns.length });
      columns.push(...compiled.columns);
      for (const _ of compiled.columns) columnInputs.push(feature.column);
    }
    this.columns = columns;
    this.columnInputs = columnInputs;
    this.width = columns.length;
  }

  /**
   * Writes a record's features at `out[offset .. offset + width)`.
   * @throws FeatureValueError when a value cannot be a feature; reject the record with its message.
   */
  transformInto(record: RawRecord, out: Float64Array, offset = 0): void {
    for (const { write, offset: column } of this.writers) write(record, out, offset + column);
  }

  /** A record's features as a new row. */
  transform(record: RawRecord): Float64Array {
    const out = new Float64Array(this.width);
    this.transformInto(record, out);
    return out;
  }
}

/** A batch of records as one row-major matrix, and the records that could not be transformed. */
export interface TransformedBatch {
  /** Row-major, `transformer.width` values per row, rows of the accepted records in input order. */
  readonly data: Float64Array;
  readonly numRows: number;
  /** Input index of each row of `data`. */
  readonly rowIndex: Int32Array;
  /** Records refused, with the reason for the `rejects` table. */
  readonly rejected: { readonly index: number; readonly reason: string }[];
}

/**
 * Transforms a batch into one matrix ready for the model (or the text/csv request); a
 * record whose value cannot be a feature is listed in `rejected` with its reason and
 * the rest of the batch goes on.
 */
export function transformRecords(
  transformer: FeatureTransformer,
  records: readonly RawRecord[],
): TransformedBatch {
  const width = transformer.width;
  const data = new Float64Array(records.length * width);
  const rowIndex = new Int32Array(records.length);
  const rejected: { index: number; reason: string }[] = [];
  let numRows = 0;
  records.forEach((record, index) => {
    try {
      transformer.transformInto(record, data, numRows * width);
      rowIndex[numRows] = index;
      numRows += 1;
    } catch (error) {
      if (!(error instanceof FeatureValueError)) throw error;
      rejected.push({ index, reason: error.message });
    }
  });
  return {
    data: data.subarray(0, numRows * width),
    numRows,
    rowIndex: rowIndex.subarray(0, numRows),
    rejected,
  };
}
