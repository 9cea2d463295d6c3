import { ConfigError } from '../errors/errors.ts';
import { ModelSchemaMismatch } from './errors.ts';
import {
  type FeatureDefinition,
  type FeatureSpec,
  featureName,
  parseFeatureSpec,
} from './features/feature-spec.ts';
import type { ModelFeatures } from './xgboost/xgboost-json.ts';

/**
 * Whether a model feature name is one of the expanded columns of `feature` (spelled as the
 * transformer names it or as training must, see model-schema.ts `trainingName`): numeric
 * `name`; one-hot `name=category`; hash `name#i`; embedding `name[i]` or `name(i)`.
 */
function expandsTo(feature: FeatureDefinition, modelName: string): boolean {
  const name = featureName(feature);
  switch (feature.type) {
    case 'numeric':
      return modelName === name;
    case 'onehot':
      return modelName.startsWith(`${name}=`);
    case 'hash': {
      const rest = modelName.startsWith(`${name}#`) ? modelName.slice(name.length + 1) : '';
      return /^\d+$/.test(rest);
    }
    case 'embedding': {
      const rest = modelName.startsWith(name) ? modelName.slice(name.length) : '';
      return /^(\[\d+\]|\(\d+\))$/.test(rest);
    }
  }
}

/** What to write instead of an inferred spec when the model carries no feature names. */
const NO_NAMES_FIX =
  'list the features in featureSpec.features in the order the model was trained on (or save the model with feature names: train on a DataFrame, or set booster.feature_names before save_model)';

/**
 * The feature spec a model implies (issue 16, item 2): one numeric column (no transform,
 * missing values kept missing, as XGBoost wants them) per model feature name, read from
 * the input column of that name, in the model's order; each exception in `spec.features`
 * (a transform, an encoder) takes the place of the model features it expands to, at the
 * first of them. An explicit spec (no `infer`) is returned as it is.
 *
 * @param where names the pipeline and the model in errors (`pipeline x, model models/...`)
 * @throws ConfigError when the model has no feature names (saying what to write instead);
 *   ModelSchemaMismatch when an exception names no feature of the model (a typo would
 *   otherwise leave the model's column as a plain numeric one, silently)
 */
export function inferFeatureSpec(spec: FeatureSpec, model: ModelFeatures, where = 'model'): FeatureSpec {
  if (spec.infer !== true) return spec;
  const names = model.featureNames;
  if (!names) {
    throw new ConfigError(
      `featureSpec is inferred from the model's feature names, but ${where} has none (${model.numFeatures} unnamed features): ${NO_NAMES_FIX}`,
    );
  }
  const features: unknown[] = [];
  const placed = new Set<FeatureDefinition>();
  for (const modelName of names) {
    const exception = spec.features.find((f) => expandsTo(f, modelName));
    if (exception === undefined) {
      features.push({ type: 'numeric', column: modelName });
    } else if (!placed.has(exception)) {
      placed.add(exception);
      features.push(exception);
    }
  }
  const unplaced = spec.features.find((f) => !placed.has(f));
  if (unplaced !== undefined) {
    throw new ModelSchemaMismatch(
      `featureSpec.features: ${JSON.stringify(featureName(unplaced))} (${unplaced.type}) names no feature of ${where} (its features: ${listed(names)}); fix the name or remove the entry`,
    );
  }
  return parseFeatureSpec(
    { features, quantileAccuracy: spec.quantileAccuracy },
    `inferred featureSpec (${where})`,
  );
}

/** The first few names of a list, for one line. */
export function listed(names: readonly string[], limit = 8): string {
  const shown = names.slice(0, limit).map((n) => JSON.stringify(n));
  return names.length > limit ? `${shown.join(', ')}, ... (${names.length} in all)` : shown.join(', ');
}

