import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { REFRESHED_BY_SQL, refreshedByOf, runRef } from '../../cli/gc/current-runs.ts';

const day = (d: number) => `r-202601${String(d).padStart(2, '0')}T000000Z-00000${d % 10}`;

/** REFRESHED_BY_SQL over `sources` and `runs` rows given here, in DuckDB as `sluice gc` runs it. */
async function refreshedBy(
  sources: readonly [runDay: number, sourceKey: string, status: 'read' | 'deleted' | 'skipped'][],
  failedDays: readonly number[] = [],
): Promise<Map<string, string>> {
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  try {
    await db.run(
      'CREATE TABLE sources (pipeline VARCHAR, source_key VARCHAR, run_id VARCHAR, status VARCHAR)',
    );
    await db.run('CREATE TABLE runs (pipeline VARCHAR, run_id VARCHAR, status VARCHAR)');
    for (const d of new Set(sources.map(([runDay]) => runDay)))
      await db.run(
        `INSERT INTO runs VALUES ('docs', '${day(d)}', '${failedDays.includes(d) ? 'failed' : 'succeeded'}')`,
      );
    for (const [d, key, status] of sources)
      await db.run(`INSERT INTO sources VALUES ('docs', '${key}', '${day(d)}', '${status}')`);
    const reader = await db.runAndReadAll(REFRESHED_BY_SQL);
    return refreshedByOf(reader.getRowObjectsJS() as Record<string, unknown>[]);
  } finally {
    db.closeSync();
  }
}

describe('REFRESHED_BY_SQL: which run last gave a verdict on each source a run read', () => {
  it('names the earliest of the latest readers of the run’s sources', async () => {
    const found = await refreshedBy([
      [1, 'a', 'read'],
      [1, 'b', 'read'],
      [3, 'a', 'read'],
      [9, 'b', 'read'],
    ]);
    expect(found.get(runRef('docs', day(1)))).toBe(day(3));
    expect(found.get(runRef('docs', day(9)))).toBe(day(9));
  });

  it('lets a source deleted since hold nothing: its entries were forgotten with it', async () => {
    const found = await refreshedBy([
      [1, 'a', 'read'],
      [1, 'b', 'read'],
      [3, 'b', 'deleted'],
      [9, 'a', 'read'],
      [2, 'gone', 'read'],
      [4, 'gone', 'deleted'],
    ]);
    // b's deletion on day 3 no longer keeps day 1 waiting for a reader of b that never comes.
    expect(found.get(runRef('docs', day(1)))).toBe(day(9));
    // A run whose every source was deleted since has no row: only the 8-day hold applies.
    expect(found.has(runRef('docs', day(2)))).toBe(false);
  });

  it('counts only succeeded runs’ verdicts', async () => {
    const found = await refreshedBy(
      [
        [1, 'a', 'read'],
        [5, 'a', 'read'],
      ],
      [5],
    );
    expect(found.get(runRef('docs', day(1)))).toBe(day(1));
  });
});
