import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejectFailureOf } from '../../shared/finalize/tolerated-rejects.ts';
import { sluice } from '../support/cli.ts';

describe('sluice run with run.toleratedRejectPercent', () => {
  let work: string;
  let pipelines: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-tolerated-'));
    pipelines = path.join(work, 'pipelines');
    const docs = JSON.parse(await readFile('pipelines/docs.json', 'utf8'));
    // The user's mistake: the documents' text is under `text`, the config says `body`.
    const wrongField = { ...docs, name: 'wrong-field', input: { ...docs.input, textField: 'body' } };
    const lenient = { ...wrongField, name: 'lenient', run: { toleratedRejectPercent: 100 } };
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, 'wrong-field.json'), JSON.stringify(wrongField));
    await writeFile(path.join(pipelines, 'lenient.json'), JSON.stringify(lenient));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('fails a run whose every record is rejected by a wrong field name: exit 1, the reason on stderr and in status', async () => {
    const home = path.join(work, 'home');
    const run = await sluice(
      'run',
      'events/data/docs-sample.jsonl',
      '--pipeline',
      'wrong-field',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    const reason = 'rejects 100% of 300 records exceed run.toleratedRejectPercent 10';
    expect(run.code).toBe(1);
    const summary = run.json();
    expect(summary).toMatchObject({
      status: 'failed',
      failureReason: reason,
      counts: { records: 300, rejected: 300 },
      failedUnits: [],
    });
    expect(run.err).toContain(`run ${summary.runId} failed: ${reason}`);

    // The rejects are written all the same, each with its own reason.
    const rejects = await sluice(
      'query',
      `select count(*) as n from rejects where run_id = '${summary.runId}'`,
      '--home',
      home,
      '--json',
    );
    expect(rejects.json()).toEqual([{ n: 300 }]);

    const status = await sluice('status', summary.runId, '--home', home);
    expect(status.code).toBe(0);
    expect(status.out[0]).toContain(`${summary.runId}  wrong-field  failed`);
    expect(status.out).toContain(`  failed: ${reason}`);
    const statusJson = await sluice('status', summary.runId, '--home', home, '--json');
    expect(statusJson.json()).toMatchObject({ status: 'failed', summary: { failureReason: reason } });
  });

  it('lets the same run succeed where the pipeline tolerates every reject', async () => {
    const run = await sluice(
      'run',
      'events/data/docs-sample.jsonl',
      '--pipeline',
      'lenient',
      '--pipelines',
      pipelines,
      '--home',
      path.join(work, 'lenient-home'),
    );
    expect(run.code).toBe(0);
    expect(run.out[0]).toMatch(/ succeeded: 300 records, .*300 rejected/);
  });

  it('judges a fit-then-score run once, at its end, over the records its summary counts', async () => {
    const [header, ...rows] = (await readFile('events/data/credit-sample.csv', 'utf8')).trim().split('\n');
    // Every fifth customer with a word where a number belongs: about 20% rejected (the sample has 3 bad rows of its own).
    const customers = rows.map((row, i) => (i % 5 === 0 ? row.replace(/^([^,]*),\d+,/, '$1,thirty,') : row));
    const file = path.join(work, 'customers.csv');
    // Statistics fitted by this run (a fit stage, then the score stage), not the shipped ones.
    const scoring = path.join(work, 'scoring-pipelines');
    await cp('pipelines/models', path.join(scoring, 'models'), { recursive: true });
    const credit = JSON.parse(await readFile('pipelines/credit-risk.json', 'utf8'));
    credit.featureStats = { ...credit.featureStats, refit: true };
    await writeFile(path.join(scoring, 'credit-risk.json'), JSON.stringify(credit));
    await writeFile(file, `${[header, ...customers].join('\n')}\n`);
    const run = await sluice(
      'run',
      file,
      '--pipeline',
      'credit-risk',
      '--pipelines',
      scoring,
      '--home',
      path.join(work, 'score-home'),
      '--json',
    );
    expect(run.code, run.err.join('\n')).toBe(1);
    const summary = run.json();
    const { records, rejected, scored } = summary.counts;
    expect(records).toBe(rows.length);
    expect(rejected).toBeGreaterThanOrEqual(Math.ceil(rows.length / 5));
    expect(scored).toBe(records - rejected);
    expect(summary).toMatchObject({
      status: 'failed',
      failureReason: rejectFailureOf({ records, rejected }, 10),
      failedUnits: [],
      // The fit stage reads the same records but rejects fewer (it only gathers statistics):
      // the rule is the score stage's, whose counts are the summary's.
      stages: [
        { name: 'fit', records },
        { name: 'score', records, rejected },
      ],
    });
    expect(summary.failureReason).toMatch(
      /^rejects 2\d\.\d+% of 2003 records exceed run\.toleratedRejectPercent 10$/,
    );
  });
});
