import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { XgboostJsonBackend } from '../../cli/model-server/xgboost-backend.ts';
import { localSageMakerClient } from '../../cli/threads/unit-deps.ts';
import { PipelineEndpointRegistry } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { SageMakerScoringEndpoint } from '../../shared/adapters/aws/sagemaker-scoring-endpoint.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ConfigError, ModelError } from '../../shared/errors/errors.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';
import { ModelFormatError, ModelUnusable } from '../../shared/scoring/errors.ts';
import { InWorkerScoringEndpoint } from '../../shared/scoring/in-worker/in-worker-scoring-endpoint.ts';
import { maxModelBytesFor, XgboostModelCache } from '../../shared/scoring/in-worker/model-cache.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.join(root, 'events/fixtures/xgboost');
const MODEL_KEY = 'models/fixture/model.json';

const stats = (): CallStats => ({ endpointCalls: 0, throttled: 0, retries: 0 });

/** A score pipeline config over the fixture model, hosted as asked. */
async function scoreConfig(hosting: 'in-worker' | 'serverless' | 'instance'): Promise<ScorePipelineConfig> {
  const raw = JSON.parse(await readFile(path.join(root, 'pipelines/credit-risk.json'), 'utf8'));
  raw.model = { ...raw.model, modelKey: MODEL_KEY, hosting };
  return parsePipelineConfig(raw) as ScorePipelineConfig;
}

