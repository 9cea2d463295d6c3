import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ChunkIndex,
  INDEX_FINGERPRINT_BYTES,
  type IndexedDoc,
  MAX_INDEXED_CHUNKS,
  type VectorLocation,
} from '../../shared/ports/chunk-index.ts';

export interface ChunkIndexUnderTest {
  readonly index: ChunkIndex;
  cleanup(): Promise<void>;
}

const RUN = 'r-20261128T000000Z-000001';

/** `count` chunks' fingerprints, different for each `seed` (every byte depends on both). */
export function fingerprintsOf(count: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(count * INDEX_FINGERPRINT_BYTES);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = (i * 31 + seed * 97 + (i >> 4) * 7) & 0xff;
  return bytes;
}

/** A document embedded with `chunkCount` chunks, their vectors in `unitId`'s part from row `firstRow`. */
export function aDoc(
  docId: string,
  chunkCount: number,
  {
    seed = 1,
    firstRow = 0,
    unitId = 'u-0001',
    runId = RUN,
    sourceKey,
  }: Partial<VectorLocation> & {
    readonly seed?: number;
    readonly sourceKey?: string;
  } = {},
): IndexedDoc {
  return {
    docId,
    chunkCount,
    ...(sourceKey === undefined ? {} : { sourceKey }),
    chunks: { fingerprints: fingerprintsOf(chunkCount, seed), at: { runId, unitId, firstRow } },
  };
}

/**
 * An entry in plain values (fingerprints as hex), so `toEqual` compares bytes exactly and
 * tells which doc and field differ, whatever Uint8Array subclass an adapter returns.
 */
export function plain(doc: IndexedDoc | undefined) {
  if (doc === undefined) return undefined;
  const { chunks, ...rest } = doc;
  return chunks === undefined
    ? rest
    : { ...rest, chunks: { fingerprints: Buffer.from(chunks.fingerprints).toString('hex'), at: chunks.at } };
}

const plainMap = (found: Map<string, IndexedDoc>) =>
  new Map([...found].map(([id, doc]) => [id, plain(doc)] as const));

