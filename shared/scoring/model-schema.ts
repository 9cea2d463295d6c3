import { ConfigError } from '../errors/errors.ts';
import { ModelSchemaMismatch } from './errors.ts';
import { type FeatureDefinition, type FeatureSpec, featureName } from './features/feature-spec.ts';
import { UNKNOWN_CATEGORY } from './features/feature-transformer.ts';
import type { FittedFeatures } from './features/fitted-features.ts';
import type { ModelFeatures } from './xgboost/xgboost-json.ts';

/**
 * A feature's expanded column names, as FeatureTransformer writes them (a test holds the
 * two together): numeric `name`; one-hot `name=category` for each fitted category, then
 * `name=__unknown__`; hash `name#i`; embedding `name[i]`. Undefined for a one-hot feature
 * whose categories are not fitted yet.
 */
function columnsOf(feature: FeatureDefinition, fitted: FittedFeatures | undefined): string[] | undefined {
  const name = featureName(feature);
  switch (feature.type) {
    case 'numeric':
      return [name];
    case 'onehot': {
      if (!fitted) return undefined;
      const stats = fitted.stats[name];
      if (stats?.kind !== 'onehot')
        throw new ConfigError(`feature "${name}": no onehot statistics; refit them`);
      return [...stats.categories.map((c) => `${name}=${c}`), `${name}=${UNKNOWN_CATEGORY}`];
    }
    case 'hash':
      return Array.from({ length: feature.buckets }, (_, i) => `${name}#${i}`);
    case 'embedding':
      return Array.from({ length: feature.dimension }, (_, i) => `${name}[${i}]`);
  }
}

/**
 * The spec's expanded column names in the order the model receives them. Without fitted
 * statistics, only the columns before the first one-hot feature are known (its categories
 * come from the fit), and `complete` is false.
 */
export function expandedColumnNames(
  spec: FeatureSpec,
  fitted: FittedFeatures | undefined,
): { readonly names: string[]; readonly complete: boolean } {
  const names: string[] = [];
  for (const feature of spec.features) {
    const columns = columnsOf(feature, fitted);
    if (!columns) return { names, complete: false };
    names.push(...columns);
  }
  return { names, complete: true };
}

/**
 * How an expanded column is named when training: XGBoost refuses `[`, `]` and `<` in
 * feature names, so `occupation[0]` is trained as `occupation(0)` and a category
 * `<1h` as `(lt)1h`. Every other column keeps its name (`age`, `region=north`, `product#3`).
 */
export function trainingName(column: string): string {
  return column.replaceAll('[', '(').replaceAll(']', ')').replaceAll('<', '(lt)');
}

/** A model feature name matches a column spelled either way. */
const sameColumn = (modelName: string, column: string): boolean =>
  modelName === column || modelName === trainingName(column);

export interface ModelSchemaCheck {
  /** Set when the order could not be checked (the model has no feature names); log it and report it. */
  readonly warning?: string;
  /** False when only the columns before the first one-hot feature could be compared (statistics not fitted yet). */
  readonly complete: boolean;
}

/**
 * Compares the model's features with the feature spec's expanded columns, in order (each
 * spelled as the transformer names it or as {@link trainingName} does), so a
 * reordered spec or a misspelt column stops the run instead of scoring every row wrong.
 * A model saved without feature names can only be checked by count, and gets a warning.
 *
 * @param fitted the statistics the run will apply; undefined before a fit (then only the
 *   columns before the first one-hot feature are compared, and not the count)
 * @param where names the spec and the model in the error line (`pipeline credit-risk, model models/...`)
 * @throws ModelSchemaMismatch naming the first difference
 */
export function checkModelSchema(
  spec: FeatureSpec,
  fitted: FittedFeatures | undefined,
  model: ModelFeatures,
  where = 'model',
): ModelSchemaCheck {
  const { names, complete } = expandedColumnNames(spec, fitted);
  const modelNames = model.featureNames;
  if (modelNames) {
    const shared = Math.min(names.length, modelNames.length);
    for (let i = 0; i < shared; i += 1) {
      if (!sameColumn(modelNames[i]!, names[i]!)) {
        throw new ModelSchemaMismatch(
          `model feature ${i} is ${JSON.stringify(modelNames[i])} but the feature spec's column ${i} is ${JSON.stringify(trainingName(names[i]!))} (${where}); reorder the spec or retrain`,
        );
      }
    }
  }
  if (complete && names.length !== model.numFeatures) {
    const extra =
      names.length > model.numFeatures
        ? `; the spec's first column the model lacks is ${JSON.stringify(trainingName(names[model.numFeatures]!))}`
        : modelNames
          ? `; the model's first feature the spec lacks is ${JSON.stringify(modelNames[names.length])}`
          : '';
    throw new ModelSchemaMismatch(
      `the model has ${model.numFeatures} features but the feature spec expands to ${names.length} columns (${where})${extra}; fix the spec or retrain`,
    );
  }
  if (!complete && names.length > model.numFeatures) {
    throw new ModelSchemaMismatch(
      `the model has ${model.numFeatures} features but the feature spec already expands to more (${names.length} before its first one-hot feature) (${where}); fix the spec or retrain`,
    );
  }
  if (modelNames) return { complete };
  return {
    complete,
    warning: `${where}: the model has no feature names, so the order of its ${model.numFeatures} features is unchecked against the feature spec (train on a DataFrame whose columns are the spec's expanded column names, see docs/scoring.md)`,
  };
}
