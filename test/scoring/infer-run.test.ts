import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sluice } from '../support/cli.ts';

/**
 * Bring your own model (issue 16, items 2 and 4): an XGBoost model trained in Python on
 * named columns (scripts/fixtures/make-byom-fixture.py), scored by a pipeline that names
 * only its model.
 */
const FIXTURE = 'events/fixtures/byom';
const ROWS = `${FIXTURE}/patients.csv`;

describe('a model trained with feature names, scored with an inferred spec', () => {
  let work: string;
  let names: string[];
  let modelText: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-byom-'));
    modelText = await readFile(`${FIXTURE}/model.json`, 'utf8');
    names = JSON.parse(modelText).learner.feature_names;
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** A pipelines folder holding `cancer.json` (the given config) and the model beside it. */
  async function pipelinesWith(label: string, config: Record<string, unknown>, model = modelText) {
    const dir = path.join(work, label, 'pipelines');
    await mkdir(path.join(dir, 'models', 'cancer'), { recursive: true });
    await writeFile(path.join(dir, 'models', 'cancer', 'model.json'), model);
    await writeFile(
      path.join(dir, 'cancer.json'),
      JSON.stringify({ name: 'cancer', kind: 'score', input: { idField: 'patient_id' }, ...config }),
    );
    return dir;
  }

  const run = (label: string, dir: string, input = ROWS) =>
    sluice(
      'run',
      input,
      '--pipeline',
      'cancer',
      '--pipelines',
      dir,
      '--home',
      path.join(work, label, 'home'),
      '--json',
    );

  it('scores as XGBoost does from a config naming only the model: no featureSpec, featureStats or endpoint name', async () => {
    const dir = await pipelinesWith('minimal', { model: { modelKey: 'models/cancer/model.json' } });
    const result = await run('minimal', dir);
    expect(result.code, result.err.join('\n')).toBe(0);
    const summary = result.json();
    // One score stage: nothing in the spec needs fitted statistics, so no fit pass.
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: 569, scored: 569, rejected: 0 },
    });
    expect(summary.stages.map((s: { name: string }) => s.name)).toEqual(['score']);
    // The unit's measured work is rows x the 30 inferred columns (the exceptions alone would be 0).
    const status = (
      await sluice('status', summary.runId, '--home', path.join(work, 'minimal', 'home'), '--json')
    ).json<{ units: { actualCost: number }[] }>();
    expect(status.units.map((u) => u.actualCost)).toEqual([569 * 30]);

    const rows = (
      await sluice(
        'query',
        `select record_id, score from scores where run_id = '${summary.runId}' order by record_id`,
        '--home',
        path.join(work, 'minimal', 'home'),
        '--json',
      )
    ).json<{ record_id: string; score: number }[]>();
    const expected = (await readFile(`${FIXTURE}/expected.csv`, 'utf8'))
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(','));
    expect(rows.map((r) => r.record_id)).toEqual(expected.map(([id]) => id));
    let worst = 0;
    rows.forEach((r, i) => {
      worst = Math.max(worst, Math.abs(r.score - Number(expected[i]![1])));
    });
    expect(worst).toBeLessThan(1e-6);
  });

  it('prices a run of an inferred spec by its rows (sluice cost used to see no feature, so no row)', async () => {
    const dir = await pipelinesWith('cost', { model: { modelKey: 'models/cancer/model.json' } });
    const result = await sluice(
      'cost',
      ROWS,
      '--pipeline',
      'cancer',
      '--pipelines',
      dir,
      '--runs-per-month',
      '30',
    );
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(result.out[0]).toMatch(/^cancer: 1 file\(s\), about 5\d\d rows in 1 unit\(s\)/);
  });

  it('stops before any unit when the input lacks a column the model names', async () => {
    const dir = await pipelinesWith('renamed', { model: { modelKey: 'models/cancer/model.json' } });
    const input = path.join(work, 'renamed.csv');
    const text = await readFile(ROWS, 'utf8');
    await writeFile(input, text.replace('worst symmetry', 'worst symetry'));
    const result = await run('renamed', dir, input);
    expect(result.code).toBe(2);
    expect(result.err.at(-1)).toMatch(
      /^sluice run: featureSpec reads column "worst symmetry", which incoming\/cancer\/renamed.csv does not have \(its columns: .*\); did you mean "worst symetry"\?$/,
    );
  });

  it('stops a spec with a misspelt column that a model without names cannot catch (it used to score every row with it missing)', async () => {
    const unnamed = JSON.parse(modelText);
    unnamed.learner.feature_names = [];
    unnamed.learner.feature_types = [];
    const features = names.map((column) => ({
      type: 'numeric',
      column: column === 'mean texture' ? 'mean texure' : column,
    }));
    const dir = await pipelinesWith(
      'typo',
      {
        featureSpec: { features },
        featureStats: { key: 'models/cancer/feature-stats.json' },
        model: { endpointName: 'cancer', modelKey: 'models/cancer/model.json' },
      },
      JSON.stringify(unnamed),
    );
    const result = await run('typo', dir);
    expect(result.code).toBe(2);
    expect(result.err.at(-1)).toMatch(
      /^sluice run: featureSpec reads column "mean texure", which incoming\/cancer\/patients.csv does not have \(.*\); did you mean "mean texture"\?$/,
    );
  });

  it('says what to write when the model has no feature names and the pipeline no spec', async () => {
    const unnamed = JSON.parse(modelText);
    unnamed.learner.feature_names = [];
    const dir = await pipelinesWith(
      'no-names',
      { model: { modelKey: 'models/cancer/model.json' } },
      JSON.stringify(unnamed),
    );
    const result = await run('no-names', dir);
    expect(result.code).toBe(2);
    expect(result.err.at(-1)).toMatch(
      /^sluice run: featureSpec is inferred from the model's feature names, but pipeline cancer, model models\/cancer\/model.json has none \(30 unnamed features\): list the features in featureSpec.features/,
    );
  });

  it('applies the exceptions the pipeline writes in place of the inferred columns, fitting their statistics in the same run', async () => {
    const dir = await pipelinesWith('exceptions', {
      featureSpec: { infer: true, features: [{ type: 'numeric', column: 'mean area', impute: 'median' }] },
      model: { modelKey: 'models/cancer/model.json' },
    });
    await cp(ROWS, path.join(work, 'exceptions.csv'));
    const result = await run('exceptions', dir, path.join(work, 'exceptions.csv'));
    expect(result.code, result.err.join('\n')).toBe(0);
    const summary = result.json();
    expect(summary.stages.map((s: { name: string }) => s.name)).toEqual(['fit', 'score']);
    expect(summary.counts).toMatchObject({ records: 569, scored: 569 });
    const stored = JSON.parse(
      await readFile(
        path.join(work, 'exceptions', 'home', 'bucket', 'models', 'cancer', 'feature-stats.json'),
        'utf8',
      ),
    );
    expect(Object.keys(stored.stats)).toHaveLength(30);
    expect(stored.stats['mean area'].median).toBeGreaterThan(0);
  });
});