describe('in-worker scoring against the xgboost-json model server', () => {
  const servers: ModelServer[] = [];
  afterAll(async () => {
    for (const server of servers) await server.close();
  });

  for (const kind of ['binary', 'multiclass', 'regression']) {
    it(`answers every ${kind} row with the same text the server answers over the SageMaker client`, async () => {
      const modelPath = path.join(fixtures, kind, 'model.json');
      const rows = await readFile(path.join(fixtures, kind, 'rows.csv'), 'utf8');
      const server = await startModelServer({ backend: XgboostJsonBackend.fromFile(modelPath) });
      servers.push(server);
      const store = new MemoryObjectStore();
      await store.put(MODEL_KEY, await readFile(modelPath));

      const serverless = await scoreConfig('serverless');
      const viaServer = new PipelineEndpointRegistry(localSageMakerClient(server.url, [serverless]), {
        store,
      }).endpointsFor(serverless).scoringEndpoint!;
      const inWorkerConfig = await scoreConfig('in-worker');
      const inWorker = new PipelineEndpointRegistry(
        () => {
          throw new Error('in-worker scoring must not make a SageMaker client');
        },
        { store },
      ).endpointsFor(inWorkerConfig).scoringEndpoint!;
      expect(viaServer).toBeInstanceOf(SageMakerScoringEndpoint);
      expect(inWorker).toBeInstanceOf(InWorkerScoringEndpoint);

      const serverStats = stats();
      const workerStats = stats();
      const expected = await viaServer.score(rows, serverStats);
      const answered = await inWorker.score(rows, workerStats);
      expect(answered).toBe(expected);
      expect(serverStats.endpointCalls).toBe(1);
      expect(workerStats).toEqual(stats());

      // And both are XGBoost's own predictions (the fixtures were written by XGBoost).
      const reference = (await readFile(path.join(fixtures, kind, 'expected.csv'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => line.split(',').map(Number));
      const got = answered
        .trim()
        .split('\n')
        .map((line) => line.split(',').map(Number));
      expect(got).toHaveLength(reference.length);
      got.forEach((row, r) => {
        row.forEach((v, c) => {
          const want = reference[r]![c]!;
          // float32 output: equal to about 7 significant digits.
          expect(Math.abs(v - want)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
        });
      });
    });
  }
});

describe('PipelineEndpointRegistry by model.hosting', () => {
  it('builds the SageMaker client only for hostings that call an endpoint', async () => {
    let made = 0;
    const registry = new PipelineEndpointRegistry(
      () => {
        made += 1;
        return localSageMakerClient('http://127.0.0.1:9', []);
      },
      { store: new MemoryObjectStore() },
    );
    const inWorker = await scoreConfig('in-worker');
    registry.endpointsFor(inWorker);
    expect(made).toBe(0);
    const instance = { ...(await scoreConfig('instance')), name: 'on-instance' };
    const serverless = { ...(await scoreConfig('serverless')), name: 'serverless' };
    expect(registry.endpointsFor(instance).scoringEndpoint).toBeInstanceOf(SageMakerScoringEndpoint);
    expect(registry.endpointsFor(serverless).scoringEndpoint).toBeInstanceOf(SageMakerScoringEndpoint);
    expect(made).toBe(1);
  });

  it('names the inference component for instance hosting and none for serverless', async () => {
    const registry = new PipelineEndpointRegistry(localSageMakerClient('http://127.0.0.1:9', []));
    const instance = await scoreConfig('instance');
    const serverless = { ...(await scoreConfig('serverless')), name: 'serverless' };
    const invokerOf = (endpoint: unknown) =>
      (endpoint as { invoker: { inferenceComponentName?: string } }).invoker;
    expect(invokerOf(registry.endpointsFor(instance).scoringEndpoint).inferenceComponentName).toBe(
      'sluice-credit-risk-model',
    );
    expect(
      invokerOf(registry.endpointsFor(serverless).scoringEndpoint).inferenceComponentName,
    ).toBeUndefined();
  });

  it('refuses in-worker hosting without an object store to read the model from', async () => {
    const registry = new PipelineEndpointRegistry(localSageMakerClient('http://127.0.0.1:9', []));
    const config = await scoreConfig('in-worker');
    expect(() => registry.endpointsFor(config)).toThrow(ConfigError);
  });
});

describe('InWorkerScoringEndpoint', () => {
  let model: Uint8Array;
  beforeAll(async () => {
    model = await readFile(path.join(fixtures, 'binary', 'model.json'));
  });

  const endpointOver = (store: MemoryObjectStore, cache = new XgboostModelCache()) =>
    new InWorkerScoringEndpoint({ store, modelKey: MODEL_KEY, cache, limits: { maxModelBytes: 1 << 20 } });

  it('refuses a row that is not numbers as the container does (a 400 the use case bisects down to the row)', async () => {
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, model);
    const error = await endpointOver(store)
      .score('1,2,3\n4,abc,6\n', stats())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).message).toBe('row 2, column 2: "abc" is not a number');
  });

  it('fails with one line when the feature spec is wider than the model, not row by row', async () => {
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, model);
    const wide = `${Array.from({ length: 9 }, () => '1').join(',')}\n`;
    await expect(endpointOver(store).score(wide, stats())).rejects.toThrow(
      new ModelUnusable(
        'model.modelKey: models/fixture/model.json takes 8 features, the feature spec gives 9 columns',
      ),
    );
  });

  it('fails with one line naming the key for a model that is missing, corrupt, or too large', async () => {
    const store = new MemoryObjectStore();
    await expect(endpointOver(store).score('1\n', stats())).rejects.toThrow(
      /^model\.modelKey: no object models\/fixture\/model\.json in the bucket/,
    );
    await store.put(MODEL_KEY, '{"learner": ');
    const corrupt = await endpointOver(store)
      .score('1\n', stats())
      .catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(ModelFormatError);
    expect((corrupt as Error).message).toMatch(/^models\/fixture\/model\.json: not valid JSON \([^\n]*\)$/);

    await store.put(MODEL_KEY, model);
    const small = new InWorkerScoringEndpoint({
      store,
      modelKey: MODEL_KEY,
      cache: new XgboostModelCache(),
      limits: { maxModelBytes: 1000 },
    });
    await expect(small.score('1\n', stats())).rejects.toThrow(
      /more than in-worker scoring loads .*set model\.hosting to serverless or instance$/,
    );
  });
});

