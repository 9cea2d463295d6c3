import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import { ConfigError } from '../../errors/errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { FeatureSpec } from '../../scoring/features/feature-spec.ts';
import type { FittedFeatures } from '../../scoring/features/fitted-features.ts';
import { inferFeatureSpec } from '../../scoring/infer-spec.ts';
import { checkModelSchema, type ModelSchemaCheck } from '../../scoring/model-schema.ts';
import { specSourceOf, storedModelFeatures } from '../../scoring/run-feature-spec.ts';

/**
 * The schema check of a scoring run (shared/scoring/model-schema.ts) against the model
 * file in the store: at plan time, before any unit is sent, and again at the end of the
 * fit stage once the one-hot categories are known. A spec inferred from the model
 * (`featureSpec: "infer"`) is built from the same read. A model not in the store is not
 * checked here (the worker fails on it with its own line); its absence is the warning.
 *
 * @param fitted statistics of the resolved spec, when known
 * @throws ModelSchemaMismatch on the first difference; ModelFormatError for a file that is
 *   not a model; ConfigError for an inferred spec whose model is missing or has no names
 */
export async function checkRunModelSchema(
  store: ObjectStore,
  config: ScorePipelineConfig,
  fitted: FittedFeatures | undefined,
): Promise<ModelSchemaCheck & { readonly spec?: FeatureSpec }> {
  const key = config.model.modelKey;
  const configured = config.featureSpec as FeatureSpec;
  const model = await storedModelFeatures(store, key);
  if (!model) {
    if (configured.infer === true) {
      throw new ConfigError(
        `pipeline ${config.name}: featureSpec is inferred from the model's feature names, but model ${key} is not in the bucket; upload the XGBoost JSON model there`,
      );
    }
    return { complete: false, warning: `model ${key} is not in the bucket; its feature order is unchecked` };
  }
  const where = specSourceOf(config);
  const spec = inferFeatureSpec(configured, model, where);
  return { ...checkModelSchema(spec, fitted, model, where), spec };
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
