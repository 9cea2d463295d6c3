import type { ScorePipelineConfig } from '../config/pipeline-config.ts';
import { ConfigError } from '../errors/errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { ModelFormatError } from './errors.ts';
import type { FeatureSpec } from './features/feature-spec.ts';
import { inferFeatureSpec } from './infer-spec.ts';
import { type ModelFeatures, modelFeaturesOf } from './xgboost/xgboost-json.ts';

const decoder = new TextDecoder();

/**
 * The model's feature count and names, read from its JSON in the store; undefined when
 * the object is not there.
 * @throws ModelFormatError for a file that is not an XGBoost JSON model
 */
export async function storedModelFeatures(
  store: ObjectStore,
  key: string,
): Promise<ModelFeatures | undefined> {
  const bytes = await store.get(key);
  if (!bytes) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new ModelFormatError(`${key}: not valid JSON (${(error as Error).message.split('\n')[0]})`, {
      cause: error,
    });
  }
  return modelFeaturesOf(raw, key);
}

/** Where a run's spec and model are, for one-line errors. */
export const specSourceOf = (config: ScorePipelineConfig): string =>
  `pipeline ${config.name}, model ${config.model.modelKey}`;

/**
 * The feature spec a run of the pipeline applies: the configured one, or, for
 * `featureSpec: "infer"`, the one built from the model's feature names with the
 * configured exceptions (shared/scoring/infer-spec.ts).
 * @throws ConfigError when an inferred spec's model is not in the bucket or has no names
 */
export async function featureSpecFromModel(
  store: ObjectStore,
  config: ScorePipelineConfig,
): Promise<FeatureSpec> {
  const spec = config.featureSpec as FeatureSpec;
  if (spec.infer !== true) return spec;
  const model = await storedModelFeatures(store, config.model.modelKey);
  if (!model) {
    throw new ConfigError(
      `pipeline ${config.name}: featureSpec is inferred from the model's feature names, but model ${config.model.modelKey} is not in the bucket; upload the XGBoost JSON model there`,
    );
  }
  return inferFeatureSpec(spec, model, specSourceOf(config));
}

const resolved = new WeakMap<ObjectStore, Map<string, { runId: string; spec: Promise<FeatureSpec> }>>();

/**
 * The pipeline config as a run applies it: `featureSpec` resolved (see
 * {@link featureSpecFromModel}). With a run id the spec is read once per run, pipeline and
 * object store (a worker's units of one run share it; the next run reads the model again).
 */
export async function scoreConfigOfRun(
  store: ObjectStore,
  config: ScorePipelineConfig,
  runId?: string,
): Promise<ScorePipelineConfig> {
  if ((config.featureSpec as FeatureSpec).infer !== true) return config;
  if (runId === undefined) return { ...config, featureSpec: await featureSpecFromModel(store, config) };
  let byName = resolved.get(store);
  if (!byName) {
    byName = new Map();
    resolved.set(store, byName);
  }
  const cached = byName.get(config.name);
  let spec = cached?.runId === runId ? cached.spec : undefined;
  if (!spec) {
    spec = featureSpecFromModel(store, config);
    const entry = { runId, spec };
    byName.set(config.name, entry);
    spec.catch(() => {
      if (byName.get(config.name) === entry) byName.delete(config.name);
    });
  }
  return { ...config, featureSpec: await spec };
}
