import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { sluice } from '../support/cli.ts';
import { datedCorpus } from '../support/dated-corpus.ts';

/**
 * A run whose source comparison was skipped still read the source: its units rewrote the
 * entries that were 7+ days old, so they point at its parts. Finalize writes `skipped` for
 * such a source (out of time deployed; here the stored manifest pointer is made unreadable,
 * which finalize handles the same way), and gc must still keep those parts while a later
 * run carries from them without rewriting.
 */
describe('gc and a run whose comparison of the source it read was skipped', () => {
  const corpus = datedCorpus({ prefix: 'sluice-skipped-reader-', documents: 20, seed: 9 });
  const { onDay, at, entryRuns } = corpus;
  interface Summary {
    runId: string;
    counts: { chunks: number; embedded: number; skippedUnchanged: number };
  }
  const runOn = (day: number) => corpus.runOn<Summary>(day);
  const sourceStatuses = async (runId: string) =>
    (
      await sluice(
        'query',
        `select status from sources where run_id = '${runId}'`,
        '--home',
        at.home,
        '--json',
      )
    ).json<{ status: string }[]>();

  it('keeps the parts the entries point at, so the next run a week on carries every chunk', async () => {
    await runOn(0);
    // The source's manifest pointer, unreadable: the next finalize replaces it without comparing.
    const sourcesDir = path.join(at.home, 'bucket', 'runs', 'docs', 'sources');
    const [hashed] = await readdir(sourcesDir);
    await writeFile(path.join(sourcesDir, hashed!, 'current.json'), '{"format": "not a pointer"}\n');

    const skipped = await runOn(7.5);
    expect(skipped.counts).toMatchObject({ embedded: 0, skippedUnchanged: skipped.counts.chunks });
    expect(await sourceStatuses(skipped.runId)).toEqual([{ status: 'skipped' }]);
    // Day 0's entries were 7.5 days old: rewritten, they point at this run.
    expect(await entryRuns()).toEqual(new Set([skipped.runId]));

    const next = await runOn(8);
    expect(await sourceStatuses(next.runId)).toEqual([{ status: 'read' }]);
    expect(await entryRuns()).toEqual(new Set([skipped.runId]));

    onDay(16);
    const gc = await sluice('gc', '--home', at.home, '--keep-runs', '1', '--json');
    expect(gc.code, gc.err.join('\n')).toBe(0);
    const decided = new Map(gc.json<GcReport>().runs.map((r) => [r.runId, r]));
    expect(decided.get(skipped.runId)).toMatchObject({ remove: false });

    const week = await runOn(17);
    expect(week.counts).toMatchObject({ embedded: 0, skippedUnchanged: week.counts.chunks });
    expect(await entryRuns()).toEqual(new Set([week.runId]));
  }, 120_000);
});
