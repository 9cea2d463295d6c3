import { access, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
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

/**
 * A folder's file renamed (its documents move to another source), another left as it is,
 * then deleted and dropped again, over three weeks of runs and gc: every run carries what
 * its entries allow, and gc never removes a part an entry names.
 */
describe('entries through a rename, a deletion and a re-add, with gc between', () => {
  const dirs = { work: '', home: '', corpus: '' };
  const docsA = sampleDocuments(14, 31).map((d) => ({ ...d, id: `a-${d.id}` }));
  const docsC = sampleDocuments(10, 32).map((d) => ({ ...d, id: `c-${d.id}` }));
  const ids = [...docsA, ...docsC].map((d) => d.id);

  beforeAll(async () => {
    dirs.work = await mkdtemp(path.join(tmpdir(), 'sluice-refresh-moves-'));
    dirs.home = path.join(dirs.work, 'home');
    dirs.corpus = path.join(dirs.work, 'corpus');
    await mkdir(dirs.corpus);
    await writeFile(path.join(dirs.corpus, 'a.jsonl'), jsonl(docsA));
    await writeFile(path.join(dirs.corpus, 'c.jsonl'), jsonl(docsC));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(dirs.work, { recursive: true, force: true }));

  const onDay = (day: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
  };
  const runOn = async (day: number): Promise<Summary & { counts: { removedDocuments?: number } }> => {
    onDay(day);
    const result = await sluice('run', dirs.corpus, '--pipeline', 'docs', '--home', dirs.home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json();
  };
  /** Entries by document: the run they name (its part there) and their source's file name. */
  const entries = async (): Promise<Map<string, { runId: string; source: string }>> => {
    const index = new LocalChunkIndex(path.join(dirs.home, 'state', 'chunk-index'));
    const out = new Map<string, { runId: string; source: string }>();
    try {
      for (const [id, doc] of await index.lookupDocs('docs', ids)) {
        const at = doc.chunks?.at;
        if (!at) continue;
        await access(path.join(dirs.home, 'bucket', unitPartKey('embeddings', 'docs', at.runId, at.unitId)));
        out.set(id, { runId: at.runId, source: path.basename(doc.sourceKey ?? '') });
      }
    } finally {
      await index.close();
    }
    return out;
  };
  const namedRuns = async () => new Set([...(await entries()).values()].map((e) => e.runId));
  const gcOn = async (day: number) => {
    onDay(day);
    const result = await sluice('gc', '--home', dirs.home, '--keep-runs', '1', '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    const decided = new Map(result.json<GcReport>().runs.map((r) => [r.runId, r.remove]));
    for (const runId of await namedRuns()) expect(decided.get(runId), `day ${day}: ${runId}`).toBe(false);
    return decided;
  };
  const carriedAll = (run: Summary) =>
    expect(run.counts).toMatchObject({ embedded: 0, skippedUnchanged: run.counts.chunks });

  it('carries every moved document, embeds only what a deletion forgot, and gc keeps every named part', async () => {
    const r0 = await runOn(0);
    carriedAll(await runOn(2));
    expect(await namedRuns()).toEqual(new Set([r0.runId]));

    // Day 5: a.jsonl renamed b.jsonl. Its documents are carried and recorded under b (another
    // source); c's, fresh, are left naming day 0.
    await rename(path.join(dirs.corpus, 'a.jsonl'), path.join(dirs.corpus, 'b.jsonl'));
    const r5 = await runOn(5);
    carriedAll(r5);
    expect(r5.counts.removedDocuments ?? 0).toBe(0);
    const moved = await entries();
    for (const d of docsA) expect(moved.get(d.id)).toEqual({ runId: r5.runId, source: 'b.jsonl' });
    for (const d of docsC) expect(moved.get(d.id)).toEqual({ runId: r0.runId, source: 'c.jsonl' });

    // Day 9: day 0's parts are 9 days old but c's entries name them.
    expect((await gcOn(9)).get(r0.runId)).toBe(false);
    const r9 = await runOn(9.5);
    carriedAll(r9);
    expect((await gcOn(14)).get(r0.runId)).toBe(true);
    const r14 = await runOn(14.5);
    carriedAll(r14);
    expect(await namedRuns()).toEqual(new Set([r9.runId, r14.runId]));

    // Day 16: c.jsonl deleted (its entries forgotten); day 17 it is back: embedded anew.
    const cFile = path.join(dirs.corpus, 'c.jsonl');
    await rm(cFile);
    const r16 = await runOn(16);
    expect(r16.counts.removedDocuments).toBe(docsC.length);
    await gcOn(16.5);
    await writeFile(cFile, jsonl(docsC));
    const r17 = await runOn(17);
    expect((await entries()).size).toBe(ids.length); // every document has an entry again
    expect(r17.counts.embedded).toBeGreaterThan(0);
    expect(r17.counts.embedded).toBeLessThan(r17.counts.chunks);
    await gcOn(18);
    await gcOn(26);
    carriedAll(await runOn(26.5));
    await gcOn(40);
    carriedAll(await runOn(40.5));
  }, 300_000);
});

/**
 * A gzip source split into re-staged parts (`staging/<runId>/`, a new key each run): its
 * documents' entries keep the source's own key, so an unchanged re-run within the week
 * leaves them naming the first run, and a week on rewrites them.
 */
describe('entries of a gzip source re-staged into parts', () => {
  const dirs = { work: '', home: '', pipelines: '' };
  const docs = sampleDocuments(40, 41);
  const ids = docs.map((d) => d.id);
  let file: string;

  beforeAll(async () => {
    dirs.work = await mkdtemp(path.join(tmpdir(), 'sluice-refresh-gzip-'));
    dirs.home = path.join(dirs.work, 'home');
    dirs.pipelines = path.join(dirs.work, 'pipelines');
    await mkdir(dirs.pipelines);
    const config = JSON.parse(await readFile(path.join('pipelines', 'docs.json'), 'utf8'));
    await writeFile(
      path.join(dirs.pipelines, 'docs.json'),
      JSON.stringify({ ...config, planning: { ...config.planning, targetUnitTokens: 400 } }),
    );
    file = path.join(dirs.work, 'docs.jsonl.gz');
    await writeFile(file, gzipSync(jsonl(docs)));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(dirs.work, { recursive: true, force: true }));

  const runOn = async (day: number): Promise<Summary> => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
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
  const entries = async () => {
    const index = new LocalChunkIndex(path.join(dirs.home, 'state', 'chunk-index'));
    try {
      const found = [...(await index.lookupDocs('docs', ids)).values()];
      return {
        runs: new Set(found.map((d) => d.chunks?.at.runId)),
        sources: new Set(found.map((d) => d.sourceKey)),
      };
    } finally {
      await index.close();
    }
  };

  it('leaves the entries naming the first run within the week, and rewrites them a week on', async () => {
    const first = await runOn(0);
    expect(first.counts.units).toBeGreaterThan(2);
    expect(await readdir(path.join(dirs.home, 'bucket', 'staging', first.runId))).not.toEqual([]);
    expect(await entries()).toEqual({
      runs: new Set([first.runId]),
      sources: new Set(['incoming/docs/docs.jsonl.gz']),
    });
    const again = await runOn(1);
    expect(again.counts).toMatchObject({ embedded: 0, skippedUnchanged: again.counts.chunks });
    expect((await entries()).runs).toEqual(new Set([first.runId]));
    const week = await runOn(7.5);
    expect(week.counts).toMatchObject({ embedded: 0, skippedUnchanged: week.counts.chunks });
    expect((await entries()).runs).toEqual(new Set([week.runId]));
  }, 120_000);
});
