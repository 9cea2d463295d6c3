import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-11-02T01:00:00Z');

/**
 * A run whose source comparison was skipped still read the source: its units rewrote the
 * entries that were 7+ days old, so they point at its parts. Finalize writes `skipped` for
 * such a source (out of time deployed; here the stored manifest pointer is made unreadable,
 * which finalize handles the same way), and gc must still keep those parts while a later
 * run carries from them without rewriting.
 */
describe('gc and a run whose comparison of the source it read was skipped', () => {
  let work: string;
  let home: string;
  let file: string;
  const docs = sampleDocuments(20, 9);
  const ids = docs.map((d) => d.id);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-skipped-reader-'));
    home = path.join(work, 'home');
    file = path.join(work, 'docs.jsonl');
    await writeFile(file, jsonl(docs));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const onDay = (day: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
  };
  interface Summary {
    runId: string;
    counts: { chunks: number; embedded: number; skippedUnchanged: number };
  }
  const runOn = async (day: number): Promise<Summary> => {
    onDay(day);
    const result = await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<Summary>();
  };
  const entryRuns = async (): Promise<Set<string>> => {
    const index = new LocalChunkIndex(path.join(home, 'state', 'chunk-index'));
    try {
      const found = await index.lookupDocs('docs', ids);
      return new Set([...found.values()].map((d) => d.chunks?.at.runId ?? 'none'));
    } finally {
      await index.close();
    }
  };
  const sourceStatuses = async (runId: string) =>
    (
      await sluice('query', `select status from sources where run_id = '${runId}'`, '--home', home, '--json')
    ).json<{ status: string }[]>();

  it('keeps the parts the entries point at, so the next run a week on carries every chunk', async () => {
    await runOn(0);
    // The source's manifest pointer, unreadable: the next finalize replaces it without comparing.
    const sourcesDir = path.join(home, 'bucket', 'runs', 'docs', 'sources');
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
    const gc = await sluice('gc', '--home', home, '--keep-runs', '1', '--json');
    expect(gc.code, gc.err.join('\n')).toBe(0);
    const decided = new Map(gc.json<GcReport>().runs.map((r) => [r.runId, r]));
    expect(decided.get(skipped.runId)).toMatchObject({ remove: false });

    const week = await runOn(17);
    expect(week.counts).toMatchObject({ embedded: 0, skippedUnchanged: week.counts.chunks });
    expect(await entryRuns()).toEqual(new Set([week.runId]));
  }, 120_000);
});
