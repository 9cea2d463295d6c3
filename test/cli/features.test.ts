import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFeatureSpec } from '../../shared/scoring/features/feature-spec.ts';
import { sluice } from '../support/cli.ts';

const FIXTURE = 'events/fixtures/byom';
const MODEL = `${FIXTURE}/model.json`;
const ROWS = `${FIXTURE}/patients.csv`;

describe('sluice features', () => {
  let work: string;
  let names: string[];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-features-'));
    names = JSON.parse(await readFile(MODEL, 'utf8')).learner.feature_names;
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('prints the spec inferred from the model, as JSON that is a valid featureSpec', async () => {
    const result = await sluice('features', ROWS, '--model', MODEL);
    expect(result.code, result.err.join('\n')).toBe(0);
    const spec = parseFeatureSpec(JSON.parse(result.out.join('\n')));
    expect(spec.features.map((f) => f.column)).toEqual(names);
    const lines = result.out.join('\n').split('\n');
    expect(lines.slice(0, 3)).toEqual([
      '{',
      '  "features": [',
      '    { "type": "numeric", "column": "mean radius" },',
    ]);
    expect(result.err).toEqual([
      `30 numeric columns from the model's feature names, 0 exceptions; every column is in ${ROWS}`,
    ]);
  });

  it("puts a pipeline's exceptions in place and checks them against the model", async () => {
    const dir = path.join(work, 'pipelines');
    await mkdir(dir, { recursive: true });
    const config = (features: unknown[]) => ({
      name: 'cancer',
      kind: 'score',
      input: { idField: 'patient_id' },
      featureSpec: { infer: true, features },
      model: { modelKey: 'models/cancer/model.json' },
    });
    await writeFile(
      path.join(dir, 'cancer.json'),
      JSON.stringify(config([{ type: 'numeric', column: 'mean area', transform: 'log1p' }])),
    );
    const result = await sluice(
      'features',
      ROWS,
      '--model',
      MODEL,
      '--pipeline',
      'cancer',
      '--pipelines',
      dir,
    );
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(result.out.join('\n').split('\n')).toContain(
      '    { "type": "numeric", "column": "mean area", "transform": "log1p" },',
    );

    await writeFile(
      path.join(dir, 'cancer.json'),
      JSON.stringify(config([{ type: 'numeric', column: 'mean aera', transform: 'log1p' }])),
    );
    const typo = await sluice('features', ROWS, '--model', MODEL, '--pipeline', 'cancer', '--pipelines', dir);
    expect(typo.code).toBe(2);
    expect(typo.err).toEqual([
      expect.stringMatching(
        /^sluice features: featureSpec.features: "mean aera" \(numeric\) names no feature of model /,
      ),
    ]);
  });

  it('refuses an input whose header lacks a model feature, and a model without names, in one line each', async () => {
    const renamed = path.join(work, 'renamed.csv');
    await writeFile(renamed, (await readFile(ROWS, 'utf8')).replace('mean radius', 'radius'));
    const missing = await sluice('features', renamed, '--model', MODEL);
    expect(missing.code).toBe(2);
    expect(missing.err).toEqual([
      expect.stringMatching(
        /^sluice features: featureSpec reads column "mean radius", which .*renamed.csv does not have/,
      ),
    ]);

    const model = JSON.parse(await readFile(MODEL, 'utf8'));
    model.learner.feature_names = [];
    const unnamed = path.join(work, 'unnamed.json');
    await writeFile(unnamed, JSON.stringify(model));
    const noNames = await sluice('features', ROWS, '--model', unnamed);
    expect(noNames.code).toBe(2);
    expect(noNames.err).toHaveLength(1);
    expect(noNames.err[0]).toMatch(
      /has none \(30 unnamed features\): list the features in featureSpec.features/,
    );
  });

  it('has --help, and bad usage exits 2 with one line', async () => {
    const help = await sluice('features', '--help');
    expect(help.code).toBe(0);
    expect(help.out[0]).toMatch(/^usage: sluice features PATH --model FILE/);
    for (const [args, line] of [
      [
        ['--model', MODEL],
        'sluice features: give one input PATH (a CSV, JSONL or Parquet file), e.g. sluice features data.csv --model model.json',
      ],
      [[ROWS], 'sluice features: --model FILE is required (an XGBoost JSON model saved with feature names)'],
      [[ROWS, '--model', MODEL, '--modle', 'x'], "sluice features: Unknown option '--modle'"],
      [
        [ROWS, '--model', path.join(work, 'nope.json')],
        `sluice features: --model: no file ${path.join(work, 'nope.json')}`,
      ],
      [
        [path.join(work, 'nope.csv'), '--model', MODEL],
        `sluice features: input path not found: ${path.join(work, 'nope.csv')}`,
      ],
    ] as const) {
      const result = await sluice('features', ...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.err).toEqual([line]);
    }
  });
});
