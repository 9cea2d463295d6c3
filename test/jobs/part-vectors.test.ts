import { parquetMetadata } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { EmbeddingRow } from '../../shared/domain/types.ts';
import { PartVectors, type VectorRequest } from '../../shared/jobs/embed/part-vectors.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { embeddingsPartWriter } from '../../shared/output/parquet-tables.ts';
import type {
  HeadOptions,
  ObjectInfo,
  ObjectStore,
  ReadRangeOptions,
} from '../../shared/ports/object-store.ts';
import { embeddingRow } from '../core/factories.ts';

const PIPELINE = 'docs';
const RUN = 'r-20261201T101500Z-abc123';
const ROW_GROUP = 2048;

/** A float32 vector of row `i`: values a lossy copy (through float64 arithmetic, say) would change. */
function vectorOf(i: number, dimension: number): Float32Array {
  const v = new Float32Array(dimension);
  for (let d = 0; d < dimension; d += 1) v[d] = Math.sin(i * 7.31 + d) / (d + 1) + (d === 0 ? 1e-40 * i : 0);
  if (dimension > 2) v[2] = -0;
  return v;
}

/** Chunk id of row `i` in the parts of these tests. */
const chunkIdOf = (i: number) => `doc-${Math.floor(i / 4)}#${i % 4}`;
/** Fingerprint of row `i`'s text in these tests. */
const shaOf = (i: number) => i.toString(16).padStart(64, '0');

function rowsOf(count: number, dimension: number, vector = vectorOf): EmbeddingRow[] {
  return Array.from({ length: count }, (_, i) => ({
    ...embeddingRow(i, vector(i, dimension)),
    chunk_id: chunkIdOf(i),
    text_sha256: shaOf(i),
  }));
}

/** Writes unit `unitId`'s embeddings part of {@link RUN} as the embed unit writes it, and returns its bytes. */
async function putPart(
  store: ObjectStore,
  unitId: string,
  rows: readonly EmbeddingRow[],
): Promise<Uint8Array> {
  const writer = embeddingsPartWriter(RUN);
  writer.add(rows);
  const bytes = writer.finish().slice();
  await store.put(unitPartKey('embeddings', PIPELINE, RUN, unitId), bytes);
  return bytes;
}

const ask = (...rows: number[]): VectorRequest[] =>
  rows.map((row) => ({ chunkId: chunkIdOf(row), row, textSha256: shaOf(row) }));

/** Records every head and ranged read, and can be made to fail. */
class RecordingStore implements ObjectStore {
  readonly heads: string[] = [];
  readonly reads: { key: string; start: number; end: number }[] = [];
  failReads: Error | undefined;
  failHeads: Error | undefined;

  constructor(private readonly inner: ObjectStore) {}

  async head(key: string, options?: HeadOptions): Promise<ObjectInfo | undefined> {
    this.heads.push(key);
    if (this.failHeads) throw this.failHeads;
    return this.inner.head(key, options);
  }

  readRange(key: string, start: number, end?: number, options?: ReadRangeOptions): AsyncIterable<Uint8Array> {
    this.reads.push({ key, start, end: end ?? Number.POSITIVE_INFINITY });
    if (this.failReads) throw this.failReads;
    return this.inner.readRange(key, start, end, options);
  }

  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void> {
    return this.inner.put(key, body, contentType);
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  get bytesRead(): number {
    return this.reads.reduce((sum, r) => sum + (r.end - r.start), 0);
  }
}

describe('PartVectors', () => {
  it('gives back the vectors the part holds, float32 for float32, each a fresh array', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, 'u1', rowsOf(20, 8));
    const vectors = new PartVectors(store, PIPELINE, 8);

    const found = await vectors.read({ runId: RUN, unitId: 'u1' }, ask(0, 3, 19));
    expect([...found.keys()].sort()).toEqual([chunkIdOf(0), chunkIdOf(3), chunkIdOf(19)].sort());
    for (const row of [0, 3, 19]) {
      const vector = found.get(chunkIdOf(row))!;
      expect(vector).toBeInstanceOf(Float32Array);
      // Byte for byte: -0 and the subnormal survive.
      expect(Buffer.from(vector.buffer)).toEqual(Buffer.from(vectorOf(row, 8).buffer));
    }
    expect(Object.is(found.get(chunkIdOf(3))![2], -0)).toBe(true);

    found.get(chunkIdOf(3))!.fill(9);
    const again = await vectors.read({ runId: RUN, unitId: 'u1' }, ask(3));
    expect(again.get(chunkIdOf(3))).toEqual(vectorOf(3, 8));
  });

