import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../cli/gc/local-gc.ts';
import type { NearestChunk } from '../../shared/views/nearest-chunks.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

/**
 * One pipeline, `docs`, whose `incremental.enabled` is turned off and on again between runs
 * over the same files (the clock faked so gc's 8-day hold is past by the end):
 *
 *   R1 day 0,  incremental:     corpus/{a,b,c,d,f}.jsonl and other/e.jsonl
 *   R2 day 10, not incremental: the same folders; a1 and e1 edited, c3 removed from c.jsonl,
 *                               d.jsonl deleted from the folder
 *   R3 day 20, incremental:     corpus/ only; a2 edited, b.jsonl deleted
 *   R4 day 30, incremental:     corpus/ with an empty d.jsonl dropped in it
 *
 * A source's latest run decides it whether that run kept manifests or not: R2 wrote no
 * `sources` rows, and its chunks of a, b, c and e must still replace R1's `read` verdicts.
 * d.jsonl, deleted while incremental was off, is not noticed (no run records it): it keeps
 * R1's documents until a run reads it again, here R4 reading an empty file under its name
 * (docs/search.md).
 */
const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-11-02T08:00:00Z');
const onDay = (day: number) => {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(T0 + day * DAY_MS);
};

interface Doc {
  id: string;
  text: string;
}
const doc = (id: string, words: string): Doc => ({ id, text: `Document ${id} is about ${words}.` });
/** A document of several chunks (one paragraph each, about 300 tokens apiece). */
const long = (id: string, edit = ''): Doc => ({
  id,
  text: ['lock gates and weirs', 'towpaths and narrowboats', 'reservoirs and feeder channels']
    .map((topic, i) => `${`Paragraph ${i} of ${id} covers ${topic}${i === 1 ? edit : ''}. `.repeat(30)}`)
    .join('\n\n'),
});

/** One row per document the view holds. */
interface DocVersion {
  doc_id: string;
  chunks: number;
  distinct_chunks: number;
  runs: number;
  run_id: string;
  source_key: string;
  text: string;
}

const VERSIONS_SQL = `
  select doc_id, count(*)::int as chunks, count(distinct chunk_id)::int as distinct_chunks,
         count(distinct run_id)::int as runs, min(run_id) as run_id, min(source_key) as source_key,
         string_agg(chunk_text, ' ' order by chunk_index) as text
  from embeddings_current where pipeline = 'docs' group by doc_id order by doc_id`;

