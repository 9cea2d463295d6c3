import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { ModelFormatError } from '../../scoring/errors.ts';
import type { FeatureSpec } from '../../scoring/features/feature-spec.ts';
import type { FittedFeatures } from '../../scoring/features/fitted-features.ts';
import { checkModelSchema, type ModelSchemaCheck } from '../../scoring/model-schema.ts';
import { modelFeaturesOf } from '../../scoring/xgboost/xgboost-json.ts';

const decoder = new TextDecoder();

/**
 * The schema check of a scoring run (shared/scoring/model-schema.ts) against the model
 * file in the store: at plan time, before any unit is sent, and again at the end of the
 * fit stage once the one-hot categories are known. A model not in the store is not
 * checked here (the worker fails on it with its own line); its absence is the warning.
 *
 * @throws ModelSchemaMismatch on the first difference; ModelFormatError for a file that is not a model
 */
export async function checkRunModelSchema(
  store: ObjectStore,
  config: ScorePipelineConfig,
  fitted: FittedFeatures | undefined,
): Promise<ModelSchemaCheck> {
  const key = config.model.modelKey;
  const bytes = await store.get(key);
  if (!bytes) {
    return { complete: false, warning: `model ${key} is not in the bucket; its feature order is unchecked` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new ModelFormatError(`${key}: not valid JSON (${(error as Error).message.split('\n')[0]})`, {
      cause: error,
    });
  }
  return checkModelSchema(
    config.featureSpec as FeatureSpec,
    fitted,
    modelFeaturesOf(raw, key),
    `pipeline ${config.name}, model ${key}`,
  );
}

/**
 * The schema check's warning for the run summary (a model without feature names, or none
 * in the bucket), read again at the end of the score stage; a model that cannot be read
 * gives none here, since planning or the units already failed on it.
 */
export async function modelSchemaWarning(
  store: ObjectStore,
  config: ScorePipelineConfig,
): Promise<string | undefined> {
  try {
    return (await checkRunModelSchema(store, config, undefined)).warning;
  } catch {
    return undefined;
  }
}
