import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { sluice } from '../support/cli.ts';
import { datedCorpus } from '../support/dated-corpus.ts';

/**
 * An unchanged nightly corpus: a re-run carries every chunk and leaves the entries pointing
 * at the run that wrote them while that run is under 7 days old, then rewrites them; gc
 * keeps what the entries point at.
 */
describe('chunk index entries of unchanged documents, refreshed weekly', () => {
  const corpus = datedCorpus({ prefix: 'sluice-refresh-', documents: 40, seed: 7 });
  const { onDay, at, ids } = corpus;
  interface Summary {
    runId: string;
    status: string;
    counts: { chunks: number; embedded: number; skippedUnchanged: number };
    cost: { usage: { dynamoWrites: number } };
  }
  const runOn = (day: number) => corpus.runOn<Summary>(day);
  const entryRuns = () => corpus.entryRuns({ all: true });
  const gcOn = async (day: number): Promise<Map<string, { remove: boolean; reason: string }>> => {
    onDay(day);
    const result = await sluice('gc', '--home', at.home, '--keep-runs', '1', '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return new Map(result.json<GcReport>().runs.map((r) => [r.runId, r]));
  };
  const partsOf = async (runId: string) =>
    (await readdir(path.join(at.home, 'bucket', 'results', 'embeddings'), { recursive: true })).filter((f) =>
      path.basename(f).startsWith(`${runId}-`),
    );
  const q = async (sql: string) => (await sluice('query', sql, '--home', at.home, '--json')).json();
  const differingVectors = async (a: string, b: string) =>
    (
      await q(
        `select count(*) as differing from embeddings a join embeddings b on a.chunk_id = b.chunk_id
         where a.run_id = '${a}' and b.run_id = '${b}' and a.embedding <> b.embedding`,
      )
    )[0].differing;

  const runs: Summary[] = [];

  it('an unchanged re-run within the week records no entry and carries every vector as it was', async () => {
    runs.push(await runOn(0));
    expect(await entryRuns()).toEqual(new Set([runs[0]!.runId]));

    runs.push(await runOn(1));
    const [first, unchanged] = runs as [Summary, Summary];
    expect(unchanged.counts).toMatchObject({ embedded: 0, skippedUnchanged: unchanged.counts.chunks });
    expect(await entryRuns()).toEqual(new Set([first.runId]));
    // The index's puts are one write unit a document: the first run paid them, this one none.
    expect(first.cost.usage.dynamoWrites - unchanged.cost.usage.dynamoWrites).toBeGreaterThanOrEqual(
      ids.length,
    );
    expect(await differingVectors(first.runId, unchanged.runId)).toBe(0);
  }, 120_000);

  it('gc keeps the embeddings the entries point at, though their run is superseded and over 8 days old', async () => {
    const [first, second] = runs as [Summary, Summary];
    const day7 = await gcOn(7);
    // The clock runs on from the faked start, so the run id may name a second or two later.
    expect(day7.get(first.runId)).toMatchObject({
      remove: false,
      reason: expect.stringMatching(
        /^its embeddings may still be read by the chunk index until 2026-11-10T01:00:0\dZ$/,
      ),
    });
    const day9 = await gcOn(9);
    expect(day9.get(first.runId)).toMatchObject({
      remove: false,
      reason:
        'its embeddings may still be read by the chunk index: no run has read all its sources again 7 days or more after it',
    });
    expect(day9.get(second.runId)).toMatchObject({ remove: false, reason: 'among the newest 1' });
    expect(await partsOf(first.runId)).toHaveLength(1);
  }, 60_000);

  it('a re-run a week later carries from the held part and rewrites every entry; gc then lets the old runs go', async () => {
    const [first, second] = runs as [Summary, Summary];
    const later = await runOn(9);
    expect(later.counts).toMatchObject({ embedded: 0, skippedUnchanged: later.counts.chunks });
    expect(await entryRuns()).toEqual(new Set([later.runId]));
    expect(later.cost.usage.dynamoWrites - second.cost.usage.dynamoWrites).toBeGreaterThanOrEqual(ids.length);
    expect(await differingVectors(first.runId, later.runId)).toBe(0);

    const day10 = await gcOn(10);
    expect(day10.get(first.runId)?.remove).toBe(true);
    // Day 1's run: 9 days old, and the day-9 run read its source again 8 days after it.
    expect(day10.get(second.runId)?.remove).toBe(true);
    expect(await partsOf(first.runId)).toEqual([]);
    expect(await partsOf(second.runId)).toEqual([]);

    const next = await runOn(10);
    expect(next.counts).toMatchObject({ embedded: 0, skippedUnchanged: next.counts.chunks });
    expect(await entryRuns()).toEqual(new Set([later.runId]));
  }, 120_000);
});
