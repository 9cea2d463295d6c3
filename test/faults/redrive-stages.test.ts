import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { type CsvScoringBackend, XgboostJsonBackend } from '../../cli/model-server/xgboost-backend.ts';
import { sluice } from '../support/cli.ts';

const SAMPLE = 'events/data/credit-sample.csv';
const FITTED = 'models/credit-risk/fitted-here.json';
/** The customer whose row the broken model cannot score: its `late_payments` is set to 777. */
const POISONED = 'c-29001500';

/**
 * The pipeline's XGBoost model, except that while `broken` it fails every request holding a
 * row with 777 late payments (the fifth feature, which the spec passes through untransformed);
 * the server answers those as a container 500.
 */
class BreakableScorer implements CsvScoringBackend {
  broken = true;
  readonly contentType = 'text/csv' as const;
  readonly description = 'xgboost-json that fails requests holding a poisoned row while broken';
  constructor(private readonly inner: XgboostJsonBackend) {}
  get model(): string {
    return this.inner.model;
  }
  score(bodyText: string): string {
    if (this.broken && bodyText.split('\n').some((row) => row.split(',')[4] === '777'))
      throw new Error('model crashed');
    return this.inner.score(bodyText);
  }
}

interface StatusUnit {
  unitId: string;
  stage: string;
  status: string;
  attempts: number;
}

/**
 * `sluice redrive` of a two-stage run (a score pipeline with no stored statistics runs `fit`
 * then `score`) whose score stage failed: only the failed unit of the score stage runs again,
 * the statistics are not fitted again, and the run ends succeeded with every record once.
 */
describe('sluice redrive of a fit-then-score run', () => {
  let work: string;
  let home: string;
  let pipelines: string;
  let backend: BreakableScorer;
  let server: ModelServer;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-redrive-stages-'));
    home = path.join(work, 'home');
    pipelines = path.join(work, 'pipelines');
    await cp('pipelines', pipelines, { recursive: true });
    const config = JSON.parse(await readFile(path.join(pipelines, 'credit-risk.json'), 'utf8'));
    config.featureStats = { key: FITTED, refit: false };
    config.model = { ...config.model, hosting: 'serverless', maxRetries: 0 };
    config.planning = { targetUnitTokens: 5_000 };
    config.workers = { ...config.workers, maxConcurrency: 2, maxReceiveCount: 2 };
    await writeFile(path.join(pipelines, 'credit-risk.json'), JSON.stringify(config));
    const lines = (await readFile(SAMPLE, 'utf8')).split('\n');
    const at = lines.findIndex((line) => line.startsWith(`${POISONED},`));
    const fields = lines[at]!.split(',');
    fields[5] = '777';
    lines[at] = fields.join(',');
    await writeFile(path.join(work, 'customers.csv'), lines.join('\n'));
    backend = new BreakableScorer(
      XgboostJsonBackend.fromFile(path.join(pipelines, 'models', 'credit-risk', 'model.json')),
    );
    server = await startModelServer({ backend });
  });
  afterAll(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  const common = () => ['--home', home, '--pipelines', pipelines, '--endpoint-url', server.url];
  const query = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
  const unitsOf = async (runId: string): Promise<StatusUnit[]> =>
    (await sluice('status', runId, '--home', home, '--json')).json().units;

  it('runs the failed score unit alone again and ends the run succeeded with every record once', async () => {
    const failed = await sluice(
      'run',
      path.join(work, 'customers.csv'),
      '--pipeline',
      'credit-risk',
      ...common(),
      '--threads',
      '0',
      '--json',
    );
    expect(failed.code, failed.err.join('\n')).toBe(1);
    const first = failed.json();
    const runId: string = first.runId;
    expect(first).toMatchObject({ status: 'failed', counts: { failedUnits: 1 } });
    expect(first.stages.map((s: { name: string; failedUnits: number }) => [s.name, s.failedUnits])).toEqual([
      ['fit', 0],
      ['score', 1],
    ]);
    const before = await unitsOf(runId);
    const fitUnits = before.filter((u) => u.stage === 'fit');
    const scoreUnits = before.filter((u) => u.stage === 'score');
    expect(fitUnits.length).toBeGreaterThan(1);
    expect(scoreUnits).toHaveLength(fitUnits.length);
    const broken = scoreUnits.filter((u) => u.status === 'failed');
    expect(broken).toEqual([expect.objectContaining({ stage: 'score', attempts: 2 })]);
    const fitted = path.join(home, 'bucket', ...FITTED.split('/'));
    const fittedBefore = { bytes: await readFile(fitted), mtimeMs: (await stat(fitted)).mtimeMs };

    backend.broken = false;
    const redriven = await sluice('redrive', runId, ...common(), '--json');
    expect(redriven.code, redriven.err.join('\n')).toBe(0);
    expect(redriven.json()).toMatchObject({
      runId,
      status: 'succeeded',
      redriven: 1,
      counts: { records: 2003, rejected: 3, scored: 2000, failedUnits: 0, units: scoreUnits.length },
      failedUnits: [],
    });
    expect(redriven.err).toContainEqual(`run ${runId}: redriving 1 units (${broken[0]!.unitId})`);

    // Only the failed score unit ran again: no fit unit, no other score unit, no refit.
    const after = await unitsOf(runId);
    for (const unit of before) {
      const again = after.find((u) => u.unitId === unit.unitId);
      expect(again).toMatchObject({
        status: 'succeeded',
        attempts: unit.unitId === broken[0]!.unitId ? 3 : unit.attempts,
      });
    }
    expect(after).toHaveLength(before.length);
    expect(await readFile(fitted)).toEqual(fittedBefore.bytes);
    expect((await stat(fitted)).mtimeMs).toBe(fittedBefore.mtimeMs);

    // Every record once: each scored row one line, the poisoned customer among them, the rejects once.
    expect(
      await query(
        `select count(*)::int as n, count(distinct line)::int as lines, count(distinct record_id)::int as ids, count(*) filter (where record_id = '${POISONED}')::int as poisoned from scores where run_id = '${runId}'`,
      ),
    ).toEqual([{ n: 2000, lines: 2000, ids: 2000, poisoned: 1 }]);
    expect(await query(`select count(*)::int as n from rejects where run_id = '${runId}'`)).toEqual([
      { n: 3 },
    ]);
    expect(await query(`select status, scored from runs where run_id = '${runId}'`)).toEqual([
      { status: 'succeeded', scored: 2000 },
    ]);
    const status = (await sluice('status', runId, '--home', home, '--json')).json();
    expect(status).toMatchObject({ status: 'succeeded', stage: 'score', stages: ['fit', 'score'] });
  }, 120_000);
});
