import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { CURRENT_VIEWS } from '../../shared/views/current-views.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

type Doc = ReturnType<typeof sampleDocuments>[number];

/** One row per document the view holds: its chunk count, the runs and sources its chunks came from. */
interface DocVersion {
  doc_id: string;
  chunks: number;
  runs: number;
  run_id: string;
  source_key: string;
  text: string;
}

const VERSIONS_SQL = (view: string) => `
  select doc_id, count(*)::int as chunks, count(distinct run_id)::int as runs, min(run_id) as run_id,
         min(source_key) as source_key, string_agg(chunk_text, ' ' order by chunk_index) as text
  from ${view} group by doc_id order by doc_id`;

describe('embeddings_current over runs that add, change, move and delete documents', () => {
  let work: string;
  let home: string;
  let folder: string;
  const runIds: string[] = [];

  const run = async (...args: string[]) => {
    const result = await sluice('run', ...args, '--home', home, '--json', '--threads', '0');
    expect(result.code, result.err.join('\n')).toBe(0);
    const summary = result.json<{ runId: string }>();
    runIds.push(summary.runId);
    return summary;
  };
  const q = async <T>(sql: string): Promise<T[]> => {
    const result = await sluice('query', sql, '--home', home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<T[]>();
  };
  const current = async () =>
    new Map((await q<DocVersion>(VERSIONS_SQL('embeddings_current'))).map((d) => [d.doc_id, d]));

  const docs = sampleDocuments(24, 31);
  const [a, b] = [docs.slice(0, 12), docs.slice(12)];
  const edited = a[1]!;
  const removed = a[2]!;
  const moved = a[3]!;
  const added: Doc = {
    id: 'doc-new',
    title: 'New',
    source: 'test',
    text: 'A document added by the second run.',
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-current-'));
    home = path.join(work, 'home');
    folder = path.join(work, 'corpus');
    await mkdir(folder);
    await writeFile(path.join(folder, 'a.jsonl'), jsonl(a));
    await writeFile(path.join(folder, 'b.jsonl'), jsonl(b));
    await run(folder, '--pipeline', 'docs');

    // Run 2: in a.jsonl one document edited, one deleted, one added; b.jsonl unchanged.
    const a2 = [
      ...a
        .filter((d) => d !== removed)
        .map((d) => (d === edited ? { ...d, text: `${d.text} EDITED-IN-RUN-2.` } : d)),
      added,
    ];
    await writeFile(path.join(folder, 'a.jsonl'), jsonl(a2));
    await run(folder, '--pipeline', 'docs');

    // Run 3: b.jsonl deleted from the folder (a deleted source); a.jsonl as it was.
    await unlink(path.join(folder, 'b.jsonl'));
    await run(folder, '--pipeline', 'docs');

    // Run 4: one document of a.jsonl shows up, changed, in a file dropped on its own.
    const elsewhere = path.join(work, 'moved.jsonl');
    await writeFile(elsewhere, jsonl([{ ...moved, text: `${moved.text} MOVED-IN-RUN-4.` }]));
    await run(elsewhere, '--pipeline', 'docs');
  }, 180_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('holds several versions of a document in the plain table, which is why the view exists', async () => {
    const versions = await q<DocVersion>(VERSIONS_SQL('embeddings'));
    expect(versions.find((d) => d.doc_id === a[0]!.id)?.runs).toBe(3);
  });

  it('returns every live document once, from one run, with the latest text', async () => {
    const now = await current();
    const live = [...a.filter((d) => d !== removed), added].map((d) => d.id).sort();
    expect([...now.keys()].sort()).toEqual(live);
    for (const doc of now.values()) expect(doc.runs).toBe(1);
    expect(now.get(edited.id)!.text).toContain('EDITED-IN-RUN-2');
    // Every document of a.jsonl but the moved one comes from run 3, the last that read the
    // file (unchanged chunks carried into it, not re-embedded).
    for (const doc of now.values()) if (doc.doc_id !== moved.id) expect(doc.run_id).toBe(runIds[2]);
  });

  it('leaves out a document removed from its file and every document of a deleted file', async () => {
    const now = await current();
    expect(now.has(removed.id)).toBe(false);
    for (const doc of b) expect(now.has(doc.id)).toBe(false);
  });

  it('takes a document in two files from the run that wrote it last', async () => {
    const doc = (await current()).get(moved.id)!;
    expect(doc.run_id).toBe(runIds[3]);
    expect(doc.source_key).toMatch(/moved\.jsonl$/);
    expect(doc.text).toContain('MOVED-IN-RUN-4');
  });

  it('has every chunk of the version it returns, and each chunk once', async () => {
    const [row] = await q<{ chunks: number; distinct_chunks: number; latest: number }>(
      `select count(*)::int as chunks, count(distinct chunk_id)::int as distinct_chunks,
              (select count(*)::int from embeddings where run_id = '${runIds[2]}') as latest
       from embeddings_current where run_id = '${runIds[2]}'`,
    );
    expect(row!.chunks).toBe(row!.distinct_chunks);
    // Run 3 read only a.jsonl: all its chunks are current but the moved document's.
    const [moved3] = await q<{ n: number }>(
      `select count(*)::int as n from embeddings where run_id = '${runIds[2]}' and doc_id = '${moved.id}'`,
    );
    expect(row!.chunks).toBe(row!.latest - moved3!.n);
  });

  it('keeps the columns of the view in the order the catalog lists them', async () => {
    const result = await sluice(
      'query',
      'select * from embeddings_current limit 1',
      '--home',
      home,
      '--json',
    );
    const [first] = result.json<Record<string, unknown>[]>();
    const view = CURRENT_VIEWS.find((v) => v.name === 'embeddings_current')!;
    expect(Object.keys(first!)).toEqual(view.columns.map((c) => c.name));
  });
});

describe('embeddings_current for a pipeline without manifests (incremental off)', () => {
  let work: string;
  let home: string;
  let pipelines: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-current-full-'));
    home = path.join(work, 'home');
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    const docs = JSON.parse(await readFile('pipelines/docs.json', 'utf8'));
    await writeFile(
      path.join(pipelines, 'full.json'),
      JSON.stringify({ ...docs, name: 'full', incremental: { enabled: false }, schedule: undefined }),
    );
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('takes each source from the last succeeded run that read it', async () => {
    const file = path.join(work, 'docs.jsonl');
    const docs = sampleDocuments(10, 5);
    const run = async () => {
      const result = await sluice(
        'run',
        file,
        '--pipeline',
        'full',
        '--pipelines',
        pipelines,
        '--home',
        home,
        '--json',
        '--threads',
        '0',
      );
      expect(result.code, result.err.join('\n')).toBe(0);
      return result.json<{ runId: string; sources?: unknown }>();
    };
    await writeFile(file, jsonl(docs));
    const first = await run();
    expect(first.sources).toBeUndefined();
    await writeFile(file, jsonl(docs.slice(0, 7)));
    const second = await run();

    const q = async <T>(sql: string) => (await sluice('query', sql, '--home', home, '--json')).json<T[]>();
    const now = await q<DocVersion>(VERSIONS_SQL('embeddings_current'));
    expect(now.map((d) => d.doc_id)).toEqual(
      docs
        .slice(0, 7)
        .map((d) => d.id)
        .sort(),
    );
    expect(new Set(now.map((d) => d.run_id))).toEqual(new Set([second.runId]));
    const [runs] = await q<{ n: number }>('select count(distinct run_id)::int as n from embeddings');
    expect(runs!.n).toBe(2);
  });
});

describe('scores_current over two scoring runs', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-scores-current-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('returns each record id once, with the score of the run that started last', async () => {
    const home = path.join(work, 'home');
    const [header, ...rows] = (await readFile('events/data/credit-sample.csv', 'utf8')).trim().split('\n');
    const file = path.join(work, 'customers.csv');
    const run = async (lines: string[]) => {
      await writeFile(file, `${[header, ...lines].join('\n')}\n`);
      const result = await sluice(
        'run',
        file,
        '--pipeline',
        'credit-risk',
        '--home',
        home,
        '--json',
        '--threads',
        '0',
      );
      expect(result.code, result.err.join('\n')).toBe(0);
      return result.json<{ runId: string }>();
    };
    // Run 1 scores 40 customers; run 2 scores 20 of them again with their income doubled, and 10 new ones.
    const first = await run(rows.slice(0, 40));
    const doubled = rows.slice(0, 20).map((line) => {
      const fields = line.split(',');
      fields[2] = String(Number(fields[2]) * 2);
      return fields.join(',');
    });
    const second = await run([...doubled, ...rows.slice(40, 50)]);

    const q = async <T>(sql: string) => (await sluice('query', sql, '--home', home, '--json')).json<T[]>();
    const plain = await q<{ n: number }>('select count(*)::int as n from scores');
    expect(plain[0]!.n).toBe(70);
    const now = await q<{ record_id: string; run_id: string; score: number }>(
      'select record_id, run_id, score from scores_current order by record_id',
    );
    const ids = rows.slice(0, 50).map((line) => line.split(',')[0]!);
    expect(now.map((r) => r.record_id)).toEqual([...ids].sort());
    const byId = new Map(now.map((r) => [r.record_id, r]));
    for (const id of ids.slice(0, 20)) expect(byId.get(id)!.run_id).toBe(second.runId);
    for (const id of ids.slice(20, 40)) expect(byId.get(id)!.run_id).toBe(first.runId);
    for (const id of ids.slice(40)) expect(byId.get(id)!.run_id).toBe(second.runId);
  });
});