  it('reads rows across several row groups, each needed group once, and nothing of the others', async () => {
    const inner = new MemoryObjectStore();
    const bytes = await putPart(inner, 'u1', rowsOf(4 * ROW_GROUP + 100, 4));
    const metadata = parquetMetadata(bytes.buffer as ArrayBuffer);
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).toEqual([2048, 2048, 2048, 2048, 100]);
    const store = new RecordingStore(inner);
    const vectors = new PartVectors(store, PIPELINE, 4);

    const rows = [1, 2047, 2048, 2049, 4 * ROW_GROUP + 99, 4 * ROW_GROUP + 5];
    const found = await vectors.read({ runId: RUN, unitId: 'u1' }, ask(...rows));
    expect(found.size).toBe(rows.length);
    for (const row of rows) expect(found.get(chunkIdOf(row))).toEqual(vectorOf(row, 4));

    // Besides the footer (the reads that end at the file's end), only the chunk_id and embedding
    // column chunks of groups 0, 1 and 4 were read (hyparquet may take the few KB between them
    // in one read), each once; nothing of groups 2 and 3.
    const chunkOf = (group: number, column: string) => {
      const meta = metadata.row_groups[group]!.columns.find((c) => c.meta_data?.path_in_schema[0] === column)!
        .meta_data!;
      const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
      return { start, end: start + Number(meta.total_compressed_size) };
    };
    const groupSpan = (group: number) => {
      const chunks = metadata.row_groups[group]!.columns.map((c) =>
        chunkOf(group, c.meta_data!.path_in_schema[0]!),
      );
      return { start: Math.min(...chunks.map((c) => c.start)), end: Math.max(...chunks.map((c) => c.end)) };
    };
    const dataReads = store.reads.filter((r) => r.end !== bytes.byteLength);
    expect(dataReads.length).toBeGreaterThanOrEqual(3);
    const wanted = [0, 1, 4].map((g) => ({
      start: chunkOf(g, 'chunk_id').start,
      end: chunkOf(g, 'embedding').end,
    }));
    for (const read of dataReads)
      expect(
        wanted.some((w) => read.start >= w.start && read.end <= w.end),
        JSON.stringify(read),
      ).toBe(true);
    for (const g of [0, 1, 4])
      for (const column of ['chunk_id', 'embedding']) {
        const chunk = chunkOf(g, column);
        expect(
          dataReads.filter((r) => r.start <= chunk.start && r.end >= chunk.end),
          `${g} ${column}`,
        ).toHaveLength(1);
      }
    for (const g of [2, 3]) {
      const span = groupSpan(g);
      expect(dataReads.filter((r) => r.start < span.end && r.end > span.start)).toEqual([]);
    }
  });

  it('reads the footer once for successive windows over the same part', async () => {
    const inner = new MemoryObjectStore();
    const bytes = await putPart(inner, 'u1', rowsOf(3 * ROW_GROUP, 4));
    const store = new RecordingStore(inner);
    const vectors = new PartVectors(store, PIPELINE, 4);
    const part = { runId: RUN, unitId: 'u1' };

    expect((await vectors.read(part, ask(10, 11))).size).toBe(2);
    const footerReads = () => store.reads.filter((r) => r.end === bytes.byteLength).length;
    expect(footerReads()).toBe(1);
    expect((await vectors.read(part, ask(ROW_GROUP * 2 + 5))).size).toBe(1);
    expect((await vectors.read(part, ask(12))).size).toBe(1);
    expect(footerReads()).toBe(1);
    expect(store.heads).toHaveLength(1);
  });

  it('forgets the least recently used part past maxCachedParts', async () => {
    const inner = new MemoryObjectStore();
    for (const unit of ['u1', 'u2', 'u3']) await putPart(inner, unit, rowsOf(10, 4));
    const store = new RecordingStore(inner);
    const vectors = new PartVectors(store, PIPELINE, 4, { maxCachedParts: 2 });
    const readUnit = (unitId: string) => vectors.read({ runId: RUN, unitId }, ask(1));

    for (const unit of ['u1', 'u2', 'u1', 'u3', 'u1', 'u2']) expect((await readUnit(unit)).size).toBe(1);
    // u1 stayed (used before u3 came), u2 was evicted by u3 and read again.
    expect(store.heads.map((key) => key.match(/-(u\d)\.parquet$/)![1])).toEqual(['u1', 'u2', 'u3', 'u2']);
  });

  it('fetches only the pages of the rows asked for when they are a small part of a group', async () => {
    const dimension = 384;
    const inner = new MemoryObjectStore();
    const bytes = await putPart(inner, 'u1', rowsOf(ROW_GROUP, dimension));
    const embeddingChunk = parquetMetadata(bytes.buffer as ArrayBuffer).row_groups[0]!.columns.find(
      (c) => c.meta_data?.path_in_schema[0] === 'embedding',
    )!.meta_data!;
    const store = new RecordingStore(inner);
    const vectors = new PartVectors(store, PIPELINE, dimension);
    const part = { runId: RUN, unitId: 'u1' };
    await vectors.read(part, []);
    expect(store.reads).toHaveLength(0);

    await vectors.read(part, ask(0)); // the footer, and the first rows' pages
    const before = store.bytesRead;
    const found = await vectors.read(part, ask(1500, 1501, 1502));
    expect([...found.values()]).toEqual([1500, 1501, 1502].map((i) => vectorOf(i, dimension)));
    // Over 3 MB of vectors in the group's embedding chunk; the three rows' page is about 1 MiB.
    expect(Number(embeddingChunk.total_compressed_size)).toBeGreaterThan(3_000_000);
    expect(store.bytesRead - before).toBeLessThan(1_500_000);
  });

  it('leaves out a row whose chunk_id or text_sha256 is not the one asked for', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, 'u1', rowsOf(10, 4));
    const vectors = new PartVectors(store, PIPELINE, 4);

    const found = await vectors.read({ runId: RUN, unitId: 'u1' }, [
      ...ask(2),
      { chunkId: chunkIdOf(5), row: 6, textSha256: shaOf(5) }, // the part was rewritten: the row moved
      { chunkId: 'doc-x#0', row: 7, textSha256: shaOf(7) },
      // The same chunk id with another text (a duplicate id's rows kept instead).
      { chunkId: chunkIdOf(8), row: 8, textSha256: shaOf(80) },
    ]);
    expect([...found.keys()]).toEqual([chunkIdOf(2)]);
  });

  it('leaves out rows past the part and rows that are not row numbers', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, 'u1', rowsOf(10, 4));
    const vectors = new PartVectors(store, PIPELINE, 4);

    const found = await vectors.read({ runId: RUN, unitId: 'u1' }, [
      ...ask(9, 10, 5000),
      { chunkId: 'neg', row: -1, textSha256: shaOf(0) },
      { chunkId: 'frac', row: 1.5, textSha256: shaOf(0) },
    ]);
    expect([...found.keys()]).toEqual([chunkIdOf(9)]);
  });

  it('gives nothing, and does not throw, for a part that is gone, and remembers it as gone', async () => {
    const store = new RecordingStore(new MemoryObjectStore());
    const vectors = new PartVectors(store, PIPELINE, 4);

    expect((await vectors.read({ runId: RUN, unitId: 'gone' }, ask(0, 1))).size).toBe(0);
    expect((await vectors.read({ runId: RUN, unitId: 'gone' }, ask(2))).size).toBe(0);
    expect(store.heads).toHaveLength(1);
    expect(store.reads).toHaveLength(0);
  });

  it('gives nothing for a part emptied by the dead-letter step, or one that is not Parquet', async () => {
    const store = new MemoryObjectStore();
    await putPart(store, 'empty', []);
    await store.put(unitPartKey('embeddings', PIPELINE, RUN, 'junk'), 'not a parquet file at all');
    await store.put(unitPartKey('embeddings', PIPELINE, RUN, 'zero'), new Uint8Array(0));
    const vectors = new PartVectors(store, PIPELINE, 4);

    for (const unitId of ['empty', 'junk', 'zero'])
      expect((await vectors.read({ runId: RUN, unitId }, ask(0))).size, unitId).toBe(0);
  });

  it('leaves out a vector whose length is not the dimension', async () => {
    const store = new MemoryObjectStore();
    await putPart(
      store,
      'u1',
      rowsOf(6, 4, (i, dimension) => vectorOf(i, i === 3 ? dimension - 1 : dimension)),
    );

    const found = await new PartVectors(store, PIPELINE, 4).read({ runId: RUN, unitId: 'u1' }, ask(2, 3, 4));
    expect([...found.keys()]).toEqual([chunkIdOf(2), chunkIdOf(4)]);
    // A pipeline whose model changed dimension reuses nothing of the old part.
    const other = await new PartVectors(store, PIPELINE, 8).read({ runId: RUN, unitId: 'u1' }, ask(2, 4));
    expect(other.size).toBe(0);
  });

  it('lets a failure of the store through, and reads the footer again after it', async () => {
    const inner = new MemoryObjectStore();
    await putPart(inner, 'u1', rowsOf(3 * ROW_GROUP, 4));
    const store = new RecordingStore(inner);
    const vectors = new PartVectors(store, PIPELINE, 4);
    const part = { runId: RUN, unitId: 'u1' };
    const throttled = new Error('SlowDown: please reduce your request rate');

    store.failHeads = throttled;
    await expect(vectors.read(part, ask(1))).rejects.toBe(throttled);
    store.failHeads = undefined;
    store.failReads = throttled;
    await expect(vectors.read(part, ask(1))).rejects.toBe(throttled);
    store.failReads = undefined;
    expect((await vectors.read(part, ask(1))).size).toBe(1);

    // Once the footer is known, a failed read of a row group fails the read too.
    store.failReads = throttled;
    await expect(vectors.read(part, ask(ROW_GROUP + 1))).rejects.toBe(throttled);
  });

  it('lets a failure of the store mid-stream through rather than taking it for a corrupt part', async () => {
    const inner = new MemoryObjectStore(4096);
    await putPart(inner, 'u1', rowsOf(ROW_GROUP, 4));
    const reset = new Error('socket hang up');
    const store = new RecordingStore(inner);
    const vectors = new PartVectors(store, PIPELINE, 4);
    await vectors.read({ runId: RUN, unitId: 'u1' }, ask(0));
    // The body breaks after its first piece, as an S3 stream can.
    store.readRange = (key, start, end, options) => ({
      async *[Symbol.asyncIterator]() {
        let pieces = 0;
        for await (const piece of inner.readRange(key, start, end, options)) {
          if (pieces++ > 0) throw reset;
          yield piece;
        }
      },
    });
    await expect(vectors.read({ runId: RUN, unitId: 'u1' }, ask(0, 2000))).rejects.toBe(reset);
  });
});
