import { describe, expect, it } from 'vitest';
import { type EmbeddingRow, emptyCounts } from '../../shared/domain/types.ts';
import { ModelError } from '../../shared/errors/errors.ts';
import {
  BatchEmbedder,
  carryForward,
  changedDocs,
  type EmbeddedChunk,
  keptInOrder,
  type PendingChunk,
  tallyRows,
  type WindowChunkCounts,
} from '../../shared/jobs/embed/embed-window.ts';
import type { IndexedChunk } from '../../shared/ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';

function pending(seq: number, index: number, text = `text ${seq}.${index}`): PendingChunk {
  return {
    seq,
    row: {
      doc_id: `d${seq}`,
      chunk_id: `d${seq}#${index}`,
      chunk_index: index,
      char_start: 0,
      char_end: text.length,
      token_count: 3,
      text_sha256: `sha-${text}`,
      model: 'm',
      source_key: 's.jsonl',
      chunk_text: text,
      metadata: {},
    },
  };
}

function embedded(chunk: PendingChunk): EmbeddedChunk {
  return { seq: chunk.seq, row: { ...chunk.row, embedding: new Float32Array([1, 2]) } };
}

describe('carryForward', () => {
  const chunk = pending(1, 0);
  const stored = (over: Partial<IndexedChunk>): Map<string, IndexedChunk> =>
    new Map([
      [
        chunk.row.chunk_id,
        {
          chunkId: chunk.row.chunk_id,
          textSha256: chunk.row.text_sha256,
          embedding: new Float32Array([0.5, 0.25]),
          runId: 'earlier',
          ...over,
        },
      ],
    ]);

  it('carries a chunk whose fingerprint matches an earlier run, with the stored vector', () => {
    const { toEmbed, carried } = carryForward([chunk], stored({}), 'now', 2);
    expect(toEmbed).toEqual([]);
    expect([...carried[0]!.row.embedding]).toEqual([0.5, 0.25]);
  });

  it('embeds again on a miss, a changed fingerprint, another dimension or an entry of this run', () => {
    for (const known of [
      new Map<string, IndexedChunk>(),
      stored({ textSha256: 'other' }),
      stored({ embedding: new Float32Array(3) }),
      stored({ runId: 'now' }),
    ]) {
      const { toEmbed, carried } = carryForward([chunk], known, 'now', 2);
      expect(toEmbed).toEqual([chunk]);
      expect(carried).toEqual([]);
    }
  });
});

describe('BatchEmbedder', () => {
  it('bisects a refused batch down to the refused chunk and keeps the rest, counting tokens once', async () => {
    const calls: number[] = [];
    const endpoint: EmbeddingEndpoint = {
      async embed(inputs) {
        calls.push(inputs.length);
        if (inputs.includes('bad')) throw new ModelError('too long', 400);
        return inputs.map(() => [1, 2]);
      },
    };
    const counts = emptyCounts();
    const embedder = new BatchEmbedder(endpoint, counts);
    await embedder.embed([pending(1, 0), pending(2, 0, 'bad'), pending(3, 0), pending(4, 0)]);
    expect(calls).toEqual([4, 2, 1, 1, 2]);
    expect([...embedder.refused]).toEqual([[2, 'model rejected the input: too long']]);
    expect(embedder.done.map((c) => c.seq).sort()).toEqual([1, 3, 4]);
    expect(counts.realTokens).toBe(9);
  });

  it('lets any other error through', async () => {
    const endpoint: EmbeddingEndpoint = {
      embed: async () => {
        throw new Error('network down');
      },
    };
    await expect(new BatchEmbedder(endpoint, emptyCounts()).embed([pending(1, 0)])).rejects.toThrow(
      'network down',
    );
  });
});

describe('keptInOrder', () => {
  it('drops every chunk of a refused document and orders the rest by record, then chunk', () => {
    const done = [pending(2, 1), pending(1, 0), pending(3, 0), pending(2, 0)].map(embedded);
    const kept = keptInOrder(done, new Map([[3, 'refused']]));
    expect(kept.map((c) => c.row.chunk_id)).toEqual(['d1#0', 'd2#0', 'd2#1']);
  });
});

describe('tallyRows', () => {
  it('counts chunks per document, skips carried chunks and records only new ones with an index', () => {
    const rows: EmbeddingRow[] = [pending(1, 0), pending(1, 1), pending(2, 0)].map((c) => embedded(c).row);
    const counts = emptyCounts();
    const { chunkCounts, chunkUpdates } = tallyRows(rows, new Set(['d1#1']), counts, undefined, 'run-1');
    expect(counts.chunks).toBe(3);
    expect(counts.skippedUnchanged).toBe(1);
    expect([...chunkCounts]).toEqual([
      ['d1', { chunks: 2, sourceKey: 's.jsonl' }],
      ['d2', { chunks: 1, sourceKey: 's.jsonl' }],
    ]);
    expect(chunkUpdates.map((u) => [u.chunkId, u.runId])).toEqual([
      ['d1#0', 'run-1'],
      ['d2#0', 'run-1'],
    ]);
    expect(tallyRows(rows, new Set(), emptyCounts(), undefined, undefined).chunkUpdates).toEqual([]);
  });
});

describe('changedDocs', () => {
  it('counts removed chunks and returns only documents whose count or source changed', () => {
    const chunkCounts: WindowChunkCounts = new Map([
      ['same', { chunks: 2, sourceKey: 'a' }],
      ['shrunk', { chunks: 1, sourceKey: 'a' }],
      ['moved', { chunks: 2, sourceKey: 'b' }],
      ['new', { chunks: 1, sourceKey: 'a' }],
    ]);
    const previous = new Map([
      ['same', { docId: 'same', chunkCount: 2, sourceKey: 'a' }],
      ['shrunk', { docId: 'shrunk', chunkCount: 4, sourceKey: 'a' }],
      ['moved', { docId: 'moved', chunkCount: 2, sourceKey: 'a' }],
    ]);
    const counts = emptyCounts();
    expect(changedDocs(chunkCounts, previous, counts).map((d) => d.docId)).toEqual([
      'shrunk',
      'moved',
      'new',
    ]);
    expect(counts.removedChunks).toBe(3);
  });
});
