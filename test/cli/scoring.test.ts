import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sluice } from '../support/cli.ts';
import { copyPipelines, queryRows, runPipeline } from '../support/pipeline-folder.ts';

const SAMPLE = 'events/data/credit-sample.csv';

describe('scoring pipeline (credit-risk)', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-score-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('scores every customer or rejects it with a reason, and reports segment rates two ways', async () => {
    const home = path.join(work, 'home');
    const run = await sluice('run', SAMPLE, '--pipeline', 'credit-risk', '--home', home, '--json');
    expect(run.code, run.err.join('\n')).toBe(0);
    const summary = run.json();
    const lines = (await readFile(SAMPLE, 'utf8')).trim().split('\n').length - 1;
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: lines, scored: lines - 3, rejected: 3 },
    });

    const q = (sql: string) => queryRows(home, sql);
    const [{ scored, distinctLines }] = await q(
      `select count(*) as scored, count(distinct line) as "distinctLines" from scores where run_id = '${summary.runId}'`,
    );
    expect(scored).toBe(lines - 3);
    expect(distinctLines).toBe(scored);
    const rejects = await q(
      `select line, reason from rejects where run_id = '${summary.runId}' order by line`,
    );
    expect(rejects.map((r: { reason: string }) => r.reason)).toEqual([
      'CSV row has 8 fields, the header has 10',
      'column "age": "thirty" is not a number',
      'column "income": "1,2e" is not a number',
    ]);
    const [{ overlap }] = await q(
      `select count(*) as overlap from scores s join rejects r using (run_id, line) where s.run_id = '${summary.runId}'`,
    );
    expect(overlap).toBe(0);
    const scores = await q(
      `select min(score) as lo, max(score) as hi from scores where run_id = '${summary.runId}'`,
    );
    expect(scores[0].lo).toBeGreaterThanOrEqual(0);
    expect(scores[0].hi).toBeLessThanOrEqual(1);

    const stats = await q(
      `select segment, count, trials, positives, rate_mle, rate_map from segment_stats where run_id = '${summary.runId}'`,
    );
    expect(stats.reduce((n: number, s: { count: number }) => n + s.count, 0)).toBe(lines - 3);
    for (const s of stats) {
      expect(s.rate_map).toBeGreaterThan(0);
      expect(s.rate_map).toBeLessThan(1);
      if (s.trials > 0) expect(s.rate_mle).toBeCloseTo(s.positives / s.trials, 12);
    }
    // The same statistics are kept by run and segment for key lookups (DynamoDB deployed).
    const { openHome } = await import('../../cli/home.ts');
    expect(await openHome(home).segmentStats.listSegments(summary.runId)).toHaveLength(stats.length);
    // Tiny segments with no positives read 0% by MLE, but not under the shrunk estimate.
    expect(
      stats.some(
        (s: { count: number; rate_mle: number; rate_map: number }) =>
          s.count < 10 && s.rate_mle === 0 && s.rate_map > 0,
      ),
    ).toBe(true);
  });

  it('fits feature statistics first when none are stored, then scores with them', async () => {
    const pipelines = await copyPipelines(work, {
      'credit-risk': (config) => {
        config.featureStats = { key: 'models/credit-risk/fitted-here.json', refit: false };
      },
    });
    const home = path.join(work, 'fit-home');
    const where = { input: SAMPLE, pipeline: 'credit-risk', pipelines, home };

    const run = await runPipeline(where, '--json');
    expect(run.code, run.err.join('\n')).toBe(0);
    const summary = run.json();
    expect(summary.counts.scored).toBe(2000);
    expect(run.err.some((l) => l.includes('(stages: fit, score)'))).toBe(true);
    expect(summary.stages.map((s: { name: string }) => s.name)).toEqual(['fit', 'score']);
    const fitted = JSON.parse(
      await readFile(path.join(home, 'bucket', 'models', 'credit-risk', 'fitted-here.json'), 'utf8'),
    );
    // Every row the reader accepted was observed, including the two whose values fail as features.
    expect(fitted).toMatchObject({ version: 1, rows: 2002 });

    // Fit and score are two stages of one run: one row in `runs`, both stages in its status.
    const runs = await queryRows(home, 'select run_id, status, scored from runs order by run_id');
    expect(runs).toEqual([{ run_id: summary.runId, status: 'succeeded', scored: 2000 }]);
    const status = (await sluice('status', summary.runId, '--home', home, '--json')).json();
    expect(status).toMatchObject({ stage: 'score', stages: ['fit', 'score'], status: 'succeeded' });
    const unitStages = new Set(status.units.map((u: { stage: string }) => u.stage));
    expect([...unitStages].sort()).toEqual(['fit', 'score']);
    const text = await sluice('status', summary.runId, '--home', home);
    expect(text.out[0]).toContain('stage score (2/2)');

    // The next run reuses the stored statistics: no second fit.
    const again = await runPipeline(where, '--json');
    expect(again.err.some((l) => l.includes('(stages: fit, score)'))).toBe(false);
    expect(again.json().stages.map((s: { name: string }) => s.name)).toEqual(['score']);
  });
});