/** Edit distance of two short names, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The input column a missing one was most likely meant to be (case aside, or two edits away). */
function likelyMeant(column: string, columns: readonly string[]): string | undefined {
  const folded = columns.find((c) => c.toLowerCase() === column.toLowerCase());
  if (folded !== undefined) return folded;
  let best: { name: string; d: number } | undefined;
  for (const c of columns) {
    const d = distance(column, c);
    if (d <= 2 && (best === undefined || d < best.d)) best = { name: c, d };
  }
  return best?.name;
}

/** An expanded-column name used as an input column: the encoder its feature needs. */
function encoderHint(column: string): string {
  const onehot = /^(.+)=/.exec(column);
  if (onehot)
    return `; if the model was trained on one-hot columns, add {"type": "onehot", "column": "${onehot[1]}"}`;
  const hash = /^(.+)#\d+$/.exec(column);
  if (hash)
    return `; if the model was trained on hashed columns, add {"type": "hash", "column": "${hash[1]}", "buckets": N}`;
  const embedding = /^(.+)(\(\d+\)|\[\d+\])$/.exec(column);
  if (embedding)
    return `; if the model was trained on an embedding, add {"type": "embedding", "column": "${embedding[1]}", ...}`;
  return '';
}

/** The columns of an input as far as its first records show them. */
export interface InputColumns {
  /** The object they were read from. */
  readonly source: string;
  readonly columns: readonly string[];
  /**
   * True when they are all the input has (a CSV header, a Parquet schema); false for JSONL,
   * where a key may be absent from the records read and present later.
   */
  readonly complete: boolean;
}

/**
 * Checks that every column the spec reads is a column of the input: a misspelt column
 * would otherwise be missing on every row, scored as missing without a word. Against a
 * CSV header or a Parquet schema a missing column is an error; against JSONL keys (only
 * the first records are read) it is a warning, returned for the caller to log.
 *
 * @throws ConfigError naming the first column the input lacks, and the one it likely meant
 */
export function checkInputColumns(spec: FeatureSpec, input: InputColumns): string | undefined {
  const present = new Set(input.columns);
  const missing = spec.features.filter((f) => !present.has(f.column));
  if (missing.length === 0) return undefined;
  const first = missing[0]!.column;
  const meant = likelyMeant(first, input.columns);
  const hint = meant === undefined ? encoderHint(first) : `; did you mean ${JSON.stringify(meant)}?`;
  const more =
    missing.length > 1
      ? ` (and ${missing.length - 1} more: ${listed(
          missing.slice(1).map((f) => f.column),
          4,
        )})`
      : '';
  if (input.complete) {
    throw new ConfigError(
      `featureSpec reads column ${JSON.stringify(first)}${more}, which ${input.source} does not have (its columns: ${listed(input.columns)})${hint}`,
    );
  }
  return `featureSpec reads column ${JSON.stringify(first)}${more}, which none of the first records of ${input.source} has: if it is misspelt, every row scores it as missing${hint}`;
}

/**
 * Checks that every `output.passThrough` column is a column of the input. Against a CSV
 * header or a Parquet schema a missing one stops the run at plan (the worker would fail
 * every unit on it); JSONL has no header and an absent key is written as null, so it is
 * not checked there.
 *
 * @throws ConfigError naming the first pass-through column the input lacks, and the one it likely meant
 */
export function checkPassThroughColumns(
  passThrough: readonly { readonly column: string }[],
  input: InputColumns,
): void {
  if (!input.complete) return;
  const present = new Set(input.columns);
  const missing = passThrough.filter((p) => !present.has(p.column));
  if (missing.length === 0) return;
  const first = missing[0]!.column;
  const meant = likelyMeant(first, input.columns);
  const hint = meant === undefined ? '' : `; did you mean ${JSON.stringify(meant)}?`;
  const more =
    missing.length > 1
      ? ` (and ${missing.length - 1} more: ${listed(
          missing.slice(1).map((p) => p.column),
          4,
        )})`
      : '';
  throw new ConfigError(
    `output.passThrough reads column ${JSON.stringify(first)}${more}, which ${input.source} does not have (its columns: ${listed(input.columns)})${hint}`,
  );
}
