import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import type { IndexedDoc } from '../../shared/ports/chunk-index.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-11-02T01:00:00Z');

interface Summary {
  runId: string;
  status: string;
  counts: { chunks: number; embedded: number; skippedUnchanged: number; rejected: number; units: number };
}

// biome-ignore lint/suspicious/noExplicitAny: a pipeline config read as JSON, changed key by key.
type Config = Record<string, any>;

/** A home and a pipelines folder holding the docs pipeline with `changes` applied. */
function useHome(changes: (config: Config) => Config) {
  const dirs = { work: '', home: '', pipelines: '' };
  beforeAll(async () => {
    dirs.work = await mkdtemp(path.join(tmpdir(), 'sluice-carry-runs-'));
    dirs.home = path.join(dirs.work, 'home');
    dirs.pipelines = path.join(dirs.work, 'pipelines');
    await mkdir(dirs.pipelines);
    await writePipeline(changes);
  });
  afterAll(() => rm(dirs.work, { recursive: true, force: true }));
  const writePipeline = async (change: (config: Config) => Config) => {
    const config = JSON.parse(await readFile(path.join('pipelines', 'docs.json'), 'utf8'));
    await writeFile(path.join(dirs.pipelines, 'docs.json'), JSON.stringify(change(config)));
  };
  const run = async (file: string, code = 0): Promise<Summary> => {
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
    expect(result.code, result.err.join('\n')).toBe(code);
    return result.json<Summary>();
  };
  const q = async (sql: string) => (await sluice('query', sql, '--home', dirs.home, '--json')).json();
  const entries = async (ids: readonly string[]): Promise<Map<string, IndexedDoc>> => {
    const index = new LocalChunkIndex(path.join(dirs.home, 'state', 'chunk-index'));
    try {
      return await index.lookupDocs('docs', ids);
    } finally {
      await index.close();
    }
  };
  return { dirs, run, q, entries, writePipeline };
}

/** Chunks of run `b` whose text run `a` also embedded, and how many of them got another vector. */
async function sameTextVectors(q: (sql: string) => Promise<Config[]>, a: string, b: string) {
  const [row] = await q(
    `select count(*) as same, count(*) filter (where x.embedding <> y.embedding) as differing
     from embeddings x join embeddings y on x.chunk_id = y.chunk_id and x.text_sha256 = y.text_sha256
     where x.run_id = '${a}' and y.run_id = '${b}'`,
  );
  return row as { same: number; differing: number };
}

describe('duplicate ids across small units, run again unchanged', () => {
  const { dirs, run, q } = useHome((c) => ({
    ...c,
    planning: { ...c.planning, targetUnitTokens: 300 },
    run: { toleratedRejectPercent: 100 },
  }));

  it('carries the kept records with their own vectors and counts every chunk once', async () => {
    const docs = sampleDocuments(60, 11);
    // Every fifth document's id again, later in the file, with another text: the later record is kept.
    const records = [
      ...docs,
      ...docs.filter((_, i) => i % 5 === 0).map((d) => ({ ...d, text: `${d.text} Revised.` })),
    ];
    const file = path.join(dirs.work, 'docs.jsonl');
    await writeFile(file, jsonl(records));
    const first = await run(file);
    expect(first.counts.units).toBeGreaterThan(3);
    expect(first.counts.rejected).toBe(12);
    const again = await run(file);
    expect(again.counts).toMatchObject({ chunks: first.counts.chunks, rejected: 12 });
    expect(again.counts.embedded + again.counts.skippedUnchanged).toBe(again.counts.chunks);
    const [{ n }] = await q(`select count(*) as n from embeddings where run_id = '${again.runId}'`);
    expect(n).toBe(again.counts.chunks);
    const { same, differing } = await sameTextVectors(q, first.runId, again.runId);
    expect(differing).toBe(0);
    expect(same).toBe(first.counts.chunks);
    // Every other document carries, wherever the rule moved its rows up (before, 44 chunks
    // were embedded again here). Only chunks of the duplicated ids may be: the unit of the
    // earlier record records its entry before the later record's unit looks it up.
    const duplicated = docs.filter((_, i) => i % 5 === 0).map((d) => `'${d.id}'`);
    const [{ n: ofDuplicated }] = await q(
      `select count(*) as n from embeddings where run_id = '${again.runId}' and doc_id in (${duplicated.join(', ')})`,
    );
    expect(again.counts.embedded).toBeLessThanOrEqual(ofDuplicated);
  }, 120_000);
});

