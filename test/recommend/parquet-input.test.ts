import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { InteractionLogBuilder } from '../../shared/jobs/recommend/interaction-log.ts';
import { encodeInteractionLog } from '../../shared/jobs/recommend/log-codec.ts';
import { mergeLogParts } from '../../shared/jobs/recommend/log-merge.ts';
import { parquetFile } from '../ingest/factories.ts';
import { sluice } from '../support/cli.ts';

/**
 * The recommend pipeline on Parquet input gives what it gives on the same interactions as
 * CSV. Parquet rows used to be read with only the document columns (id, text, metadata),
 * so every row came out empty and was rejected as missing its user, and the unit's empty
 * interactions part then failed the ingest merge (a read of its ids at the object's end).
 */

/** The first users of the committed sample (whole users: the file is sorted by user). */
const SAMPLE_LINES = 3000;
/** One bad row of each kind, as CSV text (a Parquet row of strings holds the same values). */
const BAD_ROWS = [
  ',i001,4,1768090819', // missing user
  'u9000,,4,1768090819', // missing item
  'u9000,i001,five,1768090819', // non-numeric value
  'u9000,i001,4,yesterday', // bad timestamp
];
/** Rows per row group: the Parquet files hold several, so the plan cuts them into several units. */
const ROW_GROUP = 400;

interface RecommendationRow {
  user_id: string;
  rank: number;
  item_id: string;
  score: number;
  source: string;
  neighbours: number;
}

