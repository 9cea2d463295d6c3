import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { REFRESHED_BY_SQL, refreshedByOf, runRef } from '../../cli/gc/current-runs.ts';
import { embeddingsHold } from '../../cli/gc/run-retention.ts';
import { entryIsFresh } from '../../shared/incremental/entry-refresh.ts';

/**
 * Review of gc's embeddings hold against the entry refresh it depends on: a run's parts may
 * go only once no chunk index entry can point at them. Each history is `sources` rows as
 * finalize writes them; REFRESHED_BY_SQL runs in DuckDB as `sluice gc` runs it.
 */

/** A run id started `days` (fractions allowed) after 2026-12-28T00:00:00Z, to the second. */
const at = (days: number, suffix = 'aaaaaa'): string => {
  const iso = new Date(Date.parse('2026-12-28T00:00:00Z') + Math.round(days * 86_400) * 1000).toISOString();
  return `r-${iso.slice(0, 19).replace(/[-:]/g, '')}Z-${suffix}`;
};
const DAY_MS = 86_400_000;
const dateOf = (days: number) => new Date(Date.parse('2026-12-28T00:00:00Z') + days * DAY_MS);

type Status = 'read' | 'deleted' | 'skipped';

async function refreshedBy(
  sources: readonly [runId: string, sourceKey: string, status: Status][],
  failed: readonly string[] = [],
): Promise<Map<string, string>> {
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  try {
    await db.run(
      'CREATE TABLE sources (pipeline VARCHAR, source_key VARCHAR, run_id VARCHAR, status VARCHAR)',
    );
    await db.run('CREATE TABLE runs (pipeline VARCHAR, run_id VARCHAR, status VARCHAR)');
    for (const runId of new Set(sources.map(([runId]) => runId)))
      await db.run(
        `INSERT INTO runs VALUES ('docs', '${runId}', '${failed.includes(runId) ? 'failed' : 'succeeded'}')`,
      );
    for (const [runId, key, status] of sources)
      await db.run(`INSERT INTO sources VALUES ('docs', '${key}', '${runId}', '${status}')`);
    const reader = await db.runAndReadAll(REFRESHED_BY_SQL);
    return refreshedByOf(reader.getRowObjectsJS() as Record<string, unknown>[]);
  } finally {
    db.closeSync();
  }
}

/** Whether gc at `now` keeps run `runId`'s embeddings parts, over the history `sources`. */
async function held(
  runId: string,
  now: Date,
  sources: readonly [string, string, Status][],
  failed: readonly string[] = [],
): Promise<boolean> {
  const found = await refreshedBy(sources, failed);
  return embeddingsHold(runId, now, found.get(runRef('docs', runId))) !== undefined;
}

describe('gc embeddings hold: a source read by a run whose comparison was skipped', () => {
  // Finalize writes `skipped` for a source its units read but it did not compare (out of
  // time, its stored manifest unreadable, or a later-started run replaced the manifest
  // first). Its units rewrote the entries of documents whose entry was 7+ days old all the
  // same: those entries now point at this run.
  it('keeps the parts of a run whose only row for the source is skipped while a later reader is under 7 days after it', async () => {
    const [r0, r7, r8] = [at(0), at(7.5), at(8)];
    const history: [string, string, Status][] = [
      [r0, 'a', 'read'],
      [r7, 'a', 'skipped'], // rewrote a's entries (day 0's were 7.5 days old): they point here
      [r8, 'a', 'read'], // carried them from day 7.5's parts, fresh: rewrote none
    ];
    expect(await held(r7, dateOf(16), history)).toBe(true);
    // Day 0's run is let go as before: day 8 read `a` 8 days after it.
    expect(await held(r0, dateOf(16), history)).toBe(false);
    // And day 7.5's once a run 7+ days after it has read `a`.
    expect(await held(r7, dateOf(16), [...history, [at(14.5), 'a', 'read']])).toBe(false);
  });

  it('keeps a skipped reader whose source no later run has given a verdict on', async () => {
    const [r0, r1] = [at(0), at(1)];
    // Day 0's comparison was read; day 1 rewrote nothing (fresh) but read `b` first, skipped.
    const history: [string, string, Status][] = [
      [r0, 'a', 'read'],
      [r1, 'a', 'skipped'],
      [r1, 'b', 'skipped'],
    ];
    expect(await held(r1, dateOf(30), history)).toBe(true);
  });

  it('does not count a skipped row as a refresh: only a read verdict of a succeeded run lets go', async () => {
    const [r0, r8] = [at(0), at(8)];
    // Day 8 read `a` (so it rewrote day 0's entries), but its comparison was skipped: gc
    // cannot tell that from a deleted source it had no time for, and keeps day 0.
    expect(
      await held(r0, dateOf(20), [
        [r0, 'a', 'read'],
        [r8, 'a', 'skipped'],
      ]),
    ).toBe(true);
  });

  it('holds a run whose skipped row is of a source deleted before it (finalize out of time): gc cannot tell it from a read', async () => {
    // Known over-hold, storage only: the run read nothing of `a`, but its row looks like a
    // read whose comparison was skipped. The earlier reader is held the same way until an
    // empty file is dropped under the key (docs/runbook.md).
    const [r0, r1] = [at(0), at(1)];
    const history: [string, string, Status][] = [
      [r0, 'a', 'read'],
      [r1, 'a', 'skipped'],
    ];
    expect(await held(r1, dateOf(30), history)).toBe(true);
    expect(await held(r0, dateOf(30), history)).toBe(true);
    expect(await held(r1, dateOf(30), [...history, [at(2), 'a', 'deleted']])).toBe(false);
  });
});

