import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import type { RunState } from '../../shared/domain/types.ts';
import type { UserList } from '../../shared/jobs/recommend/recommendation-lists.ts';
import { sluice } from '../support/cli.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { localClientConfig } from '../support/local-aws.ts';
import { createRecommendationsTable } from '../support/recommendations-table.ts';
import { aRun, aSummary } from '../support/run-fixtures.ts';

const RECS = 'Sluice-RecommendationsTable';
/** What the CLI reads its AWS settings from; restored after the file. */
const AWS_VARS = [
  'AWS_ENDPOINT_URL_DYNAMODB',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'SLUICE_RUNS_TABLE',
  'SLUICE_RECOMMENDATIONS_TABLE',
] as const;

const dynalite = useDynaliteTables({
  tablePrefix: 'Sluice-RunsTable',
  translateConfig: { marshallOptions: { removeUndefinedValues: true } },
});
/** The runs table the CLI is pointed at (--runs-table). */
let runsTable: string;
const saved = new Map<string, string | undefined>();

const listOf = (userId: string, tag: string, length: number): UserList => ({
  userId,
  items: Array.from({ length }, (_, r) => ({
    itemId: `${tag}-${r}`,
    score: 10 - r,
    source: r < length - 1 ? 'cf' : 'popular',
    neighbours: r < length - 1 ? 2 : 0,
  })),
});

/** Three runs of pipeline `recs`, oldest first: succeeded, succeeded (without user `gone`), failed. */
let older: RunState;
let served: RunState;
let failed: RunState;

beforeAll(async () => {
  for (const name of AWS_VARS) saved.set(name, process.env[name]);
  const config = localClientConfig(dynalite.endpoint);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynalite.endpoint;
  process.env.AWS_REGION = config.region;
  process.env.AWS_ACCESS_KEY_ID = config.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = config.credentials.secretAccessKey;
  delete process.env.SLUICE_RUNS_TABLE;
  delete process.env.SLUICE_RECOMMENDATIONS_TABLE;

  runsTable = await dynalite.newTable();
  await createRecommendationsTable(dynalite.client, RECS);
  const runs = new DynamoRunStore({ doc: dynalite.doc, tableName: runsTable });
  const lists = new DynamoRecommendationLists({ doc: dynalite.doc, tableName: RECS });
  const stored = async (startedAt: string, status: 'succeeded' | 'failed', users: UserList[]) => {
    const run = aRun({ pipeline: 'recs', startedAt });
    await runs.createRun(run, []);
    await runs.finishRun(run.runId, aSummary(run, { status }));
    const writer = lists.unitWriter('recs', run.runId, 'similarity-00000');
    for (const user of users) await writer.add(user);
    await writer.finish();
    return run;
  };
  older = await stored('2026-12-05T02:00:00.000Z', 'succeeded', [
    listOf('a', 'old', 3),
    listOf('gone', 'old', 2),
  ]);
  served = await stored('2026-12-06T02:00:00.000Z', 'succeeded', [listOf('a', 'new', 4)]);
  // A failed run's lists were written by its units that succeeded: never served.
  failed = await stored('2026-12-07T02:00:00.000Z', 'failed', [listOf('a', 'bad', 1)]);
});

afterAll(async () => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

const deployed = (...args: string[]) =>
  sluice('recommend', ...args, '--pipeline', 'recs', '--deployed', '--runs-table', runsTable);

describe('sluice recommend --deployed (runs table and recommendations table on dynalite)', () => {
  it("reads the user's list of the pipeline's latest succeeded run by key, not a newer failed run's", async () => {
    const shown = await deployed('a', '--recommendations-table', RECS, '--json');
    expect(shown.err).toEqual([]);
    expect(shown.code).toBe(0);
    expect(shown.json()).toEqual({
      runId: served.runId,
      pipeline: 'recs',
      userId: 'a',
      items: listOf('a', 'new', 4).items.map((e, r) => ({
        rank: r + 1,
        item_id: e.itemId,
        score: e.score,
        source: e.source,
        neighbours: e.neighbours,
      })),
    });
    expect(failed.startedAt > served.startedAt).toBe(true);
  });

  it('prints the list as the local command does, the table named by SLUICE_RECOMMENDATIONS_TABLE', async () => {
    process.env.SLUICE_RECOMMENDATIONS_TABLE = RECS;
    try {
      const shown = await deployed('a');
      expect(shown.code).toBe(0);
      expect(shown.out[0]).toBe(`user a: top 4 of run ${served.runId}`);
      expect(shown.out).toHaveLength(5);
    } finally {
      delete process.env.SLUICE_RECOMMENDATIONS_TABLE;
    }
  });

  it('serves no stale list to a user the latest run no longer holds: exit 1, one line', async () => {
    const gone = await deployed('gone', '--recommendations-table', RECS);
    expect(gone.code).toBe(1);
    expect(gone.err).toEqual([
      `no recommendations for user gone in run ${served.runId} (the user was not in its interaction log)`,
    ]);
    // The older run still has it, when asked for by --run.
    const old = await deployed('gone', '--recommendations-table', RECS, '--run', older.runId, '--json');
    expect(old.code).toBe(0);
    expect(old.json<{ items: unknown[] }>().items).toHaveLength(2);
  });

  it('says in one line how to name the table when none is given (exit 2)', async () => {
    const none = await deployed('a');
    expect(none.code).toBe(2);
    expect(none.err).toHaveLength(1);
    expect(none.err[0]).toContain(
      "--deployed needs the stack's recommendations table: --recommendations-table NAME or SLUICE_RECOMMENDATIONS_TABLE=NAME (the stack's RecommendationsTableName output",
    );
  });

  it('says in one line when the named table does not exist (exit 2)', async () => {
    const missing = await deployed('a', '--recommendations-table', 'no-such-table');
    expect(missing.code).toBe(2);
    expect(missing.err).toHaveLength(1);
    expect(missing.err[0]).toContain(
      'recommendations table no-such-table does not exist in this account and region',
    );
  });

  it('says in one line when the pipeline has no succeeded run yet (exit 2)', async () => {
    const none = await sluice(
      'recommend',
      'a',
      '--pipeline',
      'other',
      '--deployed',
      '--runs-table',
      runsTable,
      '--recommendations-table',
      RECS,
    );
    expect(none.code).toBe(2);
    expect(none.err).toHaveLength(1);
    expect(none.err[0]).toContain(`no succeeded run of pipeline other in runs table ${runsTable}`);
  });

  it('refuses --recommendations-table without --deployed', async () => {
    const mixed = await sluice('recommend', 'a', '--pipeline', 'recs', '--recommendations-table', RECS);
    expect(mixed.code).toBe(2);
    expect(mixed.err[0]).toContain('--recommendations-table needs --deployed');
  });
});
