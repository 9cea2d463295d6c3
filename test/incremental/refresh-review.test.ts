import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-11-02T01:00:00Z');

interface Summary {
  runId: string;
  counts: { chunks: number; embedded: number; skippedUnchanged: number; rejected: number; units: number };
}

/**
 * The weekly entry refresh where finalize's duplicate-id rule rewrites the parts the
 * refreshed entries name: runs of many small units over records of which some ids come
 * twice (the later record kept, the earlier's rows taken out of its unit's part, rows after
 * it moved up). Each run carries from the part its entries name, rewritten or not, and
 * every carried vector is the one the model gives that text; gc keeps every part an entry
 * names.
 */
describe('entries refreshed into parts the duplicate-id rule rewrote', () => {
  const dirs = { work: '', home: '', pipelines: '' };
  let file: string;
  const docs = sampleDocuments(48, 13);
  const duplicated = docs.filter((_, i) => i % 6 === 0);
  const records = [...docs, ...duplicated.map((d) => ({ ...d, text: `${d.text} Revised.` }))];
  const ids = docs.map((d) => d.id);

  beforeAll(async () => {
    dirs.work = await mkdtemp(path.join(tmpdir(), 'sluice-refresh-review-'));
    dirs.home = path.join(dirs.work, 'home');
    dirs.pipelines = path.join(dirs.work, 'pipelines');
    await mkdir(dirs.pipelines);
    const config = JSON.parse(await readFile(path.join('pipelines', 'docs.json'), 'utf8'));
    await writeFile(
      path.join(dirs.pipelines, 'docs.json'),
      JSON.stringify({
        ...config,
        planning: { ...config.planning, targetUnitTokens: 300 },
        run: { toleratedRejectPercent: 100 },
      }),
    );
    file = path.join(dirs.work, 'docs.jsonl');
    await writeFile(file, jsonl(records));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(dirs.work, { recursive: true, force: true }));

  const onDay = (day: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
  };
  const runOn = async (day: number): Promise<Summary> => {
    onDay(day);
    const result = await sluice(
      'run',
      file,
      '--pipeline',
      'docs',
      '--pipelines',
      dirs.pipelines,
      '--home',
      dirs.home,
      '--json',
    );
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<Summary>();
  };
  const gcOn = async (day: number): Promise<GcReport> => {
    onDay(day);
    const result = await sluice('gc', '--home', dirs.home, '--keep-runs', '1', '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<GcReport>();
  };
  const q = async (sql: string) =>
    (await sluice('query', sql, '--home', dirs.home, '--json')).json<Record<string, number>[]>();
  /** Run id each document's entry names, every named part still there. */
  const entryRuns = async (): Promise<Map<string, string>> => {
    const index = new LocalChunkIndex(path.join(dirs.home, 'state', 'chunk-index'));
    const out = new Map<string, string>();
    try {
      for (const [id, doc] of await index.lookupDocs('docs', ids)) {
        const at = doc.chunks?.at;
        if (!at) continue;
        await access(path.join(dirs.home, 'bucket', unitPartKey('embeddings', 'docs', at.runId, at.unitId)));
        out.set(id, at.runId);
      }
    } finally {
      await index.close();
    }
    return out;
  };
  /** Chunks of run `b` whose text run `a` embedded too, and how many got another vector. */
  const againstFirst = async (a: string, b: string) =>
    (
      await q(
        `select count(*) as same, count(*) filter (where x.embedding <> y.embedding) as differing
         from embeddings x join embeddings y on x.chunk_id = y.chunk_id and x.text_sha256 = y.text_sha256
         where x.run_id = '${a}' and y.run_id = '${b}'`,
      )
    )[0]!;
  /** Chunks of the duplicated ids in run `runId`: the only ones a re-run may embed again. */
  const ofDuplicated = async (runId: string) =>
    (
      await q(
        `select count(*) as n from embeddings where run_id = '${runId}' and doc_id in (${duplicated.map((d) => `'${d.id}'`).join(', ')})`,
      )
    )[0]!.n!;

  it('carries true vectors through the refresh and the rewrite, and gc keeps what the entries name', async () => {
    const first = await runOn(0);
    expect(first.counts.units).toBeGreaterThan(3);
    expect(first.counts.rejected).toBe(duplicated.length);

    /** Against `reference`, a run whose vectors are the model's (the first, or one checked against it). */
    const checkCarried = async (run: Summary, reference = first) => {
      expect(run.counts.embedded + run.counts.skippedUnchanged).toBe(run.counts.chunks);
      expect(run.counts.embedded).toBeLessThanOrEqual(await ofDuplicated(run.runId));
      const { same, differing } = await againstFirst(reference.runId, run.runId);
      expect(differing).toBe(0);
      expect(same).toBe(first.counts.chunks);
    };

    // Day 8: every entry is 8 days old, so each document carried is recorded again, naming
    // this run's parts, which its finalize then rewrites (duplicates dropped).
    const refreshed = await runOn(8);
    await checkCarried(refreshed);
    const afterRefresh = await entryRuns();
    const named = new Set(afterRefresh.values());
    expect(named.has(first.runId)).toBe(false);

    // Day 9: fresh entries, left naming day 8's rewritten parts (rows moved up): still carried.
    const next = await runOn(9);
    await checkCarried(next);
    expect(next.counts.skippedUnchanged).toBeGreaterThanOrEqual(refreshed.counts.skippedUnchanged);
    const unchanged = [...(await entryRuns())].filter(([id, runId]) => afterRefresh.get(id) === runId);
    expect(unchanged.length).toBeGreaterThan(ids.length / 2);

    // gc on day 17: day 8's parts are 9 days old but still named, and day 9 read the source
    // only a day after them; day 0's go.
    const report = await gcOn(17);
    const decided = new Map(report.runs.map((r) => [r.runId, r.remove]));
    expect(decided.get(first.runId)).toBe(true);
    expect(decided.get(refreshed.runId)).toBe(false);
    await entryRuns(); // every named part still there

    // Day 17.5: 9.5 days after day 8, so every document is recorded again; nothing is lost.
    const week = await runOn(17.5);
    await checkCarried(week, next);
    expect(week.counts.embedded).toBeLessThanOrEqual(next.counts.embedded);
    expect(new Set((await entryRuns()).values())).not.toContain(refreshed.runId);
  }, 240_000);
});
