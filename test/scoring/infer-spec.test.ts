import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { scoreConfigOfNewRun } from '../../shared/jobs/score/run-config.ts';
import { scoreJob } from '../../shared/jobs/score/score-job.ts';
import { ModelSchemaMismatch } from '../../shared/scoring/errors.ts';
import { type FeatureSpec, parseFeatureSpec } from '../../shared/scoring/features/feature-spec.ts';
import { checkInputColumns, inferFeatureSpec } from '../../shared/scoring/infer-spec.ts';
import { inputColumnsOf } from '../../shared/scoring/input-columns.ts';
import { featuresNeedingStatistics, fitDecisionFor } from '../../shared/scoring/scoring-context.ts';

const FIXTURE = 'events/fixtures/byom';
const MODEL_KEY = 'models/cancer/model.json';

/** A model's features as XGBoost saves them when trained on named columns. */
const named = (...featureNames: string[]) => ({ numFeatures: featureNames.length, featureNames });

const inferred = (features: unknown[] = []) => parseFeatureSpec({ infer: true, features });

function scoreConfig(extra: Record<string, unknown> = {}): ScorePipelineConfig {
  return parsePipelineConfig({
    name: 'cancer',
    kind: 'score',
    input: { idField: 'patient_id' },
    model: { modelKey: MODEL_KEY },
    ...extra,
  }) as ScorePipelineConfig;
}

describe('inferFeatureSpec', () => {
  it('builds one plain numeric column per model feature, in the model order', () => {
    const spec = inferFeatureSpec(inferred(), named('mean radius', 'age', 'income'));
    expect(spec.features).toEqual([
      { type: 'numeric', column: 'mean radius', transform: 'none', impute: 'keep' },
      { type: 'numeric', column: 'age', transform: 'none', impute: 'keep' },
      { type: 'numeric', column: 'income', transform: 'none', impute: 'keep' },
    ]);
    expect(spec.infer).toBeUndefined();
  });

  it('puts each exception in the place of the model features it expands to, at the first of them', () => {
    const spec = inferFeatureSpec(
      inferred([
        { type: 'onehot', column: 'region', topK: 2 },
        { type: 'numeric', column: 'income', transform: 'log1p' },
        { type: 'hash', column: 'product', buckets: 2 },
        { type: 'embedding', column: 'occupation', table: 'models/x/occ.json', dimension: 2 },
      ]),
      named(
        'age',
        'income',
        'region=north',
        'region=south',
        'region=__unknown__',
        'product#0',
        'product#1',
        'occupation(0)',
        'occupation(1)',
        'tenure',
      ),
    );
    expect(spec.features.map((f) => `${f.type}:${f.column}`)).toEqual([
      'numeric:age',
      'numeric:income',
      'onehot:region',
      'hash:product',
      'embedding:occupation',
      'numeric:tenure',
    ]);
    expect(spec.features[1]).toMatchObject({ transform: 'log1p' });
  });

  it('refuses an exception that names no feature of the model (a typo would leave the column plain)', () => {
    const run = () =>
      inferFeatureSpec(
        inferred([{ type: 'numeric', column: 'incme', transform: 'log1p' }]),
        named('age', 'income'),
        'pipeline p, model m.json',
      );
    expect(run).toThrow(ModelSchemaMismatch);
    expect(run).toThrow(
      'featureSpec.features: "incme" (numeric) names no feature of pipeline p, model m.json (its features: "age", "income"); fix the name or remove the entry',
    );
  });

  it('says what to write when the model has no feature names', () => {
    const run = () => inferFeatureSpec(inferred(), { numFeatures: 30 }, 'pipeline p, model m.json');
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(
      /^featureSpec is inferred from the model's feature names, but pipeline p, model m.json has none \(30 unnamed features\): list the features in featureSpec.features/,
    );
  });

  it('returns an explicit spec as it is', () => {
    const explicit = parseFeatureSpec({ features: [{ type: 'numeric', column: 'b' }] });
    expect(inferFeatureSpec(explicit, named('a'))).toBe(explicit);
  });
});

