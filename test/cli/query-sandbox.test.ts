import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { runRowKey } from '../../shared/output/keys.ts';
import { runsParquet } from '../../shared/output/parquet-tables.ts';
import { sluice } from '../support/cli.ts';
import { aRun, aSummary } from '../support/run-fixtures.ts';

describe('sluice query (sandboxed)', () => {
  let work: string;
  let home: string;
  let results: string;
  const run = aRun({ runId: 'r-20261206T230000Z-q00001', pipeline: 'docs' });

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-query-sandbox-'));
    home = path.join(work, 'home');
    results = path.join(home, 'bucket', 'results');
    const store = new FsObjectStore(path.join(home, 'bucket'));
    await store.put(runRowKey(run.pipeline, run.runId), runsParquet(aSummary(run)));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const query = (sql: string, ...flags: string[]) => sluice('query', sql, '--home', home, '--json', ...flags);

  /** Refused: exit 2, nothing on stdout, one line on stderr. */
  async function expectRefused(sql: string, reason: RegExp) {
    const result = await query(sql);
    expect(result.code, sql).toBe(2);
    expect(result.out, sql).toEqual([]);
    expect(result.err, sql).toHaveLength(1);
    expect(result.err[0], sql).toMatch(reason);
    return result;
  }

  it('reads the results tables: select, describe, summarize, several selects', async () => {
    const rows = await query(`select run_id, status from runs`);
    expect(rows.code).toBe(0);
    expect(JSON.parse(rows.out.at(-1)!)).toEqual([{ run_id: run.runId, status: 'succeeded' }]);
    expect((await query('describe runs')).code).toBe(0);
    expect((await query('summarize runs')).code).toBe(0);
    const two = await query('select 1 as a; select count(*)::int as n from runs');
    expect(JSON.parse(two.out.at(-1)!)).toEqual([{ n: 1 }]);
  });

  it('reads no file outside the results: read_text of /etc/passwd, read_csv, a glob of the home', async () => {
    const passwd = await expectRefused(
      `select * from read_text('/etc/passwd')`,
      /query failed: .*Permission Error/,
    );
    expect(passwd.err[0]).not.toContain('root:');
    await expectRefused(`select * from read_csv('/etc/passwd', sep = ':')`, /Permission Error/);
    await expectRefused(
      `select * from read_json('${path.join(home, 'state', 'runs', '*.json')}')`,
      /Permission Error/,
    );
  });

  it('writes nothing: COPY TO anywhere, into the results folder included, is refused', async () => {
    const outside = path.join(work, 'x.csv');
    await expectRefused(`COPY (select 42) TO '${outside}'`, /query refused: COPY statements are not allowed/);
    const inside = path.join(results, 'runs', 'copied.csv');
    await expectRefused(
      `COPY (select * from runs) TO '${inside}'`,
      /query refused: COPY statements are not allowed.*--unsafe/,
    );
    await expectRefused(`select 1; COPY (select 42) TO '${inside}'`, /COPY statements are not allowed/);
    await expectRefused(
      `EXPORT DATABASE '${path.join(results, 'export')}'`,
      /EXPORT statements are not allowed/,
    );
    await expectRefused(`create table t as select 1`, /CREATE statements are not allowed/);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(inside)).toBe(false);
    expect(existsSync(path.join(results, 'export'))).toBe(false);
  });

  it('attaches no database, drops no view, installs or loads no extension, changes no setting', async () => {
    await expectRefused(`ATTACH '${path.join(work, 'db.duckdb')}' AS d`, /ATTACH statements are not allowed/);
    await expectRefused(`ATTACH ':memory:' AS m`, /ATTACH statements are not allowed/);
    await expectRefused('DROP VIEW runs', /DROP statements are not allowed/);
    await expectRefused('INSTALL httpfs', /not allowed/);
    await expectRefused('LOAD httpfs', /not allowed/);
    await expectRefused('SET enable_external_access = true', /SET statements are not allowed/);
    await expectRefused(`select * from read_parquet('https://example.com/x.parquet')`, /query failed/);
    expect(existsSync(path.join(work, 'db.duckdb'))).toBe(false);
    expect((await query('select count(*)::int as n from runs')).out.at(-1)).toBe('[{"n":1}]');
  });

  it('runs anything with --unsafe (COPY to a file, for users who ask for it)', async () => {
    const target = path.join(work, 'unsafe.csv');
    const result = await query(`COPY (select run_id from runs) TO '${target}'`, '--unsafe');
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(existsSync(target)).toBe(true);
  });
});
