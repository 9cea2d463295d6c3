import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { EmbeddingRow } from '../../shared/domain/types.ts';
import { embeddingsPartWriter } from '../../shared/output/parquet-tables.ts';
import { StreamedPart } from '../../shared/output/streamed-part.ts';
import { embeddingRow } from './factories.ts';

/** Rows with 384-float vectors, as a real model gives: 2,048 of them encode to about 3 MiB. */
function rows(count: number): EmbeddingRow[] {
  return Array.from({ length: count }, (_, i) => ({
    ...embeddingRow(i),
    embedding: Float32Array.from({ length: 384 }, (_, k) => Math.sin(i * 384 + k)),
  }));
}

function wholeFile(all: readonly EmbeddingRow[]): Uint8Array {
  const writer = embeddingsPartWriter('r-1');
  writer.add(all);
  return writer.finish().slice();
}

describe('StreamedPart', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'sluice-streamed-part-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes the same bytes as a whole-file write, handing them to the store group by group', async () => {
    const store = new FsObjectStore(root);
    const all = rows(9000);
    const part = new StreamedPart(store, 'results/embeddings/p.parquet', embeddingsPartWriter('r-1'));
    for (let i = 0; i < all.length; i += 700) await part.add(all.slice(i, i + 700));
    // Before finish the key holds nothing: a reader never sees half a part.
    expect(await store.head('results/embeddings/p.parquet')).toBeUndefined();
    expect(await part.finish()).toBe(true);
    // Compared as bytes: a deep equality of 14 MB would take minutes.
    expect(Buffer.compare((await store.get('results/embeddings/p.parquet'))!, wholeFile(all))).toBe(0);
    expect((await readdir(path.join(root, 'results/embeddings'))).filter((f) => f.endsWith('.tmp'))).toEqual(
      [],
    );
  });

  it('keeps the earlier part when aborted, and leaves no temporary file', async () => {
    const store = new FsObjectStore(root);
    await store.put('results/embeddings/p.parquet', 'earlier attempt');
    const part = new StreamedPart(store, 'results/embeddings/p.parquet', embeddingsPartWriter('r-1'));
    await part.add(rows(6000));
    await part.abort();
    expect(Buffer.from((await store.get('results/embeddings/p.parquet'))!).toString()).toBe(
      'earlier attempt',
    );
    expect(await readdir(path.join(root, 'results/embeddings'))).toEqual(['p.parquet']);
  });

  it('writes nothing for a part without rows', async () => {
    const store = new MemoryObjectStore();
    const part = new StreamedPart(store, 'k.parquet', embeddingsPartWriter('r-1'));
    expect(await part.finish()).toBe(false);
    expect(store.objects.size).toBe(0);
  });

  it('buffers the pieces into one put on a store that cannot write piecewise', async () => {
    const store = new MemoryObjectStore();
    const all = rows(6000);
    const part = new StreamedPart(store, 'k.parquet', embeddingsPartWriter('r-1'));
    await part.add(all);
    expect(await part.finish()).toBe(true);
    expect(Buffer.compare(store.objects.get('k.parquet')!, wholeFile(all))).toBe(0);
  });
});
