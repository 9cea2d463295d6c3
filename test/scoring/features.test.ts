import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors/errors.ts';
import { FeatureValueError } from '../../shared/scoring/errors.ts';
import { parseEmbeddingTable } from '../../shared/scoring/features/embedding-table.ts';
import {
  type FeatureSpec,
  type FeatureSpecInput,
  featureSpecHash,
  parseFeatureSpec,
} from '../../shared/scoring/features/feature-spec.ts';
import {
  embeddingTableKeys,
  FeatureTransformer,
  transformRecords,
  UNKNOWN_CATEGORY,
} from '../../shared/scoring/features/feature-transformer.ts';
import { FeatureStatsAccumulator } from '../../shared/scoring/features/fit-features.ts';
import { decideFit, parseFittedFeatures } from '../../shared/scoring/features/fitted-features.ts';
import { hashBucket, murmur3 } from '../../shared/scoring/features/stable-hash.ts';

const creditSpec = (overrides: Partial<FeatureSpecInput> = {}) =>
  parseFeatureSpec({
    features: [
      { type: 'numeric', column: 'income', transform: 'standardize', impute: 'mean' },
      { type: 'numeric', column: 'age', transform: 'minmax', impute: 'zero' },
      { type: 'numeric', column: 'balance', transform: 'robust', impute: 'median' },
      { type: 'numeric', column: 'debt', transform: 'log1p', impute: 'constant', constant: 0 },
      { type: 'numeric', column: 'utilisation' },
      { type: 'onehot', column: 'region', topK: 2 },
      { type: 'hash', column: 'merchant', buckets: 8 },
      { type: 'embedding', column: 'product', table: 'tables/products.json', dimension: 2 },
    ],
    ...overrides,
  });

const fitStats = (spec: FeatureSpec, records: Record<string, unknown>[]) => {
  const acc = new FeatureStatsAccumulator(spec);
  for (const r of records) acc.observe(r);
  return acc;
};

const products = parseEmbeddingTable('{"loan": [0.5, -1], "card": [2, 3]}', { format: 'json', dimension: 2 });
const tables = new Map([['tables/products.json', products]]);

const records = [
  {
    income: 50_000,
    age: 30,
    balance: 100,
    debt: 0,
    utilisation: 0.2,
    region: 'north',
    merchant: 'm1',
    product: 'loan',
  },
  {
    income: '70000',
    age: '50',
    balance: 300,
    debt: 9,
    utilisation: '',
    region: 'north',
    merchant: 'm2',
    product: 'card',
  },
  {
    income: null,
    age: 40,
    balance: 200,
    debt: null,
    utilisation: 0.4,
    region: 'south',
    merchant: 'm1',
    product: 'x',
  },
  { income: 60_000, age: null, balance: 'NA', debt: 99, region: 'east', merchant: '', product: null },
];