describe('XgboostModelCache', () => {
  let binary: Uint8Array;
  let regression: Uint8Array;
  beforeAll(async () => {
    binary = await readFile(path.join(fixtures, 'binary', 'model.json'));
    regression = await readFile(path.join(fixtures, 'regression', 'model.json'));
  });
  const limits = { maxModelBytes: 1 << 20 };

  it('reads and compiles a model once, and asks for its version once per interval', async () => {
    let now = 0;
    const cache = new XgboostModelCache({ revalidateMs: 60_000, now: () => now });
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, binary);
    const first = await Promise.all([1, 2, 3].map(() => cache.get(store, MODEL_KEY, limits)));
    expect(new Set(first.map((m) => m.predictor)).size).toBe(1);
    expect(cache.counters).toEqual({ heads: 1, reads: 1, compiles: 1 });
    now = 59_999;
    await cache.get(store, MODEL_KEY, limits);
    expect(cache.counters.heads).toBe(1);
    now = 60_000;
    const same = await cache.get(store, MODEL_KEY, limits);
    expect(same.predictor).toBe(first[0]!.predictor);
    expect(cache.counters).toEqual({ heads: 2, reads: 1, compiles: 1 });
  });

  it('picks up a replaced model at the next check, and re-uploaded bytes without compiling them again', async () => {
    let now = 0;
    const cache = new XgboostModelCache({ revalidateMs: 1000, now: () => now });
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, binary);
    const before = await cache.get(store, MODEL_KEY, limits);
    expect(before.predictor.objective).toBe('binary:logistic');

    await store.put(MODEL_KEY, regression);
    expect((await cache.get(store, MODEL_KEY, limits)).predictor).toBe(before.predictor);
    now = 1000;
    const after = await cache.get(store, MODEL_KEY, limits);
    expect(after.predictor.objective).toBe('reg:squarederror');
    expect(after.modelId).toMatch(/^xgboost-json:model\.json@[0-9a-f]{12}$/);
    expect(after.modelId).not.toBe(before.modelId);

    await store.put(MODEL_KEY, Uint8Array.from(regression)); // same bytes, new version
    now = 2000;
    const again = await cache.get(store, MODEL_KEY, limits);
    expect(again.predictor).toBe(after.predictor);
    expect(cache.counters).toEqual({ heads: 3, reads: 3, compiles: 2 });
  });

  it('gives the model the id the local model server gives the same file', async () => {
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, binary);
    const { modelId } = await new XgboostModelCache().get(store, MODEL_KEY, limits);
    expect(modelId).toBe(XgboostJsonBackend.fromFile(path.join(fixtures, 'binary', 'model.json')).model);
  });

  it('remembers a corrupt model for its version, and reads the object again once it is replaced', async () => {
    let now = 0;
    const cache = new XgboostModelCache({ revalidateMs: 1000, now: () => now });
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, '{"learner": {}}');
    for (let i = 0; i < 3; i += 1) {
      await expect(cache.get(store, MODEL_KEY, limits)).rejects.toThrow(ModelFormatError);
      now += 1000;
    }
    expect(cache.counters).toEqual({ heads: 3, reads: 1, compiles: 1 });
    await store.put(MODEL_KEY, binary);
    now += 1000;
    expect((await cache.get(store, MODEL_KEY, limits)).predictor.objective).toBe('binary:logistic');
  });

  it('refuses a model larger than the worker loads before reading it', async () => {
    const cache = new XgboostModelCache();
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, binary);
    await expect(cache.get(store, MODEL_KEY, { maxModelBytes: binary.byteLength - 1 })).rejects.toThrow(
      ModelUnusable,
    );
    expect(cache.counters.reads).toBe(0);
  });

  it('keeps compiled forests within its byte bound, dropping the least recently used', async () => {
    const store = new MemoryObjectStore();
    const keys = ['models/a/model.json', 'models/b/model.json', 'models/c/model.json'];
    for (const key of keys) await store.put(key, binary);
    const probe = new XgboostModelCache();
    const one = (await probe.get(store, keys[0]!, limits)).predictor;
    const bytesOfOne = probe.size.bytes;
    expect(bytesOfOne).toBe(one.nodeCount * 13 + one.numTrees * 8);

    const cache = new XgboostModelCache({ maxBytes: 2 * bytesOfOne });
    await cache.get(store, keys[0]!, limits);
    await cache.get(store, keys[1]!, limits);
    await cache.get(store, keys[0]!, limits); // a used most recently
    await cache.get(store, keys[2]!, limits); // b is dropped
    expect(cache.size).toEqual({ models: 2, bytes: 2 * bytesOfOne });
    await cache.get(store, keys[0]!, limits);
    expect(cache.counters.compiles).toBe(3);
    await cache.get(store, keys[1]!, limits);
    expect(cache.counters.compiles).toBe(4);
  });

  it('loads a model of an eighth of the worker memory, or of its heap where that is smaller, at most', () => {
    const MiB = 1024 * 1024;
    expect(maxModelBytesFor(2048, 4096 * MiB)).toBe(256 * MiB);
    expect(maxModelBytesFor(128, 4096 * MiB)).toBe(16 * MiB);
    // `sluice run` threads under bin/sluice.js: a 192 MiB heap.
    expect(maxModelBytesFor(2048, 192 * MiB)).toBe(24 * MiB);
  });
});
