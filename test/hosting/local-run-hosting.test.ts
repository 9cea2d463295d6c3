import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyPipelines, queryRows, runPipeline, scoreInWorker } from '../support/pipeline-folder.ts';

const SAMPLE = 'events/data/credit-sample.csv';
const MULTICLASS = 'events/fixtures/xgboost/multiclass';

/** A copy of the shipped pipelines folder under `dir` with credit-risk scored in the worker. */
const inWorkerPipelines = (dir: string) => copyPipelines(dir, { 'credit-risk': scoreInWorker });

/** Runs a pipeline into a fresh home and reads its scores back in line order. */
async function scoresOf(work: string, label: string, pipelines: string, pipeline: string, input: string) {
  const home = path.join(work, `home-${label}`);
  const run = await runPipeline({ input, pipeline, pipelines, home }, '--json');
  expect(run.code, run.err.join('\n')).toBe(0);
  const summary = run.json();
  const rows = await queryRows(
    home,
    `select record_id, line, score, model, source_key from scores where run_id = '${summary.runId}' order by line`,
  );
  return { summary, rows, err: run.err };
}

describe('sluice run by model.hosting', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-hosting-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('scores credit-risk in the worker exactly as through the model server (hosting instance)', async () => {
    const inWorker = await inWorkerPipelines(path.join(work, 'a'));
    const worker = await scoresOf(work, 'in-worker', inWorker, 'credit-risk', SAMPLE);
    const served = await scoresOf(work, 'instance', 'pipelines', 'credit-risk', SAMPLE);

    expect(worker.err.some((l) => l.startsWith('in-worker scoring: xgboost-json:model.json@'))).toBe(true);
    expect(worker.err.some((l) => l.startsWith('model server:'))).toBe(false);
    expect(served.err.some((l) => l.startsWith('model server:'))).toBe(true);

    expect(worker.summary.counts).toMatchObject({ scored: 2000, rejected: 3 });
    expect(worker.summary.counts.scored).toBe(served.summary.counts.scored);
    expect(worker.summary.stats.endpointCalls).toBe(0);
    expect(served.summary.stats.endpointCalls).toBeGreaterThan(0);
    expect(worker.rows).toHaveLength(2000);
    // Same rows, same scores to the bit, and the same model id (the file's digest).
    expect(worker.rows).toEqual(served.rows);
  });

  it('applies model.scoreClass to multi:softprob outputs as the endpoint path does', async () => {
    const dir = path.join(work, 'multi');
    const pipelines = path.join(dir, 'pipelines');
    await mkdir(path.join(pipelines, 'models', 'tri'), { recursive: true });
    await cp(path.join(MULTICLASS, 'model.json'), path.join(pipelines, 'models', 'tri', 'model.json'));
    const rows = (await readFile(path.join(MULTICLASS, 'rows.csv'), 'utf8')).trim().split('\n');
    const input = path.join(dir, 'tri.csv');
    const columns = Array.from({ length: 8 }, (_, i) => `c${i}`);
    await writeFile(
      input,
      `${['id', ...columns].join(',')}\n${rows.map((r, i) => `row-${i},${r}`).join('\n')}\n`,
    );
    const config = (hosting: string) => ({
      name: 'tri',
      kind: 'score',
      input: { format: 'auto', idField: 'id' },
      featureSpec: { features: columns.map((column) => ({ column, type: 'numeric' })) },
      featureStats: { key: 'models/tri/feature-stats.json' },
      model: {
        endpointName: 'sluice-tri',
        modelKey: 'models/tri/model.json',
        hosting,
        scoreClass: 2,
      },
    });
    await writeFile(path.join(pipelines, 'tri.json'), JSON.stringify(config('in-worker')));
    const worker = await scoresOf(work, 'tri-in-worker', pipelines, 'tri', input);
    await writeFile(path.join(pipelines, 'tri.json'), JSON.stringify(config('serverless')));
    const served = await scoresOf(work, 'tri-serverless', pipelines, 'tri', input);

    expect(worker.rows).toHaveLength(rows.length);
    expect(worker.rows).toEqual(served.rows);
    // The third class's probability, as XGBoost gives it.
    const expected = (await readFile(path.join(MULTICLASS, 'expected.csv'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => Number(line.split(',')[2]));
    worker.rows.forEach((row: { score: number }, i: number) => {
      expect(Math.abs(row.score - expected[i]!)).toBeLessThan(1e-6);
    });
  });

  it('stops with one line, before any unit runs, when the in-worker model is corrupt', async () => {
    const pipelines = await inWorkerPipelines(path.join(work, 'corrupt'));
    await writeFile(
      path.join(pipelines, 'models', 'credit-risk', 'model.json'),
      '{"learner": {"gradient_booster": ',
    );
    const home = path.join(work, 'home-corrupt');
    const run = await runPipeline({ input: SAMPLE, pipeline: 'credit-risk', pipelines, home });
    expect(run.code).toBe(2);
    const errors = run.err.filter((l) => l.includes('model.json'));
    expect(errors.at(-1)).toMatch(
      /^sluice run: models\/credit-risk\/model\.json: not valid JSON \([^\n]+\)$/,
    );
    expect(run.err.some((l) => l.startsWith('run '))).toBe(false);
  });

  it('refuses --endpoint-url for a pipeline that scores in the worker, saying how to call a server', async () => {
    const pipelines = await inWorkerPipelines(path.join(work, 'url'));
    const home = path.join(work, 'home-url');
    const run = await runPipeline(
      { input: SAMPLE, pipeline: 'credit-risk', pipelines, home },
      '--endpoint-url',
      'http://127.0.0.1:9',
    );
    expect(run.code).toBe(2);
    expect(run.err.at(-1)).toBe(
      'sluice run: --endpoint-url: pipeline credit-risk scores in the worker (model.hosting in-worker) and calls no endpoint; set model.hosting to serverless or instance to call a server',
    );
  });
});