describe('sluice run on a recommend pipeline with Parquet input', () => {
  let work: string;
  let pipelines: string;
  let home: string;
  let header: string[];
  let rows: string[][];
  const runs: Record<'csv' | 'parquet' | 'typed', RunSummary> = {} as never;

  /** Runs pipeline `name` (the shipped recommend pipeline, explicit, small units) on `file`. */
  async function runOn(name: string, file: string): Promise<RunSummary> {
    const shipped = JSON.parse(await readFile('pipelines/recommend.json', 'utf8'));
    const config = {
      ...shipped,
      name,
      input: { ...shipped.input, format: 'auto', valueField: 'rating' },
      planning: { targetUnitTokens: 500 },
      sharding: { targetUnitWork: 20_000, method: 'greedy' },
      run: { toleratedRejectPercent: 100 },
    };
    await writeFile(path.join(pipelines, `${name}.json`), JSON.stringify(config));
    const run = await sluice(
      'run',
      file,
      '--pipeline',
      name,
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    expect(run.err.join('\n')).not.toMatch(/dead-lettered|failed/);
    expect(run.code).toBe(0);
    return run.json<RunSummary>();
  }

  async function query<T>(sql: string): Promise<T[]> {
    const result = await sluice('query', sql, '--home', home, '--json');
    expect(result.code).toBe(0);
    return result.json<T[]>();
  }

  const recommendations = (summary: RunSummary) =>
    query<RecommendationRow>(
      `select user_id, rank, item_id, score, source, neighbours from recommendations where run_id = '${summary.runId}' order by user_id, rank`,
    );
  const rejects = (summary: RunSummary) =>
    query<{ line: number; reason: string }>(
      `select line, reason from rejects where run_id = '${summary.runId}' order by line`,
    );

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-recommend-parquet-'));
    pipelines = path.join(work, 'pipelines');
    home = path.join(work, 'home');
    await mkdir(pipelines);
    const sample = (await readFile('events/data/interactions-sample.csv', 'utf8')).trim().split('\n');
    header = sample[0]!.split(',');
    const lines = [...sample.slice(1, SAMPLE_LINES + 1), ...BAD_ROWS];
    rows = lines.map((line) => line.split(','));
    const column = (k: number) => rows.map((row) => row[k]!);

    const csv = path.join(work, 'interactions.csv');
    await writeFile(csv, `${[sample[0]!, ...lines].join('\n')}\n`);
    // Every column a string: the same values CSV gives, bad rows included.
    const strings = path.join(work, 'strings', 'interactions.parquet');
    await mkdir(path.dirname(strings));
    await writeFile(
      strings,
      parquetFile(Object.fromEntries(header.map((name, k) => [name, column(k)])), ROW_GROUP),
    );
    // Typed as a warehouse export writes them (an INT64 rating, a TIMESTAMP read back as a
    // Date): the valid rows, and one row without its user, whose reject excerpt holds a bigint.
    const valid = rows.slice(0, SAMPLE_LINES);
    const typed = path.join(work, 'typed', 'interactions.parquet');
    await mkdir(path.dirname(typed));
    const typedColumns = {
      user_id: { type: 'STRING', data: [...valid.map((row) => row[0]!), null] },
      item_id: { type: 'STRING', data: [...valid.map((row) => row[1]!), 'i001'] },
      rating: { type: 'INT64', data: [...valid.map((row) => BigInt(row[2]!)), 4n] },
      ts: { type: 'TIMESTAMP', data: [...valid.map((row) => new Date(Number(row[3]!) * 1000)), new Date(0)] },
    } as const;
    const columnData = Object.entries(typedColumns).map(([name, { type, data }]) => ({
      name,
      type,
      data: [...data],
      nullable: true,
    }));
    await writeFile(typed, new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize: ROW_GROUP })));

    runs.csv = await runOn('recs-csv', csv);
    runs.parquet = await runOn('recs-parquet', strings);
    runs.typed = await runOn('recs-typed', typed);
  }, 180_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('reads every row of every row group, in several ingest units, as interactions or rejects', () => {
    for (const kind of ['parquet', 'typed'] as const) {
      const summary = runs[kind];
      expect(summary.status).toBe('succeeded');
      expect(summary.stages![0]!.units).toBeGreaterThan(1);
    }
    expect(runs.csv.counts).toMatchObject({
      records: SAMPLE_LINES + BAD_ROWS.length,
      rejected: BAD_ROWS.length,
    });
    expect(runs.parquet.counts).toMatchObject({
      records: SAMPLE_LINES + BAD_ROWS.length,
      rejected: BAD_ROWS.length,
    });
    expect(runs.typed.counts).toMatchObject({ records: SAMPLE_LINES + 1, rejected: 1 });
  });

  it('finds the users, items, duplicates and lists the CSV run found, and the same evaluation', () => {
    const csv = runs.csv.recommendations!;
    expect(csv.users).toBeGreaterThan(100);
    for (const kind of ['parquet', 'typed'] as const) expect(runs[kind].recommendations).toEqual(csv);
  });

  it('writes the same recommendations table rows as the CSV run', async () => {
    const expected = await recommendations(runs.csv);
    expect(expected.length).toBeGreaterThan(1000);
    expect(await recommendations(runs.parquet)).toEqual(expected);
    expect(await recommendations(runs.typed)).toEqual(expected);
  });

  it('rejects the bad rows with the reasons CSV gives them, at their row numbers', async () => {
    // A CSV line counts the header; a Parquet line is the row's number in the file.
    const csv = await rejects(runs.csv);
    expect(csv).toHaveLength(BAD_ROWS.length);
    expect(await rejects(runs.parquet)).toEqual(csv.map((r) => ({ ...r, line: r.line - 1 })));
    expect(await rejects(runs.typed)).toEqual([
      { line: SAMPLE_LINES + 1, reason: 'missing user (field user_id)' },
    ]);
  });
});

describe('the ingest merge of a unit whose rows were all rejects', () => {
  it('reads its empty interactions part (no ids) beside the others', async () => {
    const store = new MemoryObjectStore();
    const empty = new InteractionLogBuilder('explicit').build().log;
    const some = new InteractionLogBuilder('explicit');
    some.add({ userId: 'u1', itemId: 'i1', value: 3, timestamp: 10 });
    some.add({ userId: 'u2', itemId: 'i1', value: 4 });
    await store.put('ingest/u0.bin', encodeInteractionLog(empty));
    await store.put('ingest/u1.bin', encodeInteractionLog(some.build().log));
    const users: string[] = [];
    const result = await mergeLogParts(
      store,
      ['ingest/u0.bin', 'ingest/u1.bin'],
      { spillPrefix: 'spill/' },
      { start: () => {}, user: (user) => users.push(String(user)) },
    );
    expect(result.userIds).toEqual(['u1', 'u2']);
    expect(result.kept).toBe(2);
    expect(users).toEqual(['0', '1']);
  });
});
