import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { ModelUnusable } from '../../shared/scoring/errors.ts';
import { RowReasons } from '../../shared/scoring/in-worker/row-reasons.ts';
import { passThroughOf } from '../../shared/scoring/pass-through.ts';
import { parseCsvRows } from '../../shared/scoring/xgboost/csv-contract.ts';
import { columnMapOfInputs } from '../../shared/scoring/xgboost/reason-codes.ts';
import { TreeShapExplainer } from '../../shared/scoring/xgboost/tree-shap.ts';
import { XgboostPredictor } from '../../shared/scoring/xgboost/xgboost-predictor.ts';

const creditRisk = JSON.parse(readFileSync('pipelines/credit-risk.json', 'utf8'));
const withKeys =
  (extra: Record<string, unknown>, model: Record<string, unknown> = {}) =>
  () =>
    parsePipelineConfig(
      { ...creditRisk, model: { ...creditRisk.model, ...model }, ...extra },
      'pipelines/credit-risk.json',
    );

describe('explain and output.passThrough in a score pipeline config', () => {
  it('accepts explain.topK with in-worker hosting and pass-through names or typed columns', () => {
    const config = withKeys(
      { explain: { topK: 3 }, output: { passThrough: ['region', { column: 'income', type: 'double' }] } },
      { hosting: 'in-worker' },
    )();
    expect(config).toMatchObject({
      explain: { topK: 3 },
      output: {
        table: 'scores',
        passThrough: [
          { column: 'region', type: 'string' },
          { column: 'income', type: 'double' },
        ],
      },
    });
  });

  it('refuses explain with a model hosted on an endpoint, in one line saying why and what to do', () => {
    expect(withKeys({ explain: { topK: 3 } }, { hosting: 'serverless' })).toThrow(
      /^pipelines\/credit-risk\.json: explain\.topK: reason codes need model\.hosting "in-worker" \(this pipeline has "serverless"\): .*set model\.hosting to in-worker or remove explain$/,
    );
  });

  it('refuses a topK below 1, a pass-through column the table has, one listed twice, an unknown type', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ explain: { topK: 0 } }, /^pipelines\/credit-risk\.json: explain\.topK: /],
      [
        { output: { passThrough: ['score'] } },
        /output\.passThrough\.0: "score" is a column of the scores table already/,
      ],
      [
        { output: { passThrough: ['region', 'region'] } },
        /output\.passThrough\.1: "region" is listed twice$/,
      ],
      [
        { output: { passThrough: [{ column: 'x', type: 'date' }] } },
        /^pipelines\/credit-risk\.json: output\.passThrough\.0/,
      ],
    ];
    for (const [extra, message] of bad) {
      const parse = withKeys(extra, { hosting: 'in-worker' });
      expect(parse).toThrow(message);
      try {
        parse();
      } catch (error) {
        expect((error as Error).message).not.toContain('\n');
      }
    }
  });
});

describe('passThroughOf', () => {
  const columns = [
    { column: 'name', type: 'string' as const },
    { column: 'amount', type: 'double' as const },
    { column: 'count', type: 'bigint' as const },
    { column: 'vip', type: 'boolean' as const },
  ];

  it('types CSV text and JSON values alike; missing or empty is null', () => {
    expect(passThroughOf({ name: 'a', amount: '1.5', count: '42', vip: 'TRUE' }, columns)).toEqual({
      ok: true,
      values: { name: 'a', amount: 1.5, count: 42n, vip: true },
    });
    expect(passThroughOf({ name: 7, amount: 2, count: 3n, vip: false }, columns)).toEqual({
      ok: true,
      values: { name: '7', amount: 2, count: 3n, vip: false },
    });
    expect(passThroughOf({ amount: '', vip: null }, columns)).toEqual({
      ok: true,
      values: { name: null, amount: null, count: null, vip: null },
    });
  });

  it('names the column and the value when a value is not of its type', () => {
    expect(passThroughOf({ amount: 'abc' }, columns)).toEqual({
      ok: false,
      reason: 'pass-through column "amount": abc is not a double',
    });
    expect(passThroughOf({ count: '1.5' }, columns)).toMatchObject({ ok: false });
    expect(passThroughOf({ vip: 'yes' }, columns)).toMatchObject({ ok: false });
  });
});

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/tree-shap');
const read = (name: string, file: string) => readFileSync(path.join(fixtures, name, file), 'utf8');
const csvLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((line) => line.split(',').map(Number));

describe('RowReasons on the XGBoost parity fixtures', () => {
  for (const name of ['binary', 'multiclass', 'regression']) {
    it(`${name}: reasons of every input plus the bias equal XGBoost's margin of the scored group`, () => {
      const model = read(name, 'model.json');
      const explainer = TreeShapExplainer.fromJson(model);
      const predictor = XgboostPredictor.fromJson(model);
      const rows = parseCsvRows(read(name, 'rows.csv'));
      const margins = csvLines(read(name, 'margins.csv'));
      const width = explainer.numFeatures;
      // Columns 0-1 read field "a", the rest one field each: reasons sum expanded columns back.
      const inputs = Array.from({ length: width }, (_, c) => (c < 2 ? 'a' : `f${c}`));
      const scoreClass = explainer.numGroups > 1 ? 2 : 0;
      const reasons = new RowReasons(explainer, columnMapOfInputs(inputs), width, scoreClass, name);
      const outputs = predictor.predictMatrix(rows.data, rows.numRows, rows.numColumns);
      const per = predictor.outputsPerRow;
      for (let r = 0; r < rows.numRows; r += 1) {
        const features = rows.data.subarray(r * rows.numColumns, (r + 1) * rows.numColumns);
        const got = JSON.parse(
          reasons.reasonsOf(features, { a: 'x' }, Array.from(outputs.subarray(r * per, (r + 1) * per))),
        ) as { feature: string; contribution: number; value: unknown }[];
        expect(new Set(got.map((g) => g.feature)).size).toBe(got.length);
        const sum = got.reduce((s, g) => s + g.contribution, explainer.bias[scoreClass]!);
        // XGBoost's margin is float32: within its rounding.
        expect(Math.abs(sum - margins[r]![scoreClass]!)).toBeLessThan(1e-5);
        const exact = explainer.explainRow(features);
        const stride = width + 1;
        let total = 0;
        for (let c = 0; c <= width; c += 1) total += exact[scoreClass * stride + c]!;
        expect(Math.abs(sum - total)).toBeLessThan(1e-6);
        for (const g of got) expect(g.value).toBe(g.feature === 'a' ? 'x' : null);
      }
    });
  }

  it('stops with one line when the score did not come from this model', () => {
    const model = read('binary', 'model.json');
    const explainer = TreeShapExplainer.fromJson(model);
    const reasons = new RowReasons(
      explainer,
      columnMapOfInputs(Array.from({ length: explainer.numFeatures }, (_, c) => `f${c}`)),
      3,
      0,
      'models/x.json',
    );
    const row = new Float64Array(explainer.numFeatures).fill(0.5);
    expect(() => reasons.reasonsOf(row, {}, [0.123])).toThrow(ModelUnusable);
    expect(() => reasons.reasonsOf(row, {}, [0.123])).toThrow(
      /^models\/x\.json: the reason codes' model gives /,
    );
  });
});