describe('parseFeatureSpec', () => {
  it('fills defaults: no transform, missing kept for XGBoost, top 20, unsigned hash', () => {
    const spec = parseFeatureSpec({
      features: [
        { type: 'numeric', column: 'x' },
        { type: 'onehot', column: 'c' },
        { type: 'hash', column: 'h', buckets: 4 },
      ],
    });
    expect(spec.features[0]).toMatchObject({ transform: 'none', impute: 'keep' });
    expect(spec.features[1]).toMatchObject({ topK: 20, minCount: 1 });
    expect(spec.features[2]).toMatchObject({ signed: false, seed: 0 });
    expect(spec.quantileAccuracy).toBe(0.001);
  });

  it('rejects an unknown key with one line naming it', () => {
    const error = () =>
      parseFeatureSpec(
        { features: [{ type: 'hash', column: 'm', buckets: 8, bukets: 9 }] },
        'pipelines/credit.json',
      );
    expect(error).toThrow(ConfigError);
    expect(error).toThrow('pipelines/credit.json: features.0.bukets: unknown key');
    expect(() => parseFeatureSpec({ features: [{ type: 'numeric', column: 'x' }], extra: 1 })).toThrow(
      'features: extra: unknown key',
    );
    expect(() => parseFeatureSpec({ features: [] })).toThrow(/^features: features: /);
  });

  it('names the wrong value', () => {
    expect(() =>
      parseFeatureSpec({ features: [{ type: 'numeric', column: 'x', transform: 'zscore' }] }),
    ).toThrow(/^features: features\.0\.transform: /);
    expect(() => parseFeatureSpec({ features: [{ type: 'bucketize', column: 'x' }] })).toThrow(
      'features: features.0.type: must be one of numeric, onehot, hash, embedding',
    );
    expect(() =>
      parseFeatureSpec({ features: [{ type: 'numeric', column: 'x', impute: 'constant' }] }),
    ).toThrow(
      'features: features.0.constant: constant is required with impute "constant" and only allowed with it',
    );
    expect(() =>
      parseFeatureSpec({
        features: [
          { type: 'numeric', column: 'x' },
          { type: 'numeric', column: 'x', transform: 'log1p' },
        ],
      }),
    ).toThrow('features: features.1.name: duplicate feature name "x" (set "name" to tell them apart)');
    expect(() =>
      parseFeatureSpec({
        features: [{ type: 'embedding', column: 'p', table: 't', dimension: 3, unknown: [1, 2] }],
      }),
    ).toThrow('features: features.0.unknown: has 2 values, dimension is 3');
  });

  it('hashes the validated spec, so key order and spelled-out defaults do not matter', () => {
    const a = parseFeatureSpec({ features: [{ type: 'numeric', column: 'x' }] });
    const b = parseFeatureSpec({
      features: [{ transform: 'none', column: 'x', type: 'numeric', impute: 'keep' }],
    });
    const c = parseFeatureSpec({ features: [{ type: 'numeric', column: 'x', transform: 'log1p' }] });
    expect(featureSpecHash(a)).toBe(featureSpecHash(b));
    expect(featureSpecHash(a)).not.toBe(featureSpecHash(c));
    expect(featureSpecHash(a)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('FeatureTransformer', () => {
  const spec = creditSpec();
  const fitted = fitStats(spec, records).finish(new Date('2026-01-02T03:04:05Z'));
  const transformer = new FeatureTransformer(spec, fitted, tables);

  it('names its output columns in a stable order', () => {
    expect(transformer.columns).toEqual([
      'income',
      'age',
      'balance',
      'debt',
      'utilisation',
      'region=north',
      'region=east', // north twice; east and south once each, ties broken by name
      `region=${UNKNOWN_CATEGORY}`,
      ...Array.from({ length: 8 }, (_, i) => `merchant#${i}`),
      'product[0]',
      'product[1]',
    ]);
    expect(transformer.width).toBe(transformer.columns.length);
  });

  it('applies each fitted transform and missing-value policy', () => {
    const stats = fitted.stats;
    expect(stats.income).toMatchObject({ kind: 'numeric', count: 3, missing: 1, mean: 60_000 });
    const row = transformer.transform(records[2]!);
    const income = stats.income as { std: number };
    expect(row[0]).toBeCloseTo(0, 12); // missing -> mean -> standardized 0
    expect(row[1]).toBeCloseTo((40 - 30) / 20, 12);
    expect(row[2]).toBeCloseTo(0, 2); // balance 200 is the median
    expect(row[3]).toBe(0); // missing debt -> constant 0 -> log1p(0)
    expect(row[4]).toBe(0.4);
    expect(income.std).toBeCloseTo(Math.sqrt(200_000_000 / 3), 6);
    const row1 = transformer.transform(records[1]!);
    expect(row1[0]).toBeCloseTo(10_000 / income.std, 12);
    expect(row1[3]).toBeCloseTo(Math.log1p(9), 12);
    expect(row1[4]).toBeNaN(); // keep: missing stays missing for XGBoost
    expect(transformer.transform(records[3]!)[1]).toBeCloseTo(-1.5, 12); // age missing -> zero -> (0 - 30) / 20
  });

  it('robust-scales with the sketch median and IQR', () => {
    const s = parseFeatureSpec({ features: [{ type: 'numeric', column: 'v', transform: 'robust' }] });
    const values = Array.from({ length: 101 }, (_, i) => ({ v: 1000 + i }));
    const t = new FeatureTransformer(s, fitStats(s, values).finish());
    // Median 1050, IQR 50: both within 0.1% of the exact values.
    expect(t.transform({ v: 1100 })[0]).toBeCloseTo(1, 1);
    expect(t.transform({ v: 1050 })[0]).toBeCloseTo(0, 1);
  });

  it('one-hots the top K by frequency and sends unseen and missing categories to __unknown__', () => {
    const at = (name: string) => transformer.columns.indexOf(name);
    const north = transformer.transform({ region: 'north' });
    expect(north[at('region=north')]).toBe(1);
    expect(north[at(`region=${UNKNOWN_CATEGORY}`)]).toBe(0);
    for (const region of ['atlantis', undefined, '']) {
      const row = transformer.transform({ region });
      expect(row[at(`region=${UNKNOWN_CATEGORY}`)]).toBe(1);
      expect(row[at('region=north')]! + row[at('region=east')]!).toBe(0);
    }
  });

  it('hashes categories into the fixed bucket of their MurmurHash3, and missing lights none', () => {
    const start = transformer.columns.indexOf('merchant#0');
    const row = transformer.transform({ merchant: 'm1' });
    const lit = Array.from(row.subarray(start, start + 8));
    expect(lit.reduce((a, b) => a + b, 0)).toBe(1);
    expect(lit.indexOf(1)).toBe(murmur3('m1') % 8);
    expect(Array.from(transformer.transform({}).subarray(start, start + 8))).toEqual(Array(8).fill(0));
  });

  it('looks embeddings up, with zeros for unknown categories', () => {
    const start = transformer.columns.indexOf('product[0]');
    expect(Array.from(transformer.transform({ product: 'card' }).subarray(start))).toEqual([2, 3]);
    expect(Array.from(transformer.transform({ product: 'mortgage' }).subarray(start))).toEqual([0, 0]);
  });

  it('rejects a record whose value cannot be a feature, with the column in the reason', () => {
    expect(() => transformer.transform({ income: 'lots' })).toThrow(FeatureValueError);
    expect(() => transformer.transform({ income: 'lots' })).toThrow(
      'column "income": "lots" is not a number',
    );
    expect(() => transformer.transform({ debt: -3 })).toThrow('column "debt": log1p is undefined for -3');
    expect(() => transformer.transform({ region: { a: 1 } })).toThrow(
      'column "region": a object is not a category',
    );
  });

  it('writes rows into a shared buffer at an offset', () => {
    const out = new Float64Array(transformer.width * 2);
    transformer.transformInto(records[0]!, out, transformer.width);
    expect(Array.from(out.subarray(transformer.width))).toEqual(
      Array.from(transformer.transform(records[0]!)),
    );
  });

  it('transforms a batch into one matrix and lists the records it rejects, with reasons', () => {
    const batch = transformRecords(transformer, [records[0]!, { income: 'lots' }, records[1]!]);
    expect(batch.numRows).toBe(2);
    expect(Array.from(batch.rowIndex)).toEqual([0, 2]);
    expect(batch.rejected).toEqual([{ index: 1, reason: 'column "income": "lots" is not a number' }]);
    expect(Array.from(batch.data.subarray(transformer.width))).toEqual(
      Array.from(transformer.transform(records[1]!)),
    );
  });

  it('refuses statistics of another spec and a table that was not loaded', () => {
    const other = creditSpec({ quantileAccuracy: 0.01 });
    expect(() => new FeatureTransformer(other, fitted, tables)).toThrow(/fitted for another feature spec/);
    expect(() => new FeatureTransformer(spec, fitted)).toThrow(
      'feature "product": embedding table "tables/products.json" was not loaded',
    );
    expect(embeddingTableKeys(spec)).toEqual(['tables/products.json']);
  });
});

describe('fitted statistics artifact', () => {
  const spec = creditSpec();
  const artifact = JSON.parse(
    JSON.stringify(fitStats(spec, records).finish(new Date('2026-01-02T03:04:05Z'))),
  );

  it('is versioned, stamped and survives JSON', () => {
    expect(artifact).toMatchObject({ version: 1, fittedAt: '2026-01-02T03:04:05.000Z', rows: 4 });
    expect(artifact.specHash).toBe(featureSpecHash(spec));
    const loaded = parseFittedFeatures(artifact, spec);
    const a = new FeatureTransformer(spec, loaded, tables).transform(records[0]!);
    const b = new FeatureTransformer(spec, fitStats(spec, records).finish(), tables).transform(records[0]!);
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('is reused unless a refit is asked for or it belongs to another spec', () => {
    expect(decideFit(spec, artifact, false).action).toBe('reuse');
    expect(decideFit(spec, artifact, true)).toEqual({ action: 'fit', reason: 'refit requested' });
    expect(decideFit(spec, undefined, false)).toEqual({ action: 'fit', reason: 'no stored statistics' });
    const changed = decideFit(creditSpec({ quantileAccuracy: 0.01 }), artifact, false);
    expect(changed.action).toBe('fit');
    expect(changed.action === 'fit' && changed.reason).toMatch(/fitted for another feature spec .*; refit/);
    expect(decideFit(spec, { ...artifact, version: 2 }, false).action).toBe('fit');
  });
});

describe('fitting across units', () => {
  const spec = parseFeatureSpec({
    features: [
      { type: 'numeric', column: 'x', transform: 'robust', impute: 'median' },
      { type: 'numeric', column: 'y', transform: 'standardize', impute: 'mean' },
      { type: 'onehot', column: 'c', topK: 3 },
    ],
  });
  const record = fc.record({
    x: fc.oneof(fc.double({ min: -1e4, max: 1e4, noNaN: true }), fc.constant(null)),
    y: fc.oneof(fc.integer({ min: -1000, max: 1000 }).map(String), fc.constant(''), fc.constant('bad')),
    c: fc.oneof(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.constant(undefined)),
  });

  it('merging statistics fitted on any split equals fitting on the whole', () => {
    fc.assert(
      fc.property(
        fc.array(record, { maxLength: 120 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (rows, cuts) => {
          const whole = new FeatureStatsAccumulator(spec);
          for (const r of rows) whole.observe(r);
          const positions = [...new Set(cuts.map((c) => c % (rows.length + 1))), rows.length].sort(
            (a, b) => a - b,
          );
          let start = 0;
          const partials = positions.map((end) => {
            const part = new FeatureStatsAccumulator(spec);
            for (const r of rows.slice(start, end)) part.observe(r);
            start = end;
            return JSON.parse(JSON.stringify(part.toJSON()));
          });
          // Finalize merges the stored partials in reverse, to show the order does not matter.
          const merged = partials
            .reverse()
            .reduce((acc, p) => acc.merge(p), new FeatureStatsAccumulator(spec));
          const at = new Date(0);
          const a = merged.finish(at);
          const b = whole.finish(at);
          expect(a.rows).toBe(b.rows);
          expect(a.stats.c).toEqual(b.stats.c);
          for (const name of ['x', 'y'] as const) {
            const sa = a.stats[name] as unknown as Record<string, number | null>;
            const sb = b.stats[name] as unknown as Record<string, number | null>;
            for (const key of Object.keys(sb)) {
              const va = sa[key];
              const vb = sb[key];
              if (typeof vb === 'number' && typeof va === 'number') {
                expect(Math.abs(va - vb)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(vb)));
              } else expect(va).toEqual(vb);
            }
          }
        },
      ),
    );
  });

  it('counts values that do not parse as invalid instead of failing the fit', () => {
    const acc = new FeatureStatsAccumulator(spec);
    acc.observe({ x: 1, y: 'bad', c: 'a' });
    expect(acc.finish().stats.y).toMatchObject({ invalid: 1, count: 0 });
  });
});

describe('hashing trick', () => {
  it('is MurmurHash3 x86_32 on UTF-8, stable across runs and machines', () => {
    // Published test vectors of MurmurHash3_x86_32.
    expect(murmur3('', 0)).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('', 0xffffffff)).toBe(0x81f16f39);
    expect(murmur3('\0\0\0\0', 0)).toBe(0x2362f9de);
    expect(murmur3('aaaa', 0x9747b28c)).toBe(0x5a97808a);
    expect(murmur3('a', 0x9747b28c)).toBe(0x7fa09ea6);
    expect(murmur3('abc', 0x9747b28c)).toBe(0xc84a62dd);
    expect(murmur3('Hello, world!', 0x9747b28c)).toBe(0x24884cba);
    expect(murmur3('The quick brown fox jumps over the lazy dog', 0x9747b28c)).toBe(0x2fa826cd);
  });

  it('always puts a category in the same bucket, within range', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme' }),
        fc.integer({ min: 2, max: 1 << 20 }),
        (category, buckets) => {
          const a = hashBucket(category, buckets);
          expect(a).toEqual(hashBucket(`${category}`, buckets));
          expect(a.bucket).toBeGreaterThanOrEqual(0);
          expect(a.bucket).toBeLessThan(buckets);
        },
      ),
    );
  });
});

describe('parseEmbeddingTable', () => {
  it('reads CSV with or without a header', () => {
    const withHeader = parseEmbeddingTable('product,e0,e1\nloan,0.5,-1\ncard,2,3\n', {
      format: 'csv',
      dimension: 2,
    });
    expect([...withHeader.keys()]).toEqual(['loan', 'card']);
    expect(Array.from(withHeader.get('loan')!)).toEqual([0.5, -1]);
    expect(parseEmbeddingTable('loan,0.5,-1', { format: 'csv', dimension: 2 }).size).toBe(1);
  });

  it('fails in one line on a vector of the wrong size or a non-number', () => {
    expect(() =>
      parseEmbeddingTable('{"a": [1]}', { format: 'json', dimension: 2, source: 't.json' }),
    ).toThrow('t.json: "a": has 1 values, the feature\'s dimension is 2');
    expect(() =>
      parseEmbeddingTable('a,1,2\nb,1,x', { format: 'csv', dimension: 2, source: 't.csv' }),
    ).toThrow('t.csv: line 2: value 2 is not a finite number');
  });
});
