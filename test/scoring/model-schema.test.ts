import { readFile } from 'node:fs/promises';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunState } from '../../shared/domain/types.ts';
import type { StageMergeDeps } from '../../shared/jobs/job-kind.ts';
import { mergeFitStage } from '../../shared/jobs/score/fit-stage.ts';
import { scoreJob } from '../../shared/jobs/score/score-job.ts';
import { mergeScoreStage } from '../../shared/jobs/score/score-stage.ts';
import { ModelFormatError, ModelSchemaMismatch } from '../../shared/scoring/errors.ts';
import { parseEmbeddingTable } from '../../shared/scoring/features/embedding-table.ts';
import { type FeatureSpec, parseFeatureSpec } from '../../shared/scoring/features/feature-spec.ts';
import { FeatureTransformer } from '../../shared/scoring/features/feature-transformer.ts';
import { type FittedFeatures, parseFittedFeatures } from '../../shared/scoring/features/fitted-features.ts';
import { checkModelSchema, expandedColumnNames, trainingName } from '../../shared/scoring/model-schema.ts';
import { modelFeaturesOf, parseXgboostModelJson } from '../../shared/scoring/xgboost/xgboost-json.ts';

const MODEL_KEY = 'models/credit-risk/model.json';
const STATS_KEY = 'models/credit-risk/feature-stats.json';
const TABLE_KEY = 'models/credit-risk/occupation-embedding.json';

let rawConfig: Record<string, unknown>;
let spec: FeatureSpec;
let fitted: FittedFeatures;
let modelText: string;
let tableText: string;

beforeAll(async () => {
  rawConfig = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
  spec = parseFeatureSpec(rawConfig.featureSpec);
  fitted = parseFittedFeatures(JSON.parse(await readFile(`pipelines/${STATS_KEY}`, 'utf8')), spec);
  modelText = await readFile(`pipelines/${MODEL_KEY}`, 'utf8');
  tableText = await readFile(`pipelines/${TABLE_KEY}`, 'utf8');
});

/** The committed credit-risk model, saved as XGBoost saves one trained on named columns. */
function namedModel(names: readonly string[]): Record<string, unknown> {
  const model = JSON.parse(modelText);
  model.learner.feature_names = [...names];
  model.learner.feature_types = names.map(() => 'float');
  return model;
}

const expanded = () => expandedColumnNames(spec, fitted).names;

/** The spec with its features' order or one column changed, as a user might get it wrong. */
function specWith(features: FeatureSpec['features']): FeatureSpec {
  return parseFeatureSpec({ features });
}

describe('expandedColumnNames', () => {
  it('names the columns exactly as the feature transformer emits them, in its order', () => {
    const tables = new Map([[TABLE_KEY, parseEmbeddingTable(tableText, { format: 'json', dimension: 3 })]]);
    const transformer = new FeatureTransformer(spec, fitted, tables);
    expect(expanded()).toEqual([...transformer.columns]);
    expect(expanded()).toContain('region=__unknown__');
    expect(expanded()).toContain('product#7');
    expect(expanded()).toContain('occupation[2]');
  });

  it('stops at the first one-hot feature when nothing is fitted yet', () => {
    const { names, complete } = expandedColumnNames(spec, undefined);
    expect(complete).toBe(false);
    expect(names).toEqual(['age', 'income', 'debt_ratio', 'employment_years', 'late_payments']);
  });
});

describe('the model JSON', () => {
  it('keeps feature_names when parsed, and reads none from a model saved without them', () => {
    const names = expanded();
    expect(parseXgboostModelJson(JSON.stringify(namedModel(names))).featureNames).toEqual(names);
    expect(parseXgboostModelJson(modelText).featureNames).toBeUndefined();
    expect(modelFeaturesOf(JSON.parse(modelText))).toEqual({ numFeatures: names.length });
  });

  it('refuses feature_names whose count is not num_feature', () => {
    expect(() => modelFeaturesOf(namedModel(['age']))).toThrow(ModelFormatError);
  });
});

