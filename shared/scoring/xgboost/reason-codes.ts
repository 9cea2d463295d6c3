import { ConfigError } from '../../errors/errors.ts';
import { type FeatureSpec, featureName } from '../features/feature-spec.ts';
import type { FittedFeatures } from '../features/fitted-features.ts';

/**
 * Which input column (record field) each expanded model column comes from: a one-hot
 * feature's `name=category` columns, a hash feature's `name#i` buckets and an embedding's
 * `name[i]` dimensions all belong to the one field the feature reads.
 */
export interface InputColumnMap {
  /** Input columns, each once, in the order the spec first reads them. */
  readonly inputs: readonly string[];
  /** For each expanded column (model feature index), its index in `inputs`. */
  readonly inputOfColumn: Int32Array;
}

/** Expanded columns a feature writes: must agree with FeatureTransformer (a test holds them together). */
function expandedWidth(spec: FeatureSpec['features'][number], fitted: FittedFeatures): number {
  const name = featureName(spec);
  switch (spec.type) {
    case 'numeric':
      return 1;
    case 'onehot': {
      const stats = fitted.stats[name];
      if (stats?.kind !== 'onehot') {
        throw new ConfigError(`feature "${name}": no onehot statistics; refit them`);
      }
      // Every fitted category, then the shared unknown column.
      return stats.categories.length + 1;
    }
    case 'hash':
      return spec.buckets;
    case 'embedding':
      return spec.dimension;
  }
}

/**
 * Maps the expanded columns of `spec` (in FeatureTransformer's order: features in spec
 * order, each expanded in place) to the record fields they are read from. Two features
 * reading the same field (say a numeric and a one-hot view of it) map to the same input,
 * so their contributions are summed into one reason.
 */
export function inputColumnMap(spec: FeatureSpec, fitted: FittedFeatures): InputColumnMap {
  const inputs: string[] = [];
  const indexOf = new Map<string, number>();
  const inputOfColumn: number[] = [];
  for (const feature of spec.features) {
    let input = indexOf.get(feature.column);
    if (input === undefined) {
      input = inputs.length;
      indexOf.set(feature.column, input);
      inputs.push(feature.column);
    }
    for (let i = expandedWidth(feature, fitted); i > 0; i -= 1) inputOfColumn.push(input);
  }
  return { inputs, inputOfColumn: Int32Array.from(inputOfColumn) };
}

/**
 * The map of expanded columns given the record field each one reads, in column order
 * (`FeatureTransformer.columnInputs`): inputs in the order first read.
 */
export function columnMapOfInputs(columnInputs: readonly string[]): InputColumnMap {
  const inputs: string[] = [];
  const indexOf = new Map<string, number>();
  const inputOfColumn = Int32Array.from(columnInputs, (field) => {
    let input = indexOf.get(field);
    if (input === undefined) {
      input = inputs.length;
      indexOf.set(field, input);
      inputs.push(field);
    }
    return input;
  });
  return { inputs, inputOfColumn };
}

/** A map where every model column is its own input (a model scored on raw columns, no spec). */
export function identityColumnMap(names: readonly string[]): InputColumnMap {
  return { inputs: [...names], inputOfColumn: Int32Array.from(names, (_, i) => i) };
}

/** The input column an expanded column (model feature index) comes from. */
export function inputColumnOf(map: InputColumnMap, column: number): string {
  const input = map.inputOfColumn[column];
  if (input === undefined) {
    throw new RangeError(`column ${column} is outside the ${map.inputOfColumn.length} expanded columns`);
  }
  return map.inputs[input]!;
}

/**
 * Sums one row's per-column contributions into per-input contributions, so the reasons
 * name what the user sent (`region`, not `region=north`). The total is kept: per-input
 * contributions plus the bias still equal the margin. (It is the sum of the columns'
 * Shapley values, which differs from treating the field as one player only through
 * interactions between that field's own columns.)
 *
 * @param contribs at least `map.inputOfColumn.length` values (a bias after them is ignored).
 */
export function sumByInputColumn(
  contribs: ArrayLike<number>,
  map: InputColumnMap,
  out: Float64Array = new Float64Array(map.inputs.length),
): Float64Array {
  const columns = map.inputOfColumn;
  if (contribs.length < columns.length) {
    throw new RangeError(`${contribs.length} contributions for ${columns.length} expanded columns`);
  }
  out.fill(0, 0, map.inputs.length);
  for (let c = 0; c < columns.length; c += 1) out[columns[c]!]! += contribs[c]!;
  return out;
}

export interface RankedContribution {
  /** Position in the array ranked. */
  readonly index: number;
  readonly contribution: number;
}

/**
 * The `k` entries of largest absolute value, largest first (ties: lower index first).
 * Zero contributions are never ranked: a feature that did not move this row's score is
 * no reason for it, so fewer than `k` come back when fewer are non-zero.
 */
export function topK(contribs: ArrayLike<number>, k: number): RankedContribution[] {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a non-negative integer (got ${k})`);
  if (k === 0) return [];
  // Insertion into a k-long sorted list: k is a handful, so this beats sorting the row.
  const index: number[] = [];
  const size: number[] = [];
  for (let i = 0; i < contribs.length; i += 1) {
    const a = Math.abs(contribs[i]!);
    if (!(a > 0)) continue;
    if (index.length === k && a <= size[k - 1]!) continue;
    let at = Math.min(index.length, k - 1);
    if (index.length < k) {
      index.push(i);
      size.push(a);
    }
    while (at > 0 && size[at - 1]! < a) {
      index[at] = index[at - 1]!;
      size[at] = size[at - 1]!;
      at -= 1;
    }
    index[at] = i;
    size[at] = a;
  }
  return index.map((i) => ({ index: i, contribution: contribs[i]! }));
}

/** One reason code: an input column and what it added to the margin. */
export interface Reason {
  readonly feature: string;
  readonly contribution: number;
}

/**
 * A row's reason codes: its contributions (one output group's, as TreeShapExplainer
 * writes them) summed over each input column's expanded columns, then the `k` largest
 * by absolute value.
 */
export function rankReasons(contribs: ArrayLike<number>, map: InputColumnMap, k: number): Reason[] {
  const perInput = sumByInputColumn(contribs, map);
  return topK(perInput, k).map(({ index, contribution }) => ({
    feature: map.inputs[index]!,
    contribution,
  }));
}