describe('score pipeline keys that are not needed', () => {
  it('infers the spec when featureSpec is left out or "infer", and needs no featureStats or endpoint name', () => {
    for (const config of [scoreConfig(), scoreConfig({ featureSpec: 'infer' })]) {
      expect(config.featureSpec).toEqual({ infer: true, features: [], quantileAccuracy: 0.001 });
      expect(config.featureStats).toEqual({ key: 'models/cancer/feature-stats.json', refit: false });
      expect(config.model.endpointName).toBeUndefined();
    }
  });

  it('still refuses an explicit spec with no feature', () => {
    expect(() => scoreConfig({ featureSpec: { features: [] } })).toThrow(
      /featureSpec.features: lists no feature: list them, or set "infer": true/,
    );
  });

  it('fits statistics only for the transforms that need them', () => {
    const spec = (features: unknown[]) => parseFeatureSpec({ features }) as FeatureSpec;
    expect(
      featuresNeedingStatistics(
        spec([
          { type: 'numeric', column: 'a' },
          { type: 'numeric', column: 'b', transform: 'log1p', impute: 'zero' },
          { type: 'hash', column: 'c', buckets: 4 },
        ]),
      ),
    ).toEqual([]);
    expect(
      featuresNeedingStatistics(
        spec([
          { type: 'numeric', column: 'a', transform: 'standardize' },
          { type: 'numeric', column: 'b', impute: 'median' },
          { type: 'onehot', column: 'c' },
          { type: 'numeric', column: 'd', transform: 'log1p' },
        ]),
      ),
    ).toEqual(['a', 'b', 'c']);
  });

  it('plans a spec that needs no statistics as one score stage, without a fit (it used to fit first)', async () => {
    const store = new MemoryObjectStore();
    await store.put(MODEL_KEY, await readFile(`${FIXTURE}/model.json`));
    const config = scoreConfig();
    expect(await fitDecisionFor(store, config)).toMatchObject({ action: 'reuse' });
    expect(await scoreJob.stagesOfRun!({ store }, config)).toEqual(['score']);
    // Nothing is read from or written to featureStats.key.
    expect(await store.get(config.featureStats.key)).toBeUndefined();
  });
});

describe('the inputs checked against the spec at plan time', () => {
  const csv = (header: string) => `${header}\np1,1,2\n`;

  async function storeWith(key: string, body: string) {
    const store = new MemoryObjectStore();
    await store.put(key, body);
    return {
      store,
      source: { key, size: Buffer.byteLength(body), format: 'csv' as const, compression: 'none' as const },
    };
  }

  it('stops a run whose CSV header lacks a column the spec reads, naming the one it likely meant', async () => {
    const { store, source } = await storeWith('incoming/p/a.csv', csv('id,age,Income'));
    const spec = parseFeatureSpec({
      features: [
        { type: 'numeric', column: 'age' },
        { type: 'numeric', column: 'income' },
      ],
    });
    const columns = await inputColumnsOf(store, source, scoreConfig().input);
    expect(columns).toEqual({ source: 'incoming/p/a.csv', columns: ['id', 'age', 'Income'], complete: true });
    expect(() => checkInputColumns(spec, columns!)).toThrow(
      'featureSpec reads column "income", which incoming/p/a.csv does not have (its columns: "id", "age", "Income"); did you mean "Income"?',
    );
  });

  it('warns, without stopping, when no JSONL record read has the column', async () => {
    const store = new MemoryObjectStore();
    const body = '{"id":"a","age":1}\n{"id":"b","age":2,"incme":3}\n';
    await store.put('in.jsonl', body);
    const columns = await inputColumnsOf(
      store,
      { key: 'in.jsonl', size: body.length, format: 'jsonl', compression: 'none' },
      scoreConfig().input,
    );
    expect(columns?.complete).toBe(false);
    const spec = parseFeatureSpec({ features: [{ type: 'numeric', column: 'income' }] });
    expect(checkInputColumns(spec, columns!)).toBe(
      'featureSpec reads column "income", which none of the first records of in.jsonl has: if it is misspelt, every row scores it as missing; did you mean "incme"?',
    );
  });

  it('resolves an inferred spec at plan time and checks it against the inputs', async () => {
    const store = new MemoryObjectStore();
    const model = JSON.parse(await readFile(`${FIXTURE}/model.json`, 'utf8'));
    await store.put(MODEL_KEY, JSON.stringify(model));
    const names: string[] = model.learner.feature_names;
    const good = `patient_id,${names.join(',')}\np1,${names.map(() => '1').join(',')}\n`;
    const renamed = good.replace('mean radius', 'mean_radius');
    await store.put('in/good.csv', good);
    await store.put('in/renamed.csv', renamed);
    const source = (key: string, body: string) => ({
      key,
      size: body.length,
      format: 'csv' as const,
      compression: 'none' as const,
    });

    const resolved = await scoreConfigOfNewRun({ store }, scoreConfig(), [source('in/good.csv', good)]);
    expect(resolved.featureSpec.features).toHaveLength(30);
    expect(resolved.featureSpec.features[0]).toMatchObject({ column: 'mean radius' });
    await expect(
      scoreConfigOfNewRun({ store }, scoreConfig(), [
        source('in/good.csv', good),
        source('in/renamed.csv', renamed),
      ]),
    ).rejects.toThrow(
      /^featureSpec reads column "mean radius", which in\/renamed.csv does not have .*; did you mean "mean_radius"\?$/,
    );
  });
});
