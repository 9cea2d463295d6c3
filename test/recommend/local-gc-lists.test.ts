import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { openHome } from '../../cli/home.ts';
import { ObjectStoreRecommendationLists } from '../../shared/adapters/local/object-store-recommendation-lists.ts';
import { localListsPrefix, type UserList } from '../../shared/jobs/recommend/recommendation-lists.ts';
import { sluice } from '../support/cli.ts';
import { aRun, aSummary } from '../support/run-fixtures.ts';

/**
 * `sluice gc` on a home holding four runs of recommend pipeline `recs`, as a local run
 * records them (the home's run store) and stores its lists (the adapter the similarity
 * stage writes through): three that succeeded, then one that failed after its units wrote
 * their lists. The served run is the third. Pipeline `other` has one succeeded run.
 */
describe('sluice gc: the recommendation lists of runs older than the served one', () => {
  let work: string;
  let home: string;
  const runIds: string[] = [];
  let otherRun: string;

  const listFiles = async (pipeline: string, runId: string) =>
    (await readdir(path.join(home, 'bucket', localListsPrefix(pipeline, runId))).catch(() => [])).sort();

  const listOf = (userId: string, tag: string): UserList => ({
    userId,
    items: [{ itemId: `${tag}-i1`, score: 1.5, source: 'cf', neighbours: 2 }],
  });

  async function aLocalRun(pipeline: string, minute: number, status: 'succeeded' | 'failed') {
    const local = openHome(home);
    const run = aRun({ pipeline, startedAt: new Date(Date.UTC(2026, 11, 1, 0, minute)).toISOString() });
    await local.runs.createRun(run, []);
    const lists = new ObjectStoreRecommendationLists(local.store);
    for (const unitId of ['similarity-00000', 'similarity-00001']) {
      const writer = lists.unitWriter(pipeline, run.runId, unitId);
      await writer.add(listOf(`${unitId}-user`, run.runId));
      await writer.finish();
    }
    await local.runs.finishRun(run.runId, aSummary(run, { status }));
    return run.runId;
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-gc-lists-'));
    home = path.join(work, 'home');
    otherRun = await aLocalRun('other', 0, 'succeeded');
    for (const [minute, status] of [
      [10, 'succeeded'],
      [20, 'succeeded'],
      [30, 'succeeded'],
      [40, 'failed'],
    ] as const)
      runIds.push(await aLocalRun('recs', minute, status));
    for (const runId of runIds) expect(await listFiles('recs', runId)).toHaveLength(2);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const recommend = (user: string) =>
    sluice('recommend', user, '--pipeline', 'recs', '--home', home, '--json');

  it('reports the older runs’ lists on a dry run and removes nothing', async () => {
    const result = await sluice('gc', '--home', home, '--dry-run', '--json');
    expect(result.code).toBe(0);
    const report = result.json<GcReport>();
    const named = new Set(report.recommendationLists.files.map((f) => f.split(path.sep).at(-4)));
    expect(named).toEqual(new Set(runIds.slice(0, 2)));
    expect(report.recommendationLists.files).toHaveLength(4);
    expect(report.recommendationLists.bytes).toBeGreaterThan(0);
    for (const runId of runIds) expect(await listFiles('recs', runId)).toHaveLength(2);
  });

  it('removes them, keeps the served run’s and the failed newer run’s, and the user is still served', async () => {
    const user = 'similarity-00001-user';
    const before = await recommend(user);
    expect(before.code).toBe(0);

    const result = await sluice('gc', '--home', home);
    expect(result.code).toBe(0);
    expect(result.out.some((line) => line.startsWith('recommendation lists: removed '))).toBe(true);
    expect(await listFiles('recs', runIds[0]!)).toEqual([]);
    expect(await listFiles('recs', runIds[1]!)).toEqual([]);
    expect(await listFiles('recs', runIds[2]!)).toHaveLength(2);
    expect(await listFiles('recs', runIds[3]!)).toHaveLength(2);
    // Another pipeline's served lists are its own: a newer recs run supersedes nothing there.
    expect(await listFiles('other', otherRun)).toHaveLength(2);

    const after = await recommend(user);
    expect(after.code).toBe(0);
    expect(after.json()).toEqual(before.json());
    expect(after.json<{ runId: string }>().runId).toBe(runIds[2]);
  });

  it('finds nothing more to remove when run again', async () => {
    const again = (await sluice('gc', '--home', home, '--json')).json<GcReport>();
    expect(again.recommendationLists).toEqual({ files: [], bytes: 0 });
    expect(await listFiles('recs', runIds[2]!)).toHaveLength(2);
  });
});
