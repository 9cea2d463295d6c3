import type { EmbedPipelineConfig } from '../config/pipeline-config.ts';
import { ConfigError } from '../errors/errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { TokenCounter } from './token-counter.ts';
import { TokenizerJsonCounter } from './tokenizer-json-counter.ts';

const loaded = new WeakMap<ObjectStore, Map<string, Promise<TokenCounter>>>();

/**
 * The counter a pipeline chunks with: exact counts from the `tokenizer.json` its config
 * names (read once per process from the object store), else the conservative estimator.
 */
export function tokenCounterFor(
  store: ObjectStore,
  config: EmbedPipelineConfig,
  estimator: TokenCounter,
): Promise<TokenCounter> {
  const spec = config.chunking.tokenizer;
  if (!spec) return Promise.resolve(estimator);
  let byKey = loaded.get(store);
  if (!byKey) {
    byKey = new Map();
    loaded.set(store, byKey);
  }
  const cacheKey = `${spec.key}\u0000${spec.configKey ?? ''}`;
  let counter = byKey.get(cacheKey);
  if (!counter) {
    counter = (async () => {
      const json = await store.get(spec.key);
      if (!json)
        throw new ConfigError(
          `chunking.tokenizer.key: no object ${spec.key} in the bucket (upload the model's tokenizer.json there)`,
        );
      const tokenizerConfig = spec.configKey === undefined ? undefined : await store.get(spec.configKey);
      if (spec.configKey !== undefined && !tokenizerConfig)
        throw new ConfigError(`chunking.tokenizer.configKey: no object ${spec.configKey} in the bucket`);
      try {
        return TokenizerJsonCounter.fromBytes(json, tokenizerConfig, spec.key);
      } catch (error) {
        throw new ConfigError(
          `chunking.tokenizer.key: ${spec.key} is not a usable tokenizer.json: ${(error as Error).message}`,
          { cause: error },
        );
      }
    })();
    byKey.set(cacheKey, counter);
    // A failed load is not cached, so fixing the bucket fixes the next attempt.
    counter.catch(() => byKey.delete(cacheKey));
  }
  return counter;
}
