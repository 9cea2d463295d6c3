import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { openHome } from '../../cli/home.ts';
import type { RunStatus, ScoreRow } from '../../shared/domain/types.ts';
import { runRowKey, unitPartKey } from '../../shared/output/keys.ts';
import { runsParquet, scoresParquet } from '../../shared/output/parquet-tables.ts';
import { sluice } from '../support/cli.ts';
import { aRun, aSummary } from '../support/run-fixtures.ts';

/**
 * `sluice gc` on scoring runs (written directly as a finalize leaves them): S1 holds the
 * only score of record y, S2 and S4 rescored x, S3 failed. With --keep-runs 1, S4 is the
 * newest, S3 is failed (redrivable), S1 still holds y's latest score: only S2 goes, and
 * scores_current reads the same rows after.
 */
const score = (record_id: string, value: number): ScoreRow => ({
  record_id,
  score: value,
  model: 'm',
  source_key: 'datasets/risk/a.csv',
  line: 2,
  outputs: [value],
  metadata: {},
});

describe('sluice gc on scoring runs', () => {
  let work: string;
  let home: string;
  const runs: Record<string, string> = {};

  async function scoringRun(name: string, day: string, status: RunStatus, rows: ScoreRow[]) {
    const h = openHome(home);
    const run = aRun({ pipeline: 'risk', startedAt: `2026-03-0${day}T10:00:00.000Z` });
    await h.runs.createRun(run, []);
    const summary = aSummary(run, { status });
    await h.runs.finishRun(run.runId, summary);
    await h.store.put(unitPartKey('scores', 'risk', run.runId, 'u00000'), scoresParquet(run.runId, rows));
    await h.store.put(runRowKey('risk', run.runId), runsParquet(summary));
    runs[name] = run.runId;
  }
  const partOf = (name: string) =>
    path.join(home, 'bucket', unitPartKey('scores', 'risk', runs[name]!, 'u00000'));
  const current = async () =>
    (
      await sluice(
        'query',
        'select run_id, record_id, score from scores_current order by record_id',
        '--home',
        home,
        '--json',
      )
    ).json<unknown[]>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-gc-scores-'));
    home = path.join(work, 'home');
    await scoringRun('S1', '1', 'succeeded', [score('x', 0.1), score('y', 0.2)]);
    await scoringRun('S2', '2', 'succeeded', [score('x', 0.3)]);
    await scoringRun('S3', '3', 'failed', [score('x', 0.4)]);
    await scoringRun('S4', '4', 'succeeded', [score('x', 0.5)]);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('removes only the run no latest score comes from; scores_current is unchanged', async () => {
    const before = await current();
    expect(before).toEqual([
      { run_id: runs.S4, record_id: 'x', score: 0.5 },
      { run_id: runs.S1, record_id: 'y', score: 0.2 },
    ]);

    const result = await sluice('gc', '--home', home, '--keep-runs', '1', '--json');

    expect(result.code, result.err.join('\n')).toBe(0);
    const reasons = Object.fromEntries(result.json<GcReport>().runs.map((r) => [r.runId, r.reason]));
    expect(reasons).toEqual({
      [runs.S4!]: 'among the newest 1',
      [runs.S3!]: 'failed: redrive reads its parts',
      [runs.S2!]: 'superseded: every source and record it wrote has a newer version',
      [runs.S1!]: 'the current state reads it',
    });
    expect(existsSync(partOf('S2'))).toBe(false);
    for (const kept of ['S1', 'S3', 'S4']) expect(existsSync(partOf(kept)), kept).toBe(true);
    expect(await current()).toEqual(before);
  });

  it('is refused, in one line, while a live process holds a run lease in the home', async () => {
    const leases = path.join(home, 'state', 'leases');
    await mkdir(leases, { recursive: true });
    const lock = path.join(leases, `${runs.S4}.lock`);
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), since: '', token: 't' }));
    try {
      const result = await sluice('gc', '--home', home);
      expect(result.code).toBe(2);
      expect(result.err).toEqual([
        `sluice gc: run ${runs.S4} is in use by process ${process.pid} on ${hostname()}: run sluice gc when it ends`,
      ]);
    } finally {
      await rm(lock);
    }
  });
});
