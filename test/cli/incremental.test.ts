import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

describe('incremental runs', () => {
  let work: string;
  let home: string;
  let file: string;
  const docs = sampleDocuments(60, 5);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-incr-'));
    home = path.join(work, 'home');
    file = path.join(work, 'docs.jsonl');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('re-embeds only changed chunks, carries the rest, and counts removed chunks', async () => {
    await writeFile(file, jsonl(docs));
    const first = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    expect(first.counts.skippedUnchanged).toBe(0);

    const longest = [...docs].sort((a, b) => b.text.length - a.text.length)[0]!;
    const edited = docs.map((d) => {
      if (d.id === 'doc-0003') return { ...d, text: `${d.text} An extra closing sentence.` };
      if (d.id === longest.id) return { ...d, text: d.text.slice(0, 300) };
      return d;
    });
    await writeFile(file, jsonl(edited));
    const second = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    expect(second.counts.chunks).toBe(second.counts.embedded + second.counts.skippedUnchanged);
    expect(second.counts.embedded).toBeGreaterThanOrEqual(2);
    expect(second.counts.embedded).toBeLessThanOrEqual(4);
    expect(second.counts.removedChunks).toBeGreaterThan(0);
    expect(second.stats.endpointCalls).toBeGreaterThan(0);

    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    // Every chunk of the second run is in its table, and carried vectors equal the first run's.
    const [{ n }] = await q(`select count(*) as n from embeddings where run_id = '${second.runId}'`);
    expect(n).toBe(second.counts.chunks);
    const [{ differing }] = await q(
      `select count(*) as differing from embeddings a join embeddings b on a.chunk_id = b.chunk_id
       where a.run_id = '${first.runId}' and b.run_id = '${second.runId}' and a.text_sha256 = b.text_sha256 and a.embedding <> b.embedding`,
    );
    expect(differing).toBe(0);
  });

  it('reads carried vectors from the run that last wrote them, and embeds again what gc took away', async () => {
    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    const before = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    // Unchanged: nothing embedded, no endpoint call; the entries still point at the runs that
    // last wrote their documents (under a week old: test/cli/entry-refresh.test.ts).
    const unchanged = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    expect(unchanged.counts).toMatchObject({ embedded: 0, skippedUnchanged: unchanged.counts.chunks });
    expect(unchanged.stats.endpointCalls).toBe(0);
    const [{ differing }] = await q(
      `select count(*) as differing from embeddings a join embeddings b on a.chunk_id = b.chunk_id
       where a.run_id = '${before.runId}' and b.run_id = '${unchanged.runId}' and a.embedding <> b.embedding`,
    );
    expect(differing).toBe(0);

    // The parts the entries point at are gone (every run's here; gc removes a superseded run's): a miss, not a failure.
    const parts = await partsOf(path.join(home), 'r-');
    expect(parts.length).toBeGreaterThan(0);
    for (const part of parts) await rm(part);
    const afterGc = (await sluice('run', file, '--pipeline', 'docs', '--home', home, '--json')).json();
    expect(afterGc.status).toBe('succeeded');
    expect(afterGc.counts).toMatchObject({ embedded: afterGc.counts.chunks, skippedUnchanged: 0 });
  });
});

/** The `embeddings` parts of one run under a home. */
async function partsOf(dir: string, runId: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    if (entry.isFile() && full.includes(`${path.sep}embeddings${path.sep}`) && entry.name.startsWith(runId))
      found.push(full);
  }
  return found;
}

/** The README's query for the corpus as it is now: each source's chunks from the latest run that read it, unless deleted since. */
const CURRENT_EMBEDDINGS_SQL = `
  with latest as (
    select source_key, max_by(run_id, started_at) as run_id, max_by(status, started_at) as status
    from sources where status in ('read', 'deleted') group by source_key
  )
  select distinct e.source_key, e.doc_id from embeddings e
  join latest l on e.run_id = l.run_id and e.source_key = l.source_key
  where l.status = 'read'`;

