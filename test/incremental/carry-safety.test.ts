import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { EmbeddingRow } from '../../shared/domain/types.ts';
import { DROPPED_ORDINALS_KEY } from '../../shared/duplicates/resolve-duplicate-ids.ts';
import { PartVectors, type VectorRequest } from '../../shared/jobs/embed/part-vectors.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { embeddingsPartWriter, rewrittenPartWriter } from '../../shared/output/parquet-tables.ts';
import { aDoc, plain } from '../contract/chunk-index-contract.ts';
import { embeddingRow, jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';

const PIPELINE = 'docs';
const RUN = 'r-20261201T101500Z-abc123';
const part = { runId: RUN, unitId: 'u1' };
const key = unitPartKey('embeddings', PIPELINE, RUN, 'u1');

/** Row `i`'s vector: its row number and a value per dimension, exact in float32. */
function vectorOf(i: number, dimension: number): Float32Array {
  return Float32Array.from({ length: dimension }, (_, d) => (d === 0 ? i : d + (i % 997) * 4096));
}

/** Rows of documents of three chunks each (embeddingRow's ids: `d<i/3>#<i%3>`). */
const rowsOf = (count: number, dimension: number, text = (i: number) => `chunk ${i}`): EmbeddingRow[] =>
  Array.from({ length: count }, (_, i) => ({
    ...embeddingRow(i, vectorOf(i, dimension)),
    chunk_text: text(i),
    text_sha256: `sha-${i}`,
  }));

const ask = (rows: readonly number[]): VectorRequest[] =>
  rows.map((row) => ({ chunkId: `d${Math.floor(row / 3)}#${row % 3}`, row, textSha256: `sha-${row}` }));

async function putPart(store: MemoryObjectStore, rows: readonly EmbeddingRow[]): Promise<Uint8Array> {
  const writer = embeddingsPartWriter(RUN);
  writer.add(rows);
  const bytes = writer.finish().slice();
  await store.put(key, bytes);
  return bytes;
}

/** The part rewritten as finalize's duplicate-id rule rewrites it: without documents `dropped`, their ordinals in the footer. */
async function dropDocs(
  store: MemoryObjectStore,
  bytes: Uint8Array,
  dropped: readonly number[],
): Promise<void> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const rows = await parquetReadObjects({ file, metadata: parquetMetadata(file) });
  const writer = rewrittenPartWriter('embeddings', [
    { key: DROPPED_ORDINALS_KEY, value: JSON.stringify(dropped) },
  ]);
  writer.add(rows.filter((row) => !dropped.includes(Number(String(row.doc_id).slice(1)))));
  await store.put(key, writer.finish().slice());
}

describe('carried vectors are the ones the part holds for that chunk, or a miss', () => {
  it('pairs every vector with its own chunk id across pages and row groups, the offset index used or not', async () => {
    const dimension = 384;
    const store = new MemoryObjectStore();
    // Texts of uneven length, so the columns' pages end at different rows.
    await putPart(
      store,
      rowsOf(4500, dimension, (i) => 'x'.repeat((i * 37) % 3000)),
    );
    const vectors = new PartVectors(store, PIPELINE, dimension);
    const asked = [0, 1, 2047, 2048, 2049, 3001, 4499];
    for (let start = 5; start < 4500; start += 97)
      asked.push(start, Math.min(4499, start + 1 + (start % 300)));
    for (let i = 0; i < asked.length; i += 2) {
      const rows = asked.slice(i, i + 2);
      const found = await vectors.read(part, ask(rows));
      for (const row of rows)
        expect(found.get(`d${Math.floor(row / 3)}#${row % 3}`), `row ${row}`).toEqual(
          vectorOf(row, dimension),
        );
    }
  }, 60_000);

  it('finds a chunk in a part the duplicate-id rule rewrote, where its row moved up, and misses what was dropped', async () => {
    const store = new MemoryObjectStore();
    const bytes = await putPart(store, rowsOf(3000, 4));
    // Documents 5 and 700 dropped: rows past 17 move up 3, past 2102 up 6 (across the 2,048-row group boundary).
    await dropDocs(store, bytes, [5, 700]);
    const vectors = new PartVectors(store, PIPELINE, 4);
    const kept = [0, 14, 18, 19, 2047, 2048, 2050, 2099, 2103, 2999];
    const found = await vectors.read(part, ask([...kept, 15, 16, 2100]));
    expect([...found.keys()].sort()).toEqual(kept.map((row) => `d${Math.floor(row / 3)}#${row % 3}`).sort());
    for (const row of kept)
      expect(found.get(`d${Math.floor(row / 3)}#${row % 3}`), `row ${row}`).toEqual(vectorOf(row, 4));

    // The chunk id where it moved, but another text: a miss, never that row's vector.
    const other = await vectors.read(part, [{ chunkId: 'd10#0', row: 30, textSha256: 'sha-edited' }]);
    expect(other.size).toBe(0);
  });

  it('reads a part never rewritten where the entry says, as before', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, rowsOf(30, 4));
    const vectors = new PartVectors(store, PIPELINE, 4);
    // An entry naming row 12 for a chunk that sits at row 9 in a part not rewritten: a miss.
    const found = await vectors.read(part, [{ chunkId: 'd3#0', row: 12, textSha256: 'sha-9' }]);
    expect(found.size).toBe(0);
  });
});

