import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { ObjectStoreRecommendationLists } from '../../shared/adapters/local/object-store-recommendation-lists.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { summarizeEvaluation } from '../../shared/jobs/recommend/evaluation.ts';
import { type FittedRecommendations, fitRecommendations } from '../../shared/jobs/recommend/fit-recommend.ts';
import { parseInteraction } from '../../shared/jobs/recommend/interaction.ts';
import { popularityOrder } from '../../shared/jobs/recommend/interaction-index.ts';
import { parseRecommendSettings } from '../../shared/jobs/recommend/recommend-config.ts';
import { userListOf } from '../../shared/jobs/recommend/recommendation-lists.ts';
import { recommendationRows } from '../../shared/jobs/recommend/user-cf.ts';
import { sluice } from '../support/cli.ts';

/** The first users of the committed sample (whole users: the file is sorted by user), plus one bad row of each kind. */
const SAMPLE_LINES = 5000;
const BAD_ROWS = [
  ',i001,4,1768090819', // missing user
  'u9000,,4,1768090819', // missing item
  'u9000,i001,five,1768090819', // non-numeric value
  'u9000,i001,4,yesterday', // bad timestamp
];

interface TableRow {
  user_id: string;
  rank: number;
  item_id: string;
  score: number;
  source: string;
  neighbours: number;
}