describe('checkModelSchema', () => {
  it('passes the model trained on the spec, with no warning', () => {
    const model = modelFeaturesOf(namedModel(expanded()));
    expect(checkModelSchema(spec, fitted, model)).toEqual({ complete: true });
  });

  it('stops a spec whose features are in reverse order, naming the first difference', () => {
    const model = modelFeaturesOf(namedModel(expanded()));
    const reversed = specWith([...spec.features].reverse());
    expect(() => checkModelSchema(reversed, fitted, model, 'pipelines/credit-risk.json')).toThrow(
      new ModelSchemaMismatch(
        'model feature 0 is "age" but the feature spec\'s column 0 is "occupation(0)" (pipelines/credit-risk.json); reorder the spec or retrain',
      ),
    );
  });

  it('accepts the names XGBoost lets a model be trained with: occupation(0) for occupation[0]', () => {
    const model = modelFeaturesOf(namedModel(expanded().map(trainingName)));
    expect(model.featureNames).toContain('occupation(0)');
    expect(checkModelSchema(spec, fitted, model)).toEqual({ complete: true });
    expect(trainingName('city=<1h')).toBe('city=(lt)1h');
  });

  it('stops a spec with a typo in one column name', () => {
    const model = modelFeaturesOf(namedModel(expanded()));
    const typo = specWith(spec.features.map((f) => (f.column === 'income' ? { ...f, column: 'incme' } : f)));
    expect(() => checkModelSchema(typo, fitted, model)).toThrow(
      /model feature 1 is "income" but the feature spec's column 1 is "incme"/,
    );
  });

  it('stops a spec that expands to fewer or more columns than the model has', () => {
    const model = modelFeaturesOf(namedModel(expanded()));
    const shorter = specWith(spec.features.slice(0, -1));
    expect(() => checkModelSchema(shorter, fitted, model)).toThrow(
      /the model has 23 features but the feature spec expands to 20 columns .*first feature the spec lacks is "occupation\[0\]"/,
    );
    const unnamed = modelFeaturesOf(JSON.parse(modelText));
    expect(() => checkModelSchema(shorter, fitted, unnamed)).toThrow(ModelSchemaMismatch);
  });

  it('warns that the order is unchecked for a model without feature names', () => {
    const check = checkModelSchema(
      spec,
      fitted,
      modelFeaturesOf(JSON.parse(modelText)),
      'pipeline credit-risk',
    );
    expect(check.warning).toMatch(
      /^pipeline credit-risk: the model has no feature names, so the order of its 23 features is unchecked/,
    );
  });
});

describe('a scoring run with a spec that disagrees with its model', () => {
  let store: MemoryObjectStore;
  const configWith = (featureSpec: FeatureSpec): ScorePipelineConfig =>
    parsePipelineConfig({ ...rawConfig, featureSpec }) as ScorePipelineConfig;

  beforeEach(async () => {
    store = new MemoryObjectStore();
    await store.put(MODEL_KEY, JSON.stringify(namedModel(expanded())));
    await store.put(STATS_KEY, await readFile(`pipelines/${STATS_KEY}`));
    await store.put(TABLE_KEY, tableText);
  });

  it('is planned when the spec matches the model', async () => {
    await expect(scoreJob.stagesOfRun!({ store }, configWith(spec))).resolves.toEqual(['score']);
  });

  it('stops at plan time when the model file is not valid JSON', async () => {
    await store.put(MODEL_KEY, '{"learner": ');
    await expect(scoreJob.stagesOfRun!({ store }, configWith(spec))).rejects.toThrow(ModelFormatError);
  });

  it('stops at plan time when the spec is reversed, before any unit is planned', async () => {
    const reversed = configWith(specWith([...spec.features].reverse()));
    await expect(scoreJob.stagesOfRun!({ store }, reversed)).rejects.toThrow(ModelSchemaMismatch);
  });

  it('stops at plan time when one column name has a typo', async () => {
    const typo = configWith(
      specWith(spec.features.map((f) => (f.column === 'debt_ratio' ? { ...f, column: 'debt_ration' } : f))),
    );
    await expect(scoreJob.stagesOfRun!({ store }, typo)).rejects.toThrow(
      /model feature 2 is "debt_ratio" but the feature spec's column 2 is "debt_ration" \(pipeline credit-risk, model models\/credit-risk\/model.json\)/,
    );
  });

  it('checks the whole schema at the end of the fit stage, one-hot columns included, before the score stage', async () => {
    const names = expanded();
    const region = names.findIndex((n) => n.startsWith('region='));
    const swapped = [...names];
    [swapped[region], swapped[region + 1]] = [swapped[region + 1]!, swapped[region]!];
    await store.put(MODEL_KEY, JSON.stringify(namedModel(swapped)));
    const config = configWith(spec);
    const run = { runId: 'r-1', pipeline: 'credit-risk' } as RunState;
    // No unit succeeded, so the merged statistics have no categories: the check still runs.
    await expect(mergeFitStage({ store }, config, run, [], new Date())).rejects.toThrow(
      /model feature 5 is "region=.*" but the feature spec's column 5 is "region=__unknown__"/,
    );
  });

  it('puts the unchecked-order warning in the run summary when the model has no names', async () => {
    const config = configWith(spec);
    const run = { runId: 'r-1', pipeline: 'credit-risk' } as RunState;
    const named = await mergeScoreStage({ store } as StageMergeDeps, config, run, []);
    expect(named.summary?.warnings).toBeUndefined();
    await store.put(MODEL_KEY, modelText);
    const unnamed = await mergeScoreStage({ store } as StageMergeDeps, config, run, []);
    expect(unnamed.summary?.warnings).toEqual([
      expect.stringMatching(/model models\/credit-risk\/model.json: the model has no feature names/),
    ]);
  });
});
