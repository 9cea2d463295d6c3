import type { ScorePipelineConfig } from '../config/pipeline-config.ts';
import { ConfigError } from '../errors/errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { type EmbeddingTable, parseEmbeddingTable } from './features/embedding-table.ts';
import type { FeatureSpec } from './features/feature-spec.ts';
import { embeddingTableKeys, FeatureTransformer } from './features/feature-transformer.ts';
import { decideFit, type FitDecision } from './features/fitted-features.ts';

const decoder = new TextDecoder();

/** Reads the stored feature statistics (or undefined) and decides whether this run fits them first. */
export async function fitDecisionFor(store: ObjectStore, config: ScorePipelineConfig): Promise<FitDecision> {
  const bytes = await store.get(config.featureStats.key);
  let stored: unknown;
  if (bytes) {
    try {
      stored = JSON.parse(decoder.decode(bytes));
    } catch {
      stored = { invalid: true };
    }
  }
  return decideFit(config.featureSpec as FeatureSpec, stored, config.featureStats.refit);
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
      const decision = await decideFit(
        config.featureSpec as FeatureSpec,
        await store.get(config.featureStats.key).then((b) => (b ? JSON.parse(decoder.decode(b)) : undefined)),
        false,
      );
      if (decision.action !== 'reuse')
        throw new ConfigError(
          `featureStats.key: ${config.featureStats.key}: ${decision.reason}; run a fit first`,
        );
      return new FeatureTransformer(
        config.featureSpec as FeatureSpec,
        decision.fitted,
        await loadTables(store, config),
      );
    })();
    byKey.set(cacheKey, { runId, transformer });
    transformer.catch(() => byKey.delete(cacheKey));
  }
  return transformer;
}