describe('a part gone while it is read (gc removing it, say) is a miss, not a failure', () => {
  it('after its footer was read: the rows asked for are missed, and a part put there since is opened again', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, rowsOf(30, 4));
    const vectors = new PartVectors(store, PIPELINE, 4);
    expect((await vectors.read(part, ask([1]))).size).toBe(1);
    store.objects.delete(key);
    expect((await vectors.read(part, ask([2, 3]))).size).toBe(0);

    // Put there again: its footer is read anew (the stale one was let go).
    await putPart(store, rowsOf(60, 4));
    expect((await vectors.read(part, ask([4]))).get('d1#1')).toEqual(vectorOf(4, 4));
    const fresh = new PartVectors(store, PIPELINE, 4);
    // Replaced by a part of another size after its footer was read: a miss, then read anew.
    const bytes = await putPart(store, rowsOf(45, 4));
    await fresh.read(part, ask([6]));
    await store.put(key, bytes.slice(0, 100));
    expect((await fresh.read(part, ask([7]))).size).toBe(0);
    await putPart(store, rowsOf(50, 4));
    expect(await fresh.read(part, ask([8])).then((m) => m.get('d2#2'))).toEqual(vectorOf(8, 4));
  });

  it('between its HEAD and its footer: a miss', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, rowsOf(30, 4));
    const vanishing = Object.create(store) as MemoryObjectStore;
    vanishing.head = async (k, options) => {
      const info = await store.head(k, options);
      store.objects.delete(k);
      return info;
    };
    const vectors = new PartVectors(vanishing, PIPELINE, 4);
    expect((await vectors.read(part, ask([1]))).size).toBe(0);
  });

  it('a failing store with the part still there fails the read, so the unit is retried', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, rowsOf(30, 4));
    const failing = Object.create(store) as MemoryObjectStore;
    failing.readRange = () => {
      throw new Error('connection reset');
    };
    await expect(new PartVectors(failing, PIPELINE, 4).read(part, ask([1]))).rejects.toThrow(
      'connection reset',
    );
  });
});

describe('DynamoChunkIndex: a document id too long for a DynamoDB key', () => {
  const dynalite = useDynaliteTables({ tablePrefix: 'sluice-carry' });

  it('is a miss and is not recorded, and the other documents of the call are', async () => {
    const index = new DynamoChunkIndex({ doc: dynalite.doc, tableName: await dynalite.newTable() });
    const long = 'x'.repeat(2100);
    // A multi-byte id: 700 characters, 2,100 bytes.
    const wide = 'é'.repeat(1050);
    await index.record(PIPELINE, [
      aDoc(long, 1),
      aDoc('a', 2),
      aDoc(wide, 1),
      { docId: 'gone', chunkCount: 0 },
    ]);
    const found = await index.lookupDocs(PIPELINE, [long, 'a', wide, 'gone']);
    expect([...found.keys()].sort()).toEqual(['a', 'gone']);
    expect(plain(found.get('a'))).toEqual(plain(aDoc('a', 2)));
    // finalize's forget of vanished documents names them too.
    await index.record(PIPELINE, [{ docId: long, chunkCount: 0 }]);
  });

  it('still records and finds an id just under the limit', async () => {
    const index = new DynamoChunkIndex({ doc: dynalite.doc, tableName: await dynalite.newTable() });
    const id = 'y'.repeat(2048 - `DOC#${PIPELINE}#`.length);
    await index.record(PIPELINE, [aDoc(id, 1)]);
    expect(plain((await index.lookupDocs(PIPELINE, [id])).get(id))).toEqual(plain(aDoc(id, 1)));
  });
});

describe('sluice run: a duplicate id in the input', () => {
  let work: string;
  let home: string;
  let file: string;
  const docs = sampleDocuments(40, 7);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-carry-'));
    home = path.join(work, 'home');
    file = path.join(work, 'docs.jsonl');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('does not make an unchanged re-run embed every document after it again', async () => {
    const last = docs.at(-1)!;
    // An earlier record of the last document's id: the rule keeps the last one and drops this
    // one's rows from the part, so every later document's rows move up.
    await writeFile(file, jsonl([{ ...last, text: 'An earlier copy of the last document.' }, ...docs]));
    const run = async () =>
      (await sluice('run', file, '--pipeline', PIPELINE, '--home', home, '--json')).json();
    const first = await run();
    expect(first.counts).toMatchObject({ rejected: 1, embedded: first.counts.chunks });
    const again = await run();
    // Only the duplicated id is embedded again (its two records share a window, so its entry
    // keeps no fingerprints); before, all 93 chunks were.
    const lastChunks = first.counts.chunks - again.counts.skippedUnchanged;
    expect(again.counts).toMatchObject({ rejected: 1, chunks: first.counts.chunks, embedded: lastChunks });
    expect(lastChunks).toBeLessThanOrEqual(3);
    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    const [{ differing, same }] = await q(
      `select count(*) filter (where a.embedding <> b.embedding) as differing, count(*) as same
       from embeddings a join embeddings b on a.chunk_id = b.chunk_id and a.text_sha256 = b.text_sha256
       where a.run_id = '${first.runId}' and b.run_id = '${again.runId}'`,
    );
    expect(differing).toBe(0);
    expect(same).toBe(first.counts.chunks);
  }, 120_000);
});
