import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseEmbeddingTable } from '../../shared/scoring/features/embedding-table.ts';
import { parseFeatureSpec } from '../../shared/scoring/features/feature-spec.ts';
import { FeatureTransformer } from '../../shared/scoring/features/feature-transformer.ts';
import { FeatureStatsAccumulator } from '../../shared/scoring/features/fit-features.ts';
import {
  identityColumnMap,
  inputColumnMap,
  inputColumnOf,
  rankReasons,
  sumByInputColumn,
  topK,
} from '../../shared/scoring/xgboost/reason-codes.ts';

const spec = parseFeatureSpec({
  features: [
    { type: 'numeric', column: 'income', transform: 'standardize' },
    { type: 'onehot', column: 'region', topK: 2 },
    { type: 'hash', column: 'merchant', buckets: 4 },
    { type: 'embedding', column: 'product', table: 'tables/products.json', dimension: 2 },
    // A second view of a field already read: its column sums into the same input.
    { type: 'numeric', column: 'income', name: 'income_log', transform: 'log1p' },
  ],
});
const records = [
  { income: 50_000, region: 'north', merchant: 'm1', product: 'loan' },
  { income: 70_000, region: 'south', merchant: 'm2', product: 'card' },
  { income: 60_000, region: 'east', merchant: 'm3', product: 'loan' },
  { income: 65_000, region: 'north', merchant: 'm1', product: 'card' },
];
const accumulator = new FeatureStatsAccumulator(spec);
for (const record of records) accumulator.observe(record);
const fitted = accumulator.finish(new Date('2026-01-01T00:00:00Z'));
const tables = new Map([
  [
    'tables/products.json',
    parseEmbeddingTable('{"loan": [1, 0], "card": [0, 1]}', { format: 'json', dimension: 2 }),
  ],
]);

describe('inputColumnMap', () => {
  const map = inputColumnMap(spec, fitted);
  const transformer = new FeatureTransformer(spec, fitted, tables);

  it('has one entry per column the transformer writes, in the same order', () => {
    expect(map.inputOfColumn.length).toBe(transformer.width);
    expect(map.inputs).toEqual(['income', 'region', 'merchant', 'product']);
    expect(transformer.columns.map((_, c) => inputColumnOf(map, c))).toEqual([
      'income',
      'region',
      'region',
      'region',
      'merchant',
      'merchant',
      'merchant',
      'merchant',
      'product',
      'product',
      'income',
    ]);
    // The transformer's own names agree: one-hot, hash and embedding columns start with their feature.
    expect(transformer.columns.slice(1, 4)).toEqual([
      'region=north',
      expect.stringMatching(/^region=/),
      'region=__unknown__',
    ]);
    expect(transformer.columns.slice(4, 8)).toEqual(['merchant#0', 'merchant#1', 'merchant#2', 'merchant#3']);
    expect(transformer.columns.slice(8, 10)).toEqual(['product[0]', 'product[1]']);
  });

  it('names the bad column when asked for one past the end', () => {
    expect(() => inputColumnOf(map, 11)).toThrow(/column 11 is outside the 11 expanded columns/);
  });

  it('sums expanded contributions back to their input columns, keeping the total', () => {
    const contribs = [0.5, 0.1, -0.3, 0, 0, 0.2, 0, 0, 1, -2, 0.25, /* bias */ 9];
    expect(Array.from(sumByInputColumn(contribs, map))).toEqual([0.75, 0.1 - 0.3, 0.2, -1]);
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 11, maxLength: 11 }),
        (c) => {
          const perInput = sumByInputColumn(c, map);
          const total = c.reduce((a, b) => a + b, 0);
          expect(Array.from(perInput).reduce((a, b) => a + b, 0)).toBeCloseTo(total, 9);
        },
      ),
    );
  });

  it('refuses fewer contributions than expanded columns', () => {
    expect(() => sumByInputColumn([1, 2], map)).toThrow(/2 contributions for 11 expanded columns/);
  });
});

describe('topK', () => {
  it('ranks by absolute value, largest first, ties by position', () => {
    expect(topK([0.1, -3, 2, -2, 0.5], 3)).toEqual([
      { index: 1, contribution: -3 },
      { index: 2, contribution: 2 },
      { index: 3, contribution: -2 },
    ]);
  });

  it('never ranks a zero contribution, so fewer than k may come back', () => {
    expect(topK([0, 0.2, 0, -0], 3)).toEqual([{ index: 1, contribution: 0.2 }]);
    expect(topK([1, 2], 0)).toEqual([]);
  });

  it('agrees with sorting the whole row', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.constant(0),
            fc.integer({ min: -5, max: 5 }),
            fc.double({ min: -5, max: 5, noNaN: true }),
          ),
        ),
        fc.nat(8),
        (values, k) => {
          const sorted = values
            .map((contribution, index) => ({ index, contribution }))
            .filter((e) => e.contribution !== 0)
            .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution) || a.index - b.index)
            .slice(0, k);
          expect(topK(values, k)).toEqual(sorted);
        },
      ),
    );
  });

  it('refuses a k that is not a count', () => {
    expect(() => topK([1], -1)).toThrow(RangeError);
    expect(() => topK([1], 1.5)).toThrow(/non-negative integer/);
  });
});

describe('rankReasons', () => {
  it('names input columns, with their summed contribution', () => {
    const map = inputColumnMap(spec, fitted);
    const contribs = [0.5, 0.1, -0.3, 0, 0, 0.2, 0, 0, 1, -2, 0.25, 9];
    expect(rankReasons(contribs, map, 2)).toEqual([
      { feature: 'product', contribution: -1 },
      { feature: 'income', contribution: 0.75 },
    ]);
  });

  it('works on raw model columns with an identity map', () => {
    expect(rankReasons([0.1, -0.4, 0.3], identityColumnMap(['a', 'b', 'c']), 2)).toEqual([
      { feature: 'b', contribution: -0.4 },
      { feature: 'c', contribution: 0.3 },
    ]);
  });
});