describe('sluice run on a recommend pipeline (ingest, then similarity)', () => {
  let work: string;
  let pipelines: string;
  let input: string;
  let home: string;
  let summary: RunSummary;
  let fitted: FittedRecommendations;
  let config: Record<string, unknown>;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-recommend-'));
    pipelines = path.join(work, 'pipelines');
    home = path.join(work, 'home');
    input = path.join(work, 'interactions.csv');
    const sample = (await readFile('events/data/interactions-sample.csv', 'utf8')).trim().split('\n');
    const lines = [...sample.slice(0, SAMPLE_LINES + 1), ...BAD_ROWS];
    await writeFile(input, `${lines.join('\n')}\n`);
    const shipped = JSON.parse(await readFile('pipelines/recommend.json', 'utf8'));
    // Explicit ratings (pearson), several ingest units and user shards, every reject tolerated.
    config = {
      ...shipped,
      name: 'recs',
      input: { ...shipped.input, valueField: 'rating' },
      planning: { targetUnitTokens: 1500 },
      sharding: { targetUnitWork: 20_000, method: 'greedy' },
      run: { toleratedRejectPercent: 100 },
    };
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, 'recs.json'), JSON.stringify(config));

    // The pure core on the same valid rows: what the run must reproduce across its units.
    const settings = parseRecommendSettings({
      kind: 'recommend',
      input: { valueField: 'rating', timestampField: 'ts' },
      neighbours: config.neighbours,
      output: config.output,
      evaluation: config.evaluation,
    });
    const names = lines[0]!.split(',');
    const valid = lines.slice(1).flatMap((line) => {
      const record = Object.fromEntries(line.split(',').map((value, k) => [names[k]!, value]));
      const parsed = parseInteraction(record, settings.input);
      return parsed.ok ? [parsed.interaction] : [];
    });
    fitted = fitRecommendations(valid, { ...settings, feedback: 'explicit', similarity: 'pearson' }, 1);

    const run = await sluice(
      'run',
      input,
      '--pipeline',
      'recs',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    expect(run.err.join('\n')).not.toContain('Error');
    expect(run.code).toBe(0);
    summary = run.json<RunSummary>();
  }, 120_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('goes through both stages, several units each, and counts the input records and rejects', () => {
    expect(summary.status).toBe('succeeded');
    expect(summary.stages?.map((s) => s.name)).toEqual(['ingest', 'similarity']);
    const [ingest, similarity] = summary.stages!;
    expect(ingest!.units).toBeGreaterThan(1);
    expect(similarity!.units).toBeGreaterThan(1);
    expect(summary.counts).toMatchObject({
      records: SAMPLE_LINES + BAD_ROWS.length,
      rejected: BAD_ROWS.length,
    });
    expect(summary.recommendations).toMatchObject({
      feedback: 'explicit',
      similarity: 'pearson',
      users: fitted.index.userIds.length,
      items: fitted.index.itemIds.length,
      duplicates: fitted.duplicates,
      cappedItems: 0,
      usersRecommended: fitted.index.userIds.length,
    });
    expect(summary.recommendations!.shards.count).toBe(similarity!.units);
  });

  it('writes the recommendations table exactly as the pure core computes it', async () => {
    const query = await sluice(
      'query',
      `select user_id, rank, item_id, score, source, neighbours from recommendations where run_id = '${summary.runId}' order by user_id, rank`,
      '--home',
      home,
      '--json',
    );
    expect(query.code).toBe(0);
    const expected = fitted.lists.flatMap((list) =>
      recommendationRows(fitted.index, list, { runId: summary.runId, pipeline: 'recs' }).map(
        ({ run_id: _r, pipeline: _p, ...row }) => row,
      ),
    );
    const rows = query.json<TableRow[]>();
    expect(rows.length).toBe(expected.length);
    expect(summary.recommendations!.rows).toBe(expected.length);
    expect(rows).toEqual(expected);
  });

  it("stores every user's list for serving by key, through the lists port (local store), as the table holds it", async () => {
    const lists = new ObjectStoreRecommendationLists(openHome(home).store);
    for (const list of fitted.lists) {
      const user = fitted.index.userIds[list.user]!;
      const rows = recommendationRows(fitted.index, list, { runId: summary.runId, pipeline: 'recs' });
      expect(await lists.getList('recs', summary.runId, user)).toEqual(userListOf(user, rows).items);
    }
    expect(await lists.getList('recs', summary.runId, 'no-such-user')).toBeUndefined();
  });

  it('reports holdout metrics for CF and popularity that the core computes', () => {
    const core = summarizeEvaluation(fitted.evaluation!, popularityOrder(fitted.index).length);
    const evaluation = summary.recommendations!.evaluation!;
    expect(evaluation.users).toBe(core.users);
    for (const list of ['cf', 'popular'] as const)
      for (const metric of ['precision', 'recall', 'ndcg', 'coverage'] as const)
        expect(evaluation[list][metric]).toBeCloseTo(core[list][metric], 6);
  });

  it('writes each bad row to rejects with its reason', async () => {
    const query = await sluice(
      'query',
      `select line, reason from rejects where run_id = '${summary.runId}' order by line`,
      '--home',
      home,
      '--json',
    );
    const first = SAMPLE_LINES + 2;
    expect(query.json()).toEqual([
      { line: first, reason: 'missing user (field user_id)' },
      { line: first + 1, reason: 'missing item (field item_id)' },
      { line: first + 2, reason: 'non-numeric value "five" (field rating)' },
      {
        line: first + 3,
        reason: 'bad timestamp "yesterday" (field ts: ISO 8601 or epoch seconds expected)',
      },
    ]);
  });

  it('shows the stages in sluice status', async () => {
    const status = await sluice('status', summary.runId, '--home', home);
    expect(status.code).toBe(0);
    const text = status.out.join('\n');
    expect(text).toContain('ingest');
    expect(text).toContain('similarity');
  });

  it('estimates its cost with sluice cost (test/cost/cost-cli-kinds.test.ts checks the figures)', async () => {
    const cost = await sluice('cost', input, '--pipeline', 'recs', '--pipelines', pipelines);
    expect(cost.code).toBe(0);
    expect(cost.out.join('\n')).toContain('lists written to DynamoDB');
  });

  it("prints a user's top N with sluice recommend, and exits 1 for a user the log does not hold", async () => {
    const user = fitted.index.userIds[3]!;
    const list = fitted.lists[3]!;
    const shown = await sluice('recommend', user, '--pipeline', 'recs', '--home', home, '--json');
    expect(shown.code).toBe(0);
    expect(shown.json()).toMatchObject({
      runId: summary.runId,
      userId: user,
      items: Array.from(list.items, (item, r) => ({ rank: r + 1, item_id: fitted.index.itemIds[item] })),
    });
    const text = await sluice('recommend', user, '--pipeline', 'recs', '--home', home);
    expect(text.out[0]).toBe(`user ${user}: top ${list.items.length} of run ${summary.runId}`);
    const missing = await sluice('recommend', 'no-such-user', '--pipeline', 'recs', '--home', home);
    expect(missing.code).toBe(1);
    expect(missing.err).toEqual([
      `no recommendations for user no-such-user in run ${summary.runId} (the user was not in its interaction log)`,
    ]);
  });
});
