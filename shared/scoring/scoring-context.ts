import type { ScorePipelineConfig } from '../config/pipeline-config.ts';
import { ConfigError } from '../errors/errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { type EmbeddingTable, parseEmbeddingTable } from './features/embedding-table.ts';
import { type FeatureDefinition, type FeatureSpec, featureName } from './features/feature-spec.ts';
import { embeddingTableKeys, FeatureTransformer } from './features/feature-transformer.ts';
import { FeatureStatsAccumulator } from './features/fit-features.ts';
import { decideFit, type FitDecision } from './features/fitted-features.ts';
import { scoreConfigOfRun } from './run-feature-spec.ts';

const decoder = new TextDecoder();

/** Whether a feature's transform or encoding applies fitted statistics (a mean, quantiles, the top categories). */
function needsStatistics(feature: FeatureDefinition): boolean {
  if (feature.type === 'onehot') return true;
  if (feature.type !== 'numeric') return false;
  return (
    feature.transform === 'standardize' ||
    feature.transform === 'minmax' ||
    feature.transform === 'robust' ||
    feature.impute === 'mean' ||
    feature.impute === 'median'
  );
}

/**
 * The features of a spec that need fitted statistics (issue 16, item 4): none for a spec
 * of plain numeric columns, `log1p`, hash and embedding features, which a run applies
 * without a fit stage and without reading or writing `featureStats.key`.
 */
export function featuresNeedingStatistics(spec: FeatureSpec): string[] {
  return spec.features.filter(needsStatistics).map(featureName);
}

/** Statistics for a spec that needs none: empty, stamped with the spec's hash (never stored). */
const noStatisticsNeeded = (spec: FeatureSpec) => new FeatureStatsAccumulator(spec).finish(new Date(0));

/**
 * Reads the stored feature statistics (or undefined) and decides whether this run fits them
 * first; a spec that needs no statistics reuses empty ones, without reading the store.
 * `config`'s spec must be resolved (shared/scoring/run-feature-spec.ts), or is resolved here.
 */
export async function fitDecisionFor(
  store: ObjectStore,
  configured: ScorePipelineConfig,
): Promise<FitDecision> {
  const config = await scoreConfigOfRun(store, configured);
  const spec = config.featureSpec as FeatureSpec;
  if (featuresNeedingStatistics(spec).length === 0)
    return { action: 'reuse', fitted: noStatisticsNeeded(spec) };
  const bytes = await store.get(config.featureStats.key);
  let stored: unknown;
  if (bytes) {
    try {
      stored = JSON.parse(decoder.decode(bytes));
    } catch {
      stored = { invalid: true };
    }
  }
  return decideFit(spec, stored, config.featureStats.refit);
}

async function loadTables(
  store: ObjectStore,
  config: ScorePipelineConfig,
): Promise<Map<string, EmbeddingTable>> {
  const tables = new Map<string, EmbeddingTable>();
  for (const key of embeddingTableKeys(config.featureSpec as FeatureSpec)) {
    const feature = config.featureSpec.features.find((f) => f.type === 'embedding' && f.table === key);
    const bytes = await store.get(key);
    if (!bytes) throw new ConfigError(`featureSpec: embedding table ${key} is not in the bucket`);
    const dimension = feature?.type === 'embedding' ? feature.dimension : 0;
    tables.set(
      key,
      parseEmbeddingTable(decoder.decode(bytes), {
        format: key.endsWith('.csv') ? 'csv' : 'json',
        dimension,
        source: key,
      }),
    );
  }
  return tables;
}

const transformers = new WeakMap<
  ObjectStore,
  Map<string, { runId: string; transformer: Promise<FeatureTransformer> }>
>();

/**
 * The feature transformer a scoring unit applies: the stored statistics (which a fit run
 * wrote or the model was shipped with) and the embedding tables, loaded once per run,
 * pipeline and object store, so a warm worker never applies last night's statistics
 * after a refit.
 */
export function transformerFor(
  store: ObjectStore,
  config: ScorePipelineConfig,
  runId: string,
): Promise<FeatureTransformer> {
  let byKey = transformers.get(store);
  if (!byKey) {
    byKey = new Map();
    transformers.set(store, byKey);
  }
  const cacheKey = config.name;
  const cached = byKey.get(cacheKey);
  let transformer = cached?.runId === runId ? cached.transformer : undefined;
  if (!transformer) {
    transformer = (async () => {
      const resolved = await scoreConfigOfRun(store, config, runId);
      const spec = resolved.featureSpec as FeatureSpec;
      const decision =
        featuresNeedingStatistics(spec).length === 0
          ? ({ action: 'reuse', fitted: noStatisticsNeeded(spec) } as const)
          : decideFit(
              spec,
              await store
                .get(config.featureStats.key)
                .then((b) => (b ? JSON.parse(decoder.decode(b)) : undefined)),
              false,
            );
      if (decision.action !== 'reuse')
        throw new ConfigError(
          `featureStats.key: ${config.featureStats.key}: ${decision.reason}; run a fit first`,
        );
      return new FeatureTransformer(spec, decision.fitted, await loadTables(store, resolved));
    })();
    byKey.set(cacheKey, { runId, transformer });
    transformer.catch(() => byKey.delete(cacheKey));
  }
  return transformer;
}