describe('documents gone from a re-dropped source', () => {
  let work: string;
  let home: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-gone-'));
    home = path.join(work, 'home');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const run = async (...paths: string[]) =>
    (await sluice('run', ...paths, '--pipeline', 'docs', '--home', home, '--json')).json();
  const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
  /** Chunks per document in one run's `embeddings`. */
  const chunksIn = async (runId: string): Promise<Map<string, number>> =>
    new Map(
      (
        (await q(
          `select doc_id, count(*)::int as n from embeddings where run_id = '${runId}' group by doc_id`,
        )) as { doc_id: string; n: number }[]
      ).map((r) => [r.doc_id, r.n]),
    );

  it('counts the chunks of deleted documents beside those edits removed; an unchanged re-drop removes none', async () => {
    const file = path.join(work, 'corpus.jsonl');
    const docs = sampleDocuments(200, 11);
    await writeFile(file, jsonl(docs));
    const first = await run(file);
    expect(first.counts).toMatchObject({ removedChunks: 0, removedDocuments: 0 });
    expect(first.sources).toMatchObject({ compared: 1, skipped: 0 });

    // 5% of the documents deleted; two shortened (an edit that removes chunks), one lengthened.
    const deleted = new Set(docs.filter((_, i) => i % 20 === 7).map((d) => d.id));
    const long = docs.filter((d) => !deleted.has(d.id)).sort((a, b) => b.text.length - a.text.length);
    const shortened = new Set([long[0]!.id, long[1]!.id]);
    const edited = docs
      .filter((d) => !deleted.has(d.id))
      .map((d) => {
        if (shortened.has(d.id)) return { ...d, text: d.text.slice(0, 400) };
        if (d.id === 'doc-0003') return { ...d, text: `${d.text} One more closing sentence.` };
        return d;
      });
    await writeFile(file, jsonl(edited));
    const second = await run(file);

    const before = await chunksIn(first.runId);
    const after = await chunksIn(second.runId);
    const deletedChunks = [...deleted].reduce((sum, id) => sum + before.get(id)!, 0);
    const editRemoved = [...shortened].reduce((sum, id) => sum + before.get(id)! - after.get(id)!, 0);
    expect(deleted.size).toBe(10);
    expect(editRemoved).toBeGreaterThan(0);
    expect(second.counts).toMatchObject({
      removedDocuments: deleted.size,
      removedChunks: deletedChunks + editRemoved,
    });
    expect(second.sources).toMatchObject({ compared: 1, removedDocuments: 10, removedChunks: deletedChunks });
    const [{ n }] = await q(
      `select count(*)::int as n from runs where run_id = '${second.runId}' and removed_chunks = ${deletedChunks + editRemoved}`,
    );
    expect(n).toBe(1);

    const third = await run(file);
    expect(third.counts).toMatchObject({ removedDocuments: 0, removedChunks: 0, embedded: 0 });
  });

  it('does not count the chunks of a deleted document again when it comes back shorter', async () => {
    const file = path.join(work, 'comeback.jsonl');
    const docs = sampleDocuments(30, 13);
    const longest = [...docs].sort((a, b) => b.text.length - a.text.length)[0]!;
    await writeFile(file, jsonl(docs));
    const first = await run(file);
    const chunks = (await chunksIn(first.runId)).get(longest.id)!;
    expect(chunks).toBeGreaterThan(1);

    await writeFile(file, jsonl(docs.filter((d) => d.id !== longest.id)));
    const gone = await run(file);
    expect(gone.counts).toMatchObject({ removedDocuments: 1, removedChunks: chunks });

    // Back with only its opening: new chunks, and nothing removed (its chunks were counted when it went).
    await writeFile(
      file,
      jsonl(docs.map((d) => (d.id === longest.id ? { ...d, text: d.text.slice(0, 300) } : d))),
    );
    const back = await run(file);
    expect(back.counts).toMatchObject({ removedDocuments: 0, removedChunks: 0 });
    expect((await chunksIn(back.runId)).get(longest.id)).toBeLessThan(chunks);
  });

  it('does not count a document that moved to another file in an earlier run as removed from its old file', async () => {
    const first = path.join(work, 'moves-a.jsonl');
    const second = path.join(work, 'moves-b.jsonl');
    const docs = sampleDocuments(20, 17).map((d) => ({ ...d, id: `mv-${d.id}` }));
    const moving = docs[4]!;
    await writeFile(first, jsonl(docs));
    await run(first);

    // The document shows up in another file, dropped alone; then its old file is re-dropped without it.
    await writeFile(second, jsonl([moving]));
    expect((await run(second)).counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
    await writeFile(first, jsonl(docs.filter((d) => d !== moving)));
    expect((await run(first)).counts).toMatchObject({ removedDocuments: 0, removedChunks: 0 });

    // Gone from its new file too: now it is removed.
    await writeFile(second, jsonl([docs[5]!]));
    const gone = await run(second);
    expect(gone.counts.removedDocuments).toBe(1);
    expect(gone.counts.removedChunks).toBeGreaterThan(0);
  });

  it('packs several small files into one unit and counts only the documents one of them lost', async () => {
    const folder = path.join(work, 'small');
    await mkdir(folder);
    const docs = sampleDocuments(40, 3);
    const files = [0, 1, 2, 3].map((f) => docs.slice(f * 10, f * 10 + 10));
    for (const [f, part] of files.entries())
      await writeFile(path.join(folder, `part-${f}.jsonl`), jsonl(part));
    const first = await run(folder);
    expect(first.counts.units).toBe(1);
    expect(first.sources).toMatchObject({ compared: 4 });

    const lost = [files[2]![0]!.id, files[2]![5]!.id];
    await writeFile(path.join(folder, 'part-2.jsonl'), jsonl(files[2]!.filter((d) => !lost.includes(d.id))));
    const second = await run(folder);
    const before = await chunksIn(first.runId);
    expect(second.counts).toMatchObject({
      units: 1,
      removedDocuments: 2,
      removedChunks: before.get(lost[0]!)! + before.get(lost[1]!)!,
    });
    expect(second.sources).toMatchObject({ compared: 4, skipped: 0 });
  });

  it('mirrors a folder: a file deleted from it is a deleted source, and its documents count as removed', async () => {
    const folder = path.join(work, 'mirrored');
    await mkdir(folder);
    const docs = sampleDocuments(30, 23).map((d) => ({ ...d, id: `mir-${d.id}` }));
    const files = [0, 1, 2].map((f) => docs.slice(f * 10, f * 10 + 10));
    for (const [f, part] of files.entries())
      await writeFile(path.join(folder, `part-${f}.jsonl`), jsonl(part));
    const first = await run(folder);
    const before = await chunksIn(first.runId);

    // part-1 is deleted; one of its documents lives on in part-2 (moved, not removed).
    const [moved, ...lost] = files[1]!;
    await rm(path.join(folder, 'part-1.jsonl'));
    await writeFile(path.join(folder, 'part-2.jsonl'), jsonl([...files[2]!, moved!]));
    const second = await run(folder);

    expect(second.counts).toMatchObject({
      removedDocuments: lost.length,
      removedChunks: lost.reduce((sum, d) => sum + before.get(d.id)!, 0),
      embedded: 0,
    });
    expect(second.sources).toMatchObject({ compared: 3, deleted: 1, skipped: 0 });
    // The local bucket mirrors the folder, as the S3 bucket would after the deletion.
    const staged = (await q(
      `select distinct source_key from embeddings where run_id = '${second.runId}' order by 1`,
    )) as { source_key: string }[];
    expect(staged.map((r) => r.source_key)).toEqual([
      'incoming/docs/mirrored/part-0.jsonl',
      'incoming/docs/mirrored/part-2.jsonl',
    ]);
    await expect(
      stat(path.join(home, 'bucket', 'incoming', 'docs', 'mirrored', 'part-1.jsonl')),
    ).rejects.toMatchObject({ code: 'ENOENT' });

    // The sources table says what happened to each file, and so what the corpus is now.
    const rows = (await q(
      `select source_key, status, documents, removed_documents from sources where run_id = '${second.runId}' order by 1`,
    )) as { source_key: string; status: string; documents: number; removed_documents: number }[];
    expect(rows).toEqual([
      {
        source_key: 'incoming/docs/mirrored/part-0.jsonl',
        status: 'read',
        documents: 10,
        removed_documents: 0,
      },
      {
        source_key: 'incoming/docs/mirrored/part-1.jsonl',
        status: 'deleted',
        documents: 0,
        removed_documents: 9,
      },
      {
        source_key: 'incoming/docs/mirrored/part-2.jsonl',
        status: 'read',
        documents: 11,
        removed_documents: 0,
      },
    ]);
    const current = (await q(CURRENT_EMBEDDINGS_SQL)) as { source_key: string; doc_id: string }[];
    const mirrored = current.filter((r) => r.source_key.startsWith('incoming/docs/mirrored/'));
    expect(mirrored.map((r) => r.doc_id).sort()).toEqual(
      [...files[0]!, ...files[2]!, moved!].map((d) => d.id).sort(),
    );

    // Run again unchanged: the deleted file is not deleted twice.
    expect((await run(folder)).counts).toMatchObject({ removedDocuments: 0, embedded: 0 });
  });
});
