/**
 * Builds the credit-risk sample end to end, deterministically:
 *   events/data/credit-sample.csv                          2,000 customers to score (a few bad rows on purpose)
 *   pipelines/models/credit-risk/occupation-embedding.json  the occupation lookup table
 *   pipelines/models/credit-risk/feature-stats.json         feature statistics fitted on the training customers
 *   pipelines/models/credit-risk/model.json                 XGBoost binary:logistic trained on those features
 * The model is trained by XGBoost itself (`/usr/bin/python3 scripts/train-credit-risk.py`,
 * Debian's python3-xgboost) on features made by Sluice's own transformer, so training
 * and scoring share one feature definition and one set of statistics.
 *
 * Run: npx tsx scripts/credit-risk-sample.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../events/generate-samples.ts';
import { parseEmbeddingTable } from '../shared/scoring/features/embedding-table.ts';
import { parseFeatureSpec } from '../shared/scoring/features/feature-spec.ts';
import { FeatureTransformer } from '../shared/scoring/features/feature-transformer.ts';
import { FeatureStatsAccumulator } from '../shared/scoring/features/fit-features.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = path.join(root, 'pipelines', 'models', 'credit-risk');

const REGIONS = ['north', 'south', 'east', 'west', 'central', 'islands', 'overseas'];
const PRODUCTS = ['card', 'loan', 'mortgage', 'overdraft', 'auto'];
const OCCUPATIONS = [
  'engineer',
  'teacher',
  'nurse',
  'driver',
  'retail',
  'student',
  'retired',
  'self-employed',
];

type Customer = Record<string, string | number>;

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Customers whose default probability depends nonlinearly on their attributes. */
export function customers(count: number, seed: number): Customer[] {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const age = Math.round(Math.min(85, Math.max(18, 42 + 13 * gaussian(rand))));
    const income = Math.round(Math.exp(10.4 + 0.6 * gaussian(rand)));
    const debtRatio = Math.max(0, 0.35 + 0.2 * gaussian(rand));
    const employment = Math.max(0, Math.round(Math.min(age - 18, Math.abs(8 + 7 * gaussian(rand)))));
    const late = Math.floor(-Math.log(1 - rand()) * (debtRatio > 0.5 ? 2 : 0.6));
    // Skewed segments: most customers in a few regions, one tiny region.
    const region = REGIONS[Math.min(REGIONS.length - 1, Math.floor(-Math.log(1 - rand()) * 1.6))]!;
    const product = PRODUCTS[Math.floor(rand() * PRODUCTS.length)]!;
    const occupation = OCCUPATIONS[Math.floor(rand() * OCCUPATIONS.length)]!;
    const logit =
      -2.2 +
      3.0 * (debtRatio - 0.35) +
      0.55 * late -
      0.4 * Math.log(income / 30000) -
      0.02 * (age - 42) +
      (product === 'overdraft' ? 0.6 : 0) +
      (occupation === 'student' ? 0.4 : 0);
    const defaulted = rand() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    const row: Customer = {
      customer_id: `c-${String(seed).slice(-2)}${String(i + 1).padStart(6, '0')}`,
      age,
      income,
      debt_ratio: Number(debtRatio.toFixed(4)),
      employment_years: employment,
      late_payments: late,
      region,
      product,
      occupation,
      defaulted,
    };
    // Real exports have holes.
    if (rand() < 0.04) row.income = '';
    if (rand() < 0.03) row.debt_ratio = 'NA';
    if (rand() < 0.02) row.occupation = '';
    return row;
  });
}

/** The sample's CSV columns, in file order. */
export const CUSTOMER_COLUMNS = [
  'customer_id',
  'age',
  'income',
  'debt_ratio',
  'employment_years',
  'late_payments',
  'region',
  'product',
  'occupation',
  'defaulted',
];
/** Customers as CSV lines (no header, no final newline). */
export const customerCsvLines = (rows: Customer[]): string =>
  rows.map((r) => CUSTOMER_COLUMNS.map((c) => String(r[c] ?? '')).join(',')).join('\n');
const toCsv = (rows: Customer[]) => `${CUSTOMER_COLUMNS.join(',')}\n${customerCsvLines(rows)}`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const config = JSON.parse(readFileSync(path.join(root, 'pipelines', 'credit-risk.json'), 'utf8'));
  const spec = parseFeatureSpec(config.featureSpec, 'pipelines/credit-risk.json: featureSpec');

  const table = Object.fromEntries(OCCUPATIONS.map((o, i) => [o, [Math.cos(i), Math.sin(i), (i % 3) - 1]]));
  const tableText = `${JSON.stringify(table, null, 2)}\n`;
  writeFileSync(path.join(modelDir, 'occupation-embedding.json'), tableText);

  const training = customers(6000, 11);
  const fit = new FeatureStatsAccumulator(spec);
  for (const row of training) fit.observe(row);
  const fitted = fit.finish(new Date('2026-11-28T00:00:00.000Z'));
  writeFileSync(path.join(modelDir, 'feature-stats.json'), `${JSON.stringify(fitted, null, 2)}\n`);

  const tables = new Map([
    [
      'models/credit-risk/occupation-embedding.json',
      parseEmbeddingTable(tableText, { format: 'json', dimension: 3 }),
    ],
  ]);
  const transformer = new FeatureTransformer(spec, fitted, tables);
  const work = mkdtempSync(path.join(tmpdir(), 'credit-train-'));
  try {
    const lines = training.map((row) =>
      [
        row.defaulted,
        ...Array.from(transformer.transform(row), (v) => (Number.isNaN(v) ? '' : String(v))),
      ].join(','),
    );
    writeFileSync(path.join(work, 'train.csv'), `${lines.join('\n')}\n`);
    execFileSync(
      '/usr/bin/python3',
      [
        path.join(root, 'scripts', 'train-credit-risk.py'),
        path.join(work, 'train.csv'),
        path.join(modelDir, 'model.json'),
      ],
      { stdio: 'inherit' },
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const sample = customers(2000, 29);
  const bad = [
    'c-bad-01,41,52000,0.3,5,0,north,card',
    'c-bad-02,thirty,41000,0.2,3,0,south,loan,teacher,0',
    'c-bad-03,55,"1,2e",0.4,10,1,east,card,nurse,0',
  ];
  const csv = `${toCsv(sample)
    .split('\n')
    .flatMap((line, i) => (i === 500 ? [line, bad[0]!] : i === 1200 ? [line, bad[1]!, bad[2]!] : [line]))
    .join('\n')}\n`;
  writeFileSync(path.join(root, 'events', 'data', 'credit-sample.csv'), csv);
  console.log(
    `wrote ${sample.length} customers (+${bad.length} bad rows), feature stats (${transformer.width} columns) and the model`,
  );
}