describe('embeddings_current when a pipeline turns incremental.enabled off and on again', () => {
  let work: string;
  let home: string;
  let corpus: string;
  let other: string;
  let offPipelines: string;
  const runs: string[] = [];
  /** The view after each run, by document id. */
  const after: Map<string, DocVersion>[] = [];
  /** `sluice search` for a1's edited text after R2. */
  let searched: NearestChunk[] = [];

  const q = async <T>(sql: string): Promise<T[]> => {
    const result = await sluice('query', sql, '--home', home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<T[]>();
  };
  const current = async () => new Map((await q<DocVersion>(VERSIONS_SQL)).map((d) => [d.doc_id, d]));
  const run = async (day: number, incremental: boolean, ...inputs: string[]) => {
    onDay(day);
    const pipelines = incremental ? [] : ['--pipelines', offPipelines];
    const result = await sluice(
      'run',
      ...inputs,
      '--pipeline',
      'docs',
      ...pipelines,
      '--home',
      home,
      '--json',
      '--threads',
      '0',
    );
    vi.useRealTimers();
    expect(result.code, result.err.join('\n')).toBe(0);
    const summary = result.json<{ runId: string; sources?: unknown }>();
    expect(summary.sources === undefined).toBe(!incremental);
    runs.push(summary.runId);
    after.push(await current());
  };
  const write = (file: string, docs: Doc[]) => writeFile(file, docs.length === 0 ? '' : jsonl(docs));

  const a1 = long('a1');
  const a1Off = long('a1', ' EDITED-WHILE-OFF');
  const a2 = doc('a2', 'sluice gates');
  const a2On = doc('a2', 'sluice gates EDITED-WHEN-ON-AGAIN');
  const [b1, b2] = [doc('b1', 'barges'), doc('b2', 'tolls')];
  const [c1, c2, c3] = [doc('c1', 'aqueducts'), doc('c2', 'tunnels'), doc('c3', 'inclined planes')];
  const d1 = doc('d1', 'boat lifts');
  const e1 = doc('e1', 'dredging');
  const e1Off = doc('e1', 'dredging EDITED-WHILE-OFF');
  const e2 = doc('e2', 'lock keepers');
  const fillers = Array.from({ length: 10 }, (_, i) => doc(`f${i}`, `canal mile ${i}`));
  const fillerIds = fillers.map((f) => f.id);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-toggle-'));
    home = path.join(work, 'home');
    corpus = path.join(work, 'corpus');
    other = path.join(work, 'other');
    offPipelines = path.join(work, 'pipelines');
    await Promise.all([mkdir(corpus), mkdir(other), mkdir(offPipelines)]);
    const docs = JSON.parse(await readFile('pipelines/docs.json', 'utf8'));
    await writeFile(
      path.join(offPipelines, 'docs.json'),
      JSON.stringify({ ...docs, incremental: { enabled: false } }),
    );
    const at = (folder: string, name: string) => path.join(folder, name);

    await write(at(corpus, 'a.jsonl'), [a1, a2]);
    await write(at(corpus, 'b.jsonl'), [b1, b2]);
    await write(at(corpus, 'c.jsonl'), [c1, c2, c3]);
    await write(at(corpus, 'd.jsonl'), [d1]);
    await write(at(other, 'e.jsonl'), [e1, e2]);
    // Unchanged throughout: enough records that R4's empty file (one reject) stays tolerated.
    await write(at(corpus, 'f.jsonl'), fillers);
    await run(0, true, corpus, other);

    await write(at(corpus, 'a.jsonl'), [a1Off, a2]);
    await write(at(corpus, 'c.jsonl'), [c1, c2]);
    await unlink(at(corpus, 'd.jsonl'));
    await write(at(other, 'e.jsonl'), [e1Off, e2]);
    await run(10, false, corpus, other);
    const search = await sluice('search', a1Off.text, '--pipeline', 'docs', '--home', home, '--json');
    expect(search.code, search.err.join('\n')).toBe(0);
    searched = search.json<NearestChunk[]>();

    await write(at(corpus, 'a.jsonl'), [a1Off, a2On]);
    await unlink(at(corpus, 'b.jsonl'));
    await run(20, true, corpus);

    await write(at(corpus, 'd.jsonl'), []);
    await run(30, true, corpus);
  }, 300_000);
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** Which run (1-based) each document but the fillers comes from, and from how many. */
  const shape = (view: Map<string, DocVersion>) =>
    Object.fromEntries(
      [...view.values()]
        .filter((d) => !fillerIds.includes(d.doc_id))
        .map((d) => [d.doc_id, { run: runs.indexOf(d.run_id) + 1, runs: d.runs }]),
    );
  /** The run (1-based) each filler comes from. */
  const fillerRuns = (view: Map<string, DocVersion>) =>
    new Set(fillerIds.map((id) => runs.indexOf(view.get(id)?.run_id ?? '') + 1));
  /** Every chunk of each document once, and all the chunks its run wrote of it. */
  const expectWholeVersions = async (view: Map<string, DocVersion>) => {
    const written = await q<{ doc_id: string; run_id: string; n: number }>(
      `select doc_id, run_id, count(*)::int as n from embeddings group by doc_id, run_id`,
    );
    for (const d of view.values()) {
      expect(d.distinct_chunks, d.doc_id).toBe(d.chunks);
      expect(written.find((w) => w.doc_id === d.doc_id && w.run_id === d.run_id)?.n, d.doc_id).toBe(d.chunks);
    }
  };

  it('takes every source a non-incremental run read from that run, not from the older incremental verdicts', async () => {
    const view = after[1]!;
    expect(shape(view)).toEqual({
      a1: { run: 2, runs: 1 },
      a2: { run: 2, runs: 1 },
      b1: { run: 2, runs: 1 },
      b2: { run: 2, runs: 1 },
      c1: { run: 2, runs: 1 },
      c2: { run: 2, runs: 1 },
      // Deleted while incremental was off: no run recorded it, so R1's snapshot of d stays.
      d1: { run: 1, runs: 1 },
      e1: { run: 2, runs: 1 },
      e2: { run: 2, runs: 1 },
    });
    expect(fillerRuns(view)).toEqual(new Set([2]));
    expect(view.get('a1')!.chunks).toBeGreaterThan(1);
    expect(view.get('a1')!.text).toContain('EDITED-WHILE-OFF');
    expect(view.get('e1')!.text).toContain('EDITED-WHILE-OFF');
    await expectWholeVersions(view);
  });

  it('makes sluice search return the non-incremental run’s chunks, each chunk once', () => {
    expect(searched[0]).toMatchObject({ docId: 'a1', runId: runs[1] });
    expect(searched.some((r) => r.runId === runs[0] && r.docId === 'a1')).toBe(false);
    expect(new Set(searched.map((r) => r.chunkId)).size).toBe(searched.length);
    expect(searched.find((r) => r.text.includes('EDITED-WHILE-OFF'))?.runId).toBe(runs[1]);
  });

  it('applies an incremental run again once it is back on: its edits and the deletion it notices', async () => {
    const view = after[2]!;
    expect(shape(view)).toEqual({
      a1: { run: 3, runs: 1 },
      a2: { run: 3, runs: 1 },
      c1: { run: 3, runs: 1 },
      c2: { run: 3, runs: 1 },
      d1: { run: 1, runs: 1 },
      e1: { run: 2, runs: 1 },
      e2: { run: 2, runs: 1 },
    });
    expect(view.get('a1')!.text).toContain('EDITED-WHILE-OFF');
    expect(fillerRuns(view)).toEqual(new Set([3]));
    expect(view.get('a2')!.text).toContain('EDITED-WHEN-ON-AGAIN');
    expect(view.get('e1')!.text).toContain('EDITED-WHILE-OFF');
    await expectWholeVersions(view);
  });

  it('drops a file deleted while incremental was off once an incremental run reads it empty', async () => {
    const view = after[3]!;
    expect(view.has('d1')).toBe(false);
    expect([...view.keys()]).toEqual(['a1', 'a2', 'c1', 'c2', 'e1', 'e2', ...fillerIds]);
    expect(fillerRuns(view)).toEqual(new Set([4]));
    await expectWholeVersions(view);
  });

  it('keeps through gc --keep-runs 1 the non-incremental run the view still reads', async () => {
    const before = await q<{ chunk_id: string; run_id: string }>(
      'select chunk_id, run_id, text_sha256 from embeddings_current order by chunk_id',
    );
    expect(new Set(before.map((r) => r.run_id))).toEqual(new Set([runs[1], runs[3]]));

    onDay(45);
    const result = await sluice('gc', '--home', home, '--keep-runs', '1', '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    const decided = new Map(result.json<GcReport>().runs.map((r) => [r.runId, r]));
    expect(decided.get(runs[3]!)).toMatchObject({ remove: false, reason: 'among the newest 1' });
    // R2 is neither the newest nor held for the chunk index (it wrote no `sources` rows),
    // yet it holds e.jsonl's current chunks: only the view's own rule keeps it.
    expect(decided.get(runs[1]!)).toMatchObject({ remove: false, reason: 'the current state reads it' });
    // R1 is superseded everywhere, but e.jsonl's chunk index entries still point at it:
    // R2 read e without an index, so no run has refreshed them.
    expect(decided.get(runs[0]!)).toMatchObject({
      remove: false,
      reason: expect.stringMatching(/chunk index/),
    });

    expect(await q('select chunk_id, run_id, text_sha256 from embeddings_current order by chunk_id')).toEqual(
      before,
    );
  });
});
