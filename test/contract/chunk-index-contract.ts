import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChunkIndex, IndexedChunk } from '../../shared/ports/chunk-index.ts';

export interface ChunkIndexUnderTest {
  readonly index: ChunkIndex;
  cleanup(): Promise<void>;
}

const aChunk = (chunkId: string, sha: string, seed = 1): IndexedChunk => ({
  chunkId,
  textSha256: sha,
  embedding: Float32Array.from({ length: 8 }, (_, i) => seed * 0.5 + i / 8),
  runId: 'r-20261128T000000Z-000001',
});

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
      expect((await index.lookupChunks('docs', ['a#0', 'b#0'])).size).toBe(0);
      expect((await index.lookupDocs('docs', ['a'])).size).toBe(0);
    });

    it('returns recorded chunks with their exact vectors, and only the ids asked for', async () => {
      await index.record(
        'docs',
        [aChunk('a#0', 'h1', 1), aChunk('a#1', 'h2', 2), aChunk('odd id / with spaces#0', 'h3', 3)],
        [{ docId: 'a', chunkCount: 2 }],
      );
      const found = await index.lookupChunks('docs', ['a#1', 'odd id / with spaces#0', 'missing#0']);
      expect([...found.keys()].sort()).toEqual(['a#1', 'odd id / with spaces#0']);
      expect(found.get('a#1')).toMatchObject({
        chunkId: 'a#1',
        textSha256: 'h2',
        runId: 'r-20261128T000000Z-000001',
      });
      expect(Array.from(found.get('a#1')!.embedding)).toEqual(Array.from(aChunk('a#1', 'h2', 2).embedding));
      expect(await index.lookupDocs('docs', ['a'])).toEqual(new Map([['a', { docId: 'a', chunkCount: 2 }]]));
    });

    it('keeps pipelines apart and lets a later record replace an entry', async () => {
      await index.record('docs', [aChunk('a#0', 'old')], []);
      await index.record('other', [aChunk('a#0', 'theirs')], []);
      await index.record('docs', [aChunk('a#0', 'new')], [{ docId: 'a', chunkCount: 1 }]);
      expect((await index.lookupChunks('docs', ['a#0'])).get('a#0')?.textSha256).toBe('new');
      expect((await index.lookupChunks('other', ['a#0'])).get('a#0')?.textSha256).toBe('theirs');
    });

    it('keeps the source a document was last read from, and forgets it when a record leaves it out', async () => {
      await index.record(
        'docs',
        [],
        [{ docId: 'moved', chunkCount: 3, sourceKey: 'incoming/docs/a b+1.jsonl' }],
      );
      expect(await index.lookupDocs('docs', ['moved'])).toEqual(
        new Map([['moved', { docId: 'moved', chunkCount: 3, sourceKey: 'incoming/docs/a b+1.jsonl' }]]),
      );
      await index.record('docs', [], [{ docId: 'moved', chunkCount: 0 }]);
      expect(await index.lookupDocs('docs', ['moved'])).toEqual(
        new Map([['moved', { docId: 'moved', chunkCount: 0 }]]),
      );
    });

    it('handles more ids than one batch holds, with repeats', async () => {
      const chunks = Array.from({ length: 260 }, (_, i) => aChunk(`d${i}#0`, `h${i}`));
      await index.record('docs', [...chunks, chunks[0]!], []);
      const ids = [...chunks.map((c) => c.chunkId), 'd0#0'];
      const found = await index.lookupChunks('docs', ids);
      expect(found.size).toBe(260);
      expect(found.get('d259#0')?.textSha256).toBe('h259');
    });
  });
}