describe('endpoint.dimension changed, model id kept', () => {
  const { dirs, run, q, writePipeline } = useHome((c) => c);

  it('embeds every chunk again at the new dimension, carrying no vector of the old one', async () => {
    const file = path.join(dirs.work, 'docs.jsonl');
    await writeFile(file, jsonl(sampleDocuments(20, 3)));
    const first = await run(file);
    await writePipeline((c) => ({ ...c, endpoint: { ...c.endpoint, dimension: 256 } }));
    const second = await run(file);
    expect(second.counts).toMatchObject({ embedded: first.counts.chunks, skippedUnchanged: 0 });
    const lengths = await q(
      `select len(embedding) as d, count(*) as n from embeddings where run_id = '${second.runId}' group by 1`,
    );
    expect(lengths).toEqual([{ d: 256, n: second.counts.chunks }]);
    const third = await run(file);
    expect(third.counts).toMatchObject({ embedded: 0, skippedUnchanged: first.counts.chunks });
  }, 120_000);
});

describe('gc with keep-runs 1 over runs on days 0, 3, 5 (failed), 9 and 18', () => {
  const { dirs, run, entries } = useHome((c) => c);
  afterEach(() => {
    vi.useRealTimers();
  });
  const onDay = (day: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(T0 + day * DAY_MS);
  };
  const gcOn = async (day: number) => {
    onDay(day);
    const result = await sluice('gc', '--home', dirs.home, '--keep-runs', '1', '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<GcReport>();
  };
  /** Entries whose part is gone from the home. */
  const dangling = async (ids: readonly string[]) => {
    const gone: string[] = [];
    for (const [id, doc] of await entries(ids)) {
      const at = doc.chunks?.at;
      if (!at) continue;
      const file = path.join(dirs.home, 'bucket', unitPartKey('embeddings', 'docs', at.runId, at.unitId));
      if (
        !(await access(file).then(
          () => true,
          () => false,
        ))
      )
        gone.push(id);
    }
    return gone;
  };

  it('never removes a part an entry points at, and every run after carries what it can', async () => {
    const docs = sampleDocuments(30, 5);
    const ids = docs.map((d) => d.id);
    const file = path.join(dirs.work, 'docs.jsonl');
    const edit = (n: number, tag: string) =>
      docs.map((d, i) => (i < n ? { ...d, text: `${d.text} ${tag}` } : d));

    onDay(0);
    await writeFile(file, jsonl(docs));
    await run(file);
    onDay(3);
    await writeFile(file, jsonl(edit(5, 'Edited on day 3.')));
    const day3 = await run(file);
    expect(day3.counts.embedded).toBeGreaterThan(0);
    expect(await dangling(ids)).toEqual([]);

    // Day 5: the same documents, two edited again, and rejects past the tolerated share: the run fails.
    onDay(5);
    const bad = Array.from({ length: 10 }, (_, i) => ({ id: `bad-${i}`, title: 'no text' }));
    const day5Docs = edit(5, 'Edited on day 3.').map((d, i) =>
      i < 2 ? { ...d, text: `${d.text} And on day 5.` } : d,
    );
    await writeFile(file, jsonl([...day5Docs, ...bad]));
    const failed = await run(file, 1);
    expect(failed.status).toBe('failed');
    await gcOn(9);
    expect(await dangling(ids)).toEqual([]);

    onDay(9);
    await writeFile(file, jsonl(edit(5, 'Edited on day 3.')));
    const day9 = await run(file);
    expect(day9.status).toBe('succeeded');
    // Documents 0 and 1 go back to their day-3 text: their last chunks are embedded again
    // (their entries name the failed run's rows), every other chunk is carried.
    expect(day9.counts.embedded).toBe(2);
    const report = await gcOn(10);
    expect(await dangling(ids)).toEqual([]);
    expect(report.runs.filter((r) => r.remove).length).toBeGreaterThan(0);

    await gcOn(18);
    expect(await dangling(ids)).toEqual([]);
    onDay(18);
    const day18 = await run(file);
    expect(day18.counts).toMatchObject({ embedded: 0, skippedUnchanged: day18.counts.chunks });
    await gcOn(27);
    expect(await dangling(ids)).toEqual([]);
  }, 240_000);
});
