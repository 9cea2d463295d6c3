import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sluice } from '../support/cli.ts';
import {
  copyPipelines,
  editPipeline,
  queryRows,
  runPipeline,
  scoreInWorker,
  writePipeline,
} from '../support/pipeline-folder.ts';

const SAMPLE = 'events/data/credit-sample.csv';

describe('sluice run of a score pipeline with explain.topK and output.passThrough', () => {
  let work: string;
  let pipelines: string;
  /** The input columns of credit-risk's features (`featureSpec.features[].column`). */
  let inputs: string[];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-explain-cli-'));
    pipelines = await copyPipelines(work);
    const explained = await editPipeline(pipelines, 'credit-risk', (config) => {
      scoreInWorker(config);
      config.explain = { topK: 3 };
      config.output = { passThrough: ['region', { column: 'defaulted', type: 'bigint' }] };
    });
    const { features } = explained.featureSpec as { features: { column: string }[] };
    inputs = features.map((feature) => feature.column);
    const hosted = { ...explained, name: 'hosted', model: { ...explained.model, hosting: 'serverless' } };
    await writePipeline(pipelines, 'hosted', hosted);
    const misspelt = { ...explained, name: 'misspelt', output: { passThrough: ['customer_id', 'regoin'] } };
    await writePipeline(pipelines, 'misspelt', misspelt);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('writes three reasons and the pass-through columns on every scored row, queryable with SQL', async () => {
    const home = path.join(work, 'home');
    const run = await runPipeline({ input: SAMPLE, pipeline: 'credit-risk', pipelines, home }, '--json');
    expect(run.code, run.err.join('\n')).toBe(0);
    const summary = run.json();
    expect(summary).toMatchObject({ status: 'succeeded', counts: { scored: 2000, rejected: 3 } });
    const rows = await queryRows(
      home,
      `select record_id, region, defaulted, json_array_length(reasons) as n, reasons->>'$[0].feature' as top from scores where run_id = '${summary.runId}' order by line`,
    );
    expect(rows).toHaveLength(2000);
    expect(rows[0]).toMatchObject({ record_id: 'c-29000001', region: 'north', defaulted: 0, n: 3 });
    // A reason names the input column of one of the pipeline's features (all eight here).
    expect(inputs).toHaveLength(8);
    for (const row of rows) expect(inputs).toContain(row.top);
  }, 120_000);

  it('refuses explain with a model hosted on an endpoint: exit 2, one line', async () => {
    const run = await runPipeline({
      input: SAMPLE,
      pipeline: 'hosted',
      pipelines,
      home: path.join(work, 'h2'),
    });
    expect(run.code).toBe(2);
    const line = run.err.find((l: string) => l.includes('explain.topK'));
    expect(line).toMatch(
      /explain\.topK: reason codes need model\.hosting "in-worker" \(this pipeline has "serverless"\)/,
    );
  });

  it('stops at plan with exit 2 and one line naming a misspelt pass-through column and the header name meant', async () => {
    const home = path.join(work, 'h3');
    const run = await runPipeline({ input: SAMPLE, pipeline: 'misspelt', pipelines, home });
    expect(run.code).toBe(2);
    expect(run.err.at(-1)).toMatch(
      /^sluice run: output\.passThrough reads column "regoin", which incoming\/misspelt\/credit-sample\.csv does not have \(its columns: "customer_id", .*\); did you mean "region"\?$/,
    );
    // Nothing was queued: the run never reached a unit.
    const status = await sluice('status', '--home', home, '--json');
    expect(status.json()).toEqual([]);
  });
});
