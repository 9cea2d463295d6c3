import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import type { NearestChunk } from '../../shared/views/nearest-chunks.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

const SAMPLE = 'events/data/docs-sample.jsonl';

interface SampleDoc {
  id: string;
  text: string;
}

describe('sluice search and sluice embed on the sample documents', () => {
  let work: string;
  let home: string;
  let folder: string;
  let docs: SampleDoc[];

  const search = async (...args: string[]) => {
    const result = await sluice('search', ...args, '--pipeline', 'docs', '--home', home, '--json');
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<NearestChunk[]>();
  };
  const run = async () => {
    const result = await sluice(
      'run',
      folder,
      '--pipeline',
      'docs',
      '--home',
      home,
      '--json',
      '--threads',
      '0',
    );
    expect(result.code, result.err.join('\n')).toBe(0);
    return result.json<{ runId: string }>();
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-search-'));
    home = path.join(work, 'home');
    folder = path.join(work, 'corpus');
    await mkdir(folder);
    const sample = await readFile(SAMPLE, 'utf8');
    docs = sample
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as SampleDoc);
    await writeFile(path.join(folder, 'docs-sample.jsonl'), sample);
    await run();
  }, 120_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("finds a document first when the query is that document's text", async () => {
    for (const doc of [docs[0]!, docs[137]!, docs.at(-1)!]) {
      const results = await search(doc.text, '-k', '5');
      expect(results).toHaveLength(5);
      expect(results[0]!.docId).toBe(doc.id);
      expect(results[0]!.score).toBeGreaterThan(results[1]!.score);
      expect(results[0]!.text.length).toBeGreaterThan(0);
      expect(doc.text).toContain(results[0]!.text.slice(0, 40));
    }
  });

  it('returns k results best first, each with its document, score and text', async () => {
    const results = await search('dead-letter queue visibility timeout', '-k', '7');
    expect(results.map((r) => r.rank)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const [i, r] of results.entries()) {
      if (i > 0) expect(r.score).toBeLessThanOrEqual(results[i - 1]!.score);
      expect(r.chunkId).toBe(`${r.docId}#${r.chunkIndex}`);
      expect(r.model).toBe('sluice-hash-embed-v1');
      expect(r.text.toLowerCase()).toMatch(/dead-letter|visibility/);
    }
    expect((await search('dead-letter queue visibility timeout')).length).toBe(10);
  });

  it('prints a table with an excerpt per result without --json', async () => {
    const result = await sluice('search', docs[5]!.text, '--pipeline', 'docs', '--home', home, '-k', '3');
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(result.out).toHaveLength(5);
    expect(result.out[1]).toMatch(new RegExp(`^\\s+1\\s+1\\.0000\\s+${docs[5]!.id}\\s+0\\s+`));
  });

  it('embeds a text exactly as the run embedded the same chunk', async () => {
    const single = docs.find((d) => d.text.length < 200)!;
    const result = await sluice('embed', single.text, '--pipeline', 'docs');
    expect(result.code, result.err.join('\n')).toBe(0);
    const vector = result.json<number[]>();
    expect(vector).toHaveLength(384);
    const [stored] = (
      await sluice(
        'query',
        `select embedding from embeddings where chunk_id = '${single.id}#0' limit 1`,
        '--home',
        home,
        '--json',
      )
    ).json<{ embedding: number[] }[]>();
    expect(vector.map((v) => Math.fround(v))).toEqual(stored!.embedding);
    const described = (await sluice('embed', 'queues', '--pipeline', 'docs', '--json')).json();
    expect(described).toMatchObject({ model: 'sluice-hash-embed-v1', dimension: 384 });
  });

  it('searches only the current corpus: a document deleted since is not found, and no chunk comes twice', async () => {
    const gone = docs[42]!;
    const kept = docs.filter((d) => d !== gone);
    await writeFile(path.join(folder, 'docs-sample.jsonl'), jsonl(kept));
    await run();
    const results = await search(gone.text, '-k', '20');
    expect(results.map((r) => r.docId)).not.toContain(gone.id);
    expect(new Set(results.map((r) => r.chunkId)).size).toBe(results.length);
    expect((await search(docs[7]!.text))[0]!.docId).toBe(docs[7]!.id);
  });

  it('refuses bad usage with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['search', 'text'], /--pipeline NAME is required/],
      [['search', '--pipeline', 'docs'], /give exactly one text/],
      [['search', '   ', '--pipeline', 'docs'], /the text is empty/],
      [['search', 'text', '--pipeline', 'docs', '-k', '0'], /-k must be an integer from 1 to 1000/],
      [
        ['search', 'text', '--pipeline', 'credit-risk'],
        /needs an embedding pipeline; credit-risk is a score pipeline/,
      ],
      [
        ['search', 'text', '--pipeline', 'docs', '--endpoint-url', 'ftp://x'],
        /--endpoint-url must be an http\(s\) URL/,
      ],
      [
        ['search', 'text', '--pipeline', 'docs', '--home', path.join(work, 'empty')],
        /has no current embeddings: run it first/,
      ],
      [['embed', 'a', 'b', '--pipeline', 'docs'], /give exactly one text/],
    ];
    for (const [argv, message] of cases) {
      const result = await sluice(...argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.err.at(-1)).toMatch(message);
    }
  });
});

describe('sluice search --endpoint-url', () => {
  let work: string;
  let server: ModelServer;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-search-url-'));
    server = await startModelServer({ backend: new HashEmbedder(384) });
  });
  afterAll(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('embeds the query at the server the run used, and says which model made the chunks when it differs', async () => {
    const home = path.join(work, 'home');
    const file = path.join(work, 'few.jsonl');
    const docs = [
      { id: 'q-1', text: 'Retries back off exponentially with full jitter.' },
      { id: 'q-2', text: 'Parquet parts are written one per unit.' },
      { id: 'q-3', text: 'The chunk index answers point lookups by id.' },
    ];
    await writeFile(file, jsonl(docs));
    const ran = await sluice(
      'run',
      file,
      '--pipeline',
      'docs',
      '--home',
      home,
      '--endpoint-url',
      server.url,
      '--json',
      '--threads',
      '0',
    );
    expect(ran.code, ran.err.join('\n')).toBe(0);

    const found = await sluice(
      'search',
      'parquet parts per unit',
      '--pipeline',
      'docs',
      '--home',
      home,
      '--endpoint-url',
      server.url,
      '--json',
    );
    expect(found.code, found.err.join('\n')).toBe(0);
    const results = found.json<NearestChunk[]>();
    expect(results.map((r) => r.docId)[0]).toBe('q-2');
    // The run recorded the pipeline's configured model for chunks the server at the URL embedded.
    expect(results[0]!.model).toBe('BAAI/bge-small-en-v1.5');

    // The built-in hash-embed is another model: nothing comparable, and the message says what to give.
    const other = await sluice('search', 'parquet parts', '--pipeline', 'docs', '--home', home);
    expect(other.code).toBe(2);
    expect(other.err.at(-1)).toMatch(
      /current chunks were embedded by BAAI\/bge-small-en-v1.5 \(3 chunks\), not sluice-hash-embed-v1: search with the model the run used/,
    );
  }, 120_000);
});