describe('gc embeddings hold: failed and later runs', () => {
  it('a later reader that failed (a unit covering the source failed) does not release the run', async () => {
    const [r0, r8] = [at(0), at(8)];
    const history: [string, string, Status][] = [
      [r0, 'a', 'read'],
      [r8, 'a', 'read'],
    ];
    expect(await held(r0, dateOf(20), history, [r8])).toBe(true);
    expect(await held(r0, dateOf(20), history)).toBe(false);
  });

  it('a failed run redriven to success long after it started counts from its start, as its units compare', async () => {
    // Day 6.5's run read `a` carrying day 0's entries (fresh against its start) and
    // succeeded on a redrive on day 12: its id still says day 6.5, so day 0 stays held.
    const [r0, r6] = [at(0), at(6.5)];
    expect(
      await held(r0, dateOf(12), [
        [r0, 'a', 'read'],
        [r6, 'a', 'read'],
      ]),
    ).toBe(true);
  });

  it('waits for the slowest source: one read again 7+ days later does not release another read since only sooner', async () => {
    const [r0, r3, r9] = [at(0), at(3), at(9)];
    const history: [string, string, Status][] = [
      [r0, 'a', 'read'],
      [r0, 'b', 'read'],
      [r9, 'a', 'read'],
      [r3, 'b', 'read'],
    ];
    expect(await held(r0, dateOf(20), history)).toBe(true);
    expect(await held(r0, dateOf(20), [...history, [at(10), 'b', 'read']])).toBe(false);
  });
});

describe('gc embeddings hold: a source deleted, and added again', () => {
  it('a source deleted after the run holds nothing, even once added again and read within the week', async () => {
    // Day 1 forgot every entry of `a` (chunk count 0): day 0's run holds nothing of `a`, and
    // day 4's embedded `a` anew (no entry to carry from), so its entries point at day 4.
    const [r0, r1, r4] = [at(0), at(1), at(4)];
    const history: [string, string, Status][] = [
      [r0, 'a', 'read'],
      [r1, 'a', 'deleted'],
      [r4, 'a', 'read'],
    ];
    expect(await held(r0, dateOf(9), history)).toBe(false);
    expect(await held(r4, dateOf(13), history)).toBe(true);
  });

  it('a deletion that failed forgot nothing gc can count on: the run stays held', async () => {
    const [r0, r1] = [at(0), at(1)];
    expect(
      await held(
        r0,
        dateOf(9),
        [
          [r0, 'a', 'read'],
          [r1, 'a', 'deleted'],
        ],
        [r1],
      ),
    ).toBe(true);
  });

  it('a deletion before the run does not release it', async () => {
    const [rm, r0, r3] = [at(-5), at(0), at(3)];
    expect(
      await held(r0, dateOf(10), [
        [rm, 'a', 'deleted'],
        [r0, 'a', 'read'],
        [r3, 'a', 'read'],
      ]),
    ).toBe(true);
  });
});

describe('gc embeddings hold: clock edges', () => {
  it('a weekly schedule that starts a second early each week leaves entries a second week: gc holds both weeks', async () => {
    // A week less a second is fresh: week 1 carries and rewrites nothing, so the entries
    // still name week 0 until week 2 (13 days 23:59:58 after it) rewrites them.
    const w0 = at(0);
    const w1 = at(7 - 1 / 86_400);
    const w2 = at(14 - 2 / 86_400);
    expect(entryIsFresh(w1, w0)).toBe(true);
    expect(entryIsFresh(w2, w0)).toBe(false);
    const history: [string, string, Status][] = [
      [w0, 'a', 'read'],
      [w1, 'a', 'read'],
    ];
    expect(await held(w0, dateOf(13), history)).toBe(true);
    const after = [...history, [w2, 'a', 'read']] as [string, string, Status][];
    expect(await held(w0, dateOf(15), after)).toBe(false);
    // Week 1's parts, which no entry names, wait for week 3 all the same (gc cannot tell).
    expect(await held(w1, dateOf(15), after)).toBe(true);
  });

  it('lets go exactly when a reader started 7 days to the second after the run, as the embed unit rewrites', async () => {
    // Across a year's end: run ids sort by time, and the SQL's max(run_id) with them.
    const r0 = 'r-20261231T235959Z-zzzzzz';
    const justUnder = 'r-20270107T235958Z-000000';
    const exactly = 'r-20270107T235959Z-000000';
    const now = new Date('2027-01-20T00:00:00Z');
    for (const [reader, rewritten] of [
      [justUnder, false],
      [exactly, true],
    ] as const) {
      // The embed unit rewrites the entry exactly when gc lets go of what it pointed at.
      expect(!entryIsFresh(reader, r0)).toBe(rewritten);
      expect(
        await held(r0, now, [
          [r0, 'a', 'read'],
          [reader, 'a', 'read'],
        ]),
      ).toBe(!rewritten);
    }
  });

  it('holds 8 days after the start whatever else holds, to the second', () => {
    const r0 = 'r-20261231T235959Z-zzzzzz';
    expect(embeddingsHold(r0, new Date('2027-01-08T23:59:58.999Z'), undefined)).toMatch(
      /until 2027-01-08T23:59:59Z$/,
    );
    expect(embeddingsHold(r0, new Date('2027-01-08T23:59:59.000Z'), undefined)).toBeUndefined();
  });

  it('two runs started in the same second: the later id is the latest reader', async () => {
    const r0 = at(0, 'aaaaaa');
    const [x, y] = [at(3, 'aaaaaa'), at(3, 'bbbbbb')];
    const found = await refreshedBy([
      [r0, 'a', 'read'],
      [x, 'a', 'read'],
      [y, 'a', 'read'],
    ]);
    expect(found.get(runRef('docs', r0))).toBe(y);
  });
});