/** What every ChunkIndex must do, whatever stores it. `makeIndex` returns an empty index. */
export function chunkIndexContract(name: string, makeIndex: () => Promise<ChunkIndexUnderTest>): void {
  describe(`ChunkIndex contract: ${name}`, () => {
    let index: ChunkIndex;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      const made = await makeIndex();
      index = made.index;
      cleanup = () => made.cleanup();
    });
    afterEach(async () => {
      await cleanup?.();
    });

    it('finds nothing in an empty index', async () => {
      expect((await index.lookupDocs('docs', ['a', 'b'])).size).toBe(0);
      expect((await index.lookupDocs('docs', [])).size).toBe(0);
    });

    it('returns recorded documents exactly, with and without chunks, and only the ids asked for', async () => {
      const withChunks = aDoc('odd id / with spaces#0', 3, {
        seed: 5,
        firstRow: 1234567,
        unitId: 'u-0042',
        sourceKey: 'incoming/docs/a b+1.jsonl',
      });
      const withoutChunks: IndexedDoc = {
        docId: 'long',
        chunkCount: MAX_INDEXED_CHUNKS + 1,
        sourceKey: 's/x.jsonl',
      };
      const removed: IndexedDoc = { docId: 'gone', chunkCount: 0 };
      const noSource = aDoc('plain', 1, { seed: 9 });
      await index.record('docs', [withChunks, withoutChunks, removed, noSource, aDoc('not asked', 2)]);

      const found = await index.lookupDocs('docs', [
        'odd id / with spaces#0',
        'long',
        'gone',
        'plain',
        'missing',
      ]);
      expect(plainMap(found)).toEqual(
        new Map([
          ['odd id / with spaces#0', plain(withChunks)],
          ['long', plain(withoutChunks)],
          ['gone', plain(removed)],
          ['plain', plain(noSource)],
        ]),
      );
      expect(found.get('odd id / with spaces#0')?.chunks?.fingerprints).toBeInstanceOf(Uint8Array);
      expect(found.get('odd id / with spaces#0')?.chunks?.fingerprints.length).toBe(
        3 * INDEX_FINGERPRINT_BYTES,
      );
      expect(found.has('missing')).toBe(false);
      expect(found.has('not asked')).toBe(false);
    });

    it('hands out fingerprints of the caller’s own: changing them, or what was recorded, changes nothing kept', async () => {
      const recorded = aDoc('a', 2, { seed: 3 });
      const expected = plain(recorded);
      await index.record('docs', [recorded]);
      recorded.chunks!.fingerprints.fill(0);
      const first = await index.lookupDocs('docs', ['a']);
      expect(plain(first.get('a'))).toEqual(expected);
      first.get('a')!.chunks!.fingerprints.fill(0);
      expect(plain((await index.lookupDocs('docs', ['a'])).get('a'))).toEqual(expected);
    });

    it('keeps pipelines apart', async () => {
      await index.record('docs', [aDoc('a', 2, { seed: 1, sourceKey: 'mine.jsonl' })]);
      await index.record('other', [aDoc('a', 3, { seed: 2, unitId: 'u-0002', firstRow: 7 })]);
      expect(plain((await index.lookupDocs('docs', ['a'])).get('a'))).toEqual(
        plain(aDoc('a', 2, { seed: 1, sourceKey: 'mine.jsonl' })),
      );
      expect(plain((await index.lookupDocs('other', ['a'])).get('a'))).toEqual(
        plain(aDoc('a', 3, { seed: 2, unitId: 'u-0002', firstRow: 7 })),
      );
      expect((await index.lookupDocs('third', ['a'])).size).toBe(0);
    });

    it('lets a later record replace an entry whole: new chunks and place, then forgotten with chunkCount 0', async () => {
      await index.record('docs', [aDoc('a', 4, { seed: 1, sourceKey: 'incoming/a.jsonl' })]);
      const edited = aDoc('a', 2, {
        seed: 2,
        runId: 'r-20261129T000000Z-000002',
        unitId: 'u-0009',
        firstRow: 40,
      });
      await index.record('docs', [edited]);
      expect(plain((await index.lookupDocs('docs', ['a'])).get('a'))).toEqual(plain(edited));

      await index.record('docs', [{ docId: 'a', chunkCount: 0 }]);
      expect(plainMap(await index.lookupDocs('docs', ['a']))).toEqual(
        new Map([['a', { docId: 'a', chunkCount: 0 }]]),
      );
    });

    it('keeps the last of a document recorded twice in one call, within a batch and across batches', async () => {
      const docs = Array.from({ length: 30 }, (_, i) => aDoc(`d${i}`, 1, { seed: i }));
      const lastOfD0 = aDoc('d0', 2, { seed: 100, firstRow: 9 });
      const lastOfD1: IndexedDoc = { docId: 'd1', chunkCount: 0 };
      await index.record('docs', [docs[0]!, docs[1]!, lastOfD1, ...docs.slice(2), lastOfD0]);
      const found = await index.lookupDocs('docs', ['d0', 'd1', 'd29']);
      expect(plainMap(found)).toEqual(
        new Map([
          ['d0', plain(lastOfD0)],
          ['d1', plain(lastOfD1)],
          ['d29', plain(docs[29])],
        ]),
      );
    });

    it('handles more documents than one batch holds, looked up with repeats and misses', async () => {
      const docs = Array.from({ length: 260 }, (_, i) =>
        i % 3 === 0
          ? { docId: `d${i}`, chunkCount: i }
          : aDoc(`d${i}`, 1 + (i % 7), { seed: i, firstRow: i * 10 }),
      );
      await index.record('docs', docs);
      const ids = [
        ...docs.map((d) => d.docId),
        'd0',
        'd259',
        ...Array.from({ length: 40 }, (_, i) => `none${i}`),
      ];
      const found = await index.lookupDocs('docs', ids);
      expect(found.size).toBe(260);
      expect(plainMap(found)).toEqual(new Map(docs.map((d) => [d.docId, plain(d)])));
    });

    it(`round-trips a document at the cap, ${MAX_INDEXED_CHUNKS} chunks, and one of 5,000`, async () => {
      const atCap = aDoc('big', MAX_INDEXED_CHUNKS, { seed: 11, sourceKey: 'incoming/big.jsonl' });
      const many = aDoc('many', 5000, { seed: 12, firstRow: 100 });
      await index.record('docs', [atCap, many]);
      const found = await index.lookupDocs('docs', ['big', 'many']);
      expect(found.get('big')?.chunks?.fingerprints.length).toBe(
        MAX_INDEXED_CHUNKS * INDEX_FINGERPRINT_BYTES,
      );
      expect(plainMap(found)).toEqual(
        new Map([
          ['big', plain(atCap)],
          ['many', plain(many)],
        ]),
      );
    });
  });
}
