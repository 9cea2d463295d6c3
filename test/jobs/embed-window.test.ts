import { describe, expect, it } from 'vitest';
import { type EmbeddingRow, emptyCounts } from '../../shared/domain/types.ts';
import { ModelError } from '../../shared/errors/errors.ts';
import {
  BatchEmbedder,
  carryCandidates,
  docUpdatesOf,
  type EmbeddedChunk,
  keptInOrder,
  type PendingChunk,
  readCarried,
  tallyRows,
} from '../../shared/jobs/embed/embed-window.ts';
import { type IndexedDoc, indexFingerprint } from '../../shared/ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import { ModelUnusable } from '../../shared/scoring/errors.ts';

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
      text_sha256: sha(text),
      model: 'm',
      source_key: 's.jsonl',
      chunk_text: text,
      metadata: {},
    },
  };
}

/** A stand-in sha256 hex of `text` (64 hex characters, distinct per text). */
function sha(text: string): string {
  return Buffer.from(text.padEnd(32, '.').slice(0, 32), 'latin1').toString('hex');
}

function embedded(chunk: PendingChunk): EmbeddedChunk {
  return { seq: chunk.seq, row: { ...chunk.row, embedding: new Float32Array([1, 2]) } };
}

/** This run and earlier ones, by start time (run ids carry it: shared/output/keys.ts newRunId). */
const NOW = 'r-20261208T020000Z-aaaaaa';
const SIX_DAYS_BEFORE = 'r-20261202T020001Z-bbbbbb';
const SEVEN_DAYS_BEFORE = 'r-20261201T020000Z-cccccc';

describe('carryCandidates', () => {
  const chunk = pending(1, 1);
  const entry = (
    over: Partial<IndexedDoc> = {},
    fingerprintOf = chunk.row.text_sha256,
  ): Map<string, IndexedDoc> => {
    const fingerprints = new Uint8Array(32);
    fingerprints.set(indexFingerprint(sha('chunk zero')), 0);
    fingerprints.set(indexFingerprint(fingerprintOf), 16);
    return new Map([
      [
        'd1',
        {
          docId: 'd1',
          chunkCount: 2,
          sourceKey: 's.jsonl',
          chunks: { fingerprints, at: { runId: 'earlier', unitId: 'u7', firstRow: 40 } },
          ...over,
        },
      ],
    ]);
  };

  it('names the part and row of a chunk whose fingerprint matches the entry of an earlier run', () => {
    const { toEmbed, candidates } = carryCandidates([chunk], entry(), 'now');
    expect(toEmbed).toEqual([]);
    expect(candidates).toEqual([{ chunk, part: { runId: 'earlier', unitId: 'u7' }, row: 41 }]);
  });

  it('embeds again on a miss, a changed fingerprint, an entry without chunks, one chunk short, or an entry of this run', () => {
    const known = entry();
    for (const previous of [
      new Map<string, IndexedDoc>(),
      entry({}, sha('edited')),
      new Map([['d1', { docId: 'd1', chunkCount: 2, sourceKey: 's.jsonl' }]]),
      entry({ chunkCount: 1 }),
      new Map([
        [
          'd1',
          {
            ...known.get('d1')!,
            chunks: { ...known.get('d1')!.chunks!, at: { runId: 'now', unitId: 'u1', firstRow: 0 } },
          },
        ],
      ]),
    ]) {
      const { toEmbed, candidates } = carryCandidates([chunk], previous, 'now');
      expect(toEmbed).toEqual([chunk]);
      expect(candidates).toEqual([]);
    }
  });
});

describe('readCarried', () => {
  it('reads each part once for its rows and embeds what a part no longer holds', async () => {
    const a = pending(1, 0);
    const b = pending(1, 1);
    const c = pending(2, 0);
    const reads: string[] = [];
    const { carried, missed } = await readCarried(
      [
        { chunk: a, part: { runId: 'r1', unitId: 'u1' }, row: 5 },
        { chunk: b, part: { runId: 'r1', unitId: 'u1' }, row: 6 },
        { chunk: c, part: { runId: 'r2', unitId: 'u3' }, row: 0 },
      ],
      async (part, requests) => {
        reads.push(`${part.runId}/${part.unitId}:${requests.map((r) => r.row).join(',')}`);
        // r1 lost row 6 (rewritten); r2 is gone.
        return part.runId === 'r1' ? new Map([['d1#0', new Float32Array([0.5, 0.25])]]) : new Map();
      },
    );
    expect(reads).toEqual(['r1/u1:5,6', 'r2/u3:0']);
    expect(carried.map((e) => [e.row.chunk_id, [...e.row.embedding]])).toEqual([['d1#0', [0.5, 0.25]]]);
    expect(missed).toEqual([b, c]);
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
    const embedder = new BatchEmbedder(endpoint, counts, 2);
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
    await expect(new BatchEmbedder(endpoint, emptyCounts(), 2).embed([pending(1, 0)])).rejects.toThrow(
      'network down',
    );
  });

  it('fails the unit at once, in one line, when the model vectors are not endpoint.dimension long', async () => {
    const endpoint: EmbeddingEndpoint = { embed: async (inputs) => inputs.map(() => [1, 2, 3]) };
    const embedder = new BatchEmbedder(endpoint, emptyCounts(), 2);
    const failure = embedder.embed([pending(1, 0), pending(2, 0)]);
    await expect(failure).rejects.toBeInstanceOf(ModelUnusable);
    await expect(failure).rejects.toThrow(
      "the embedding model returned 3-dimensional vectors, but the pipeline's endpoint.dimension is 2",
    );
    expect(embedder.done).toEqual([]);
    expect(embedder.refused.size).toBe(0);
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
  it('counts chunks per document with its first row, and skips carried chunks', () => {
    const rows: EmbeddingRow[] = [pending(1, 0), pending(1, 1), pending(2, 0)].map((c) => embedded(c).row);
    const counts = emptyCounts();
    const chunkCounts = tallyRows(
      rows,
      new Set(rows.filter((r) => r.chunk_id === 'd1#1')),
      counts,
      undefined,
    );
    expect(counts.chunks).toBe(3);
    expect(counts.skippedUnchanged).toBe(1);
    expect([...chunkCounts]).toEqual([
      ['d1', { chunks: 2, sourceKey: 's.jsonl', firstRow: 0, contiguous: true }],
      ['d2', { chunks: 1, sourceKey: 's.jsonl', firstRow: 2, contiguous: true }],
    ]);
  });
});

describe('docUpdatesOf', () => {
  const rowsOf = (chunks: PendingChunk[]): EmbeddingRow[] => chunks.map((c) => embedded(c).row);
  /** An entry of `rows`' document `docId` as run `runId` recorded it. */
  const entryOf = (rows: EmbeddingRow[], docId: string, runId: string, over: Partial<IndexedDoc> = {}) => {
    const mine = rows.filter((r) => r.doc_id === docId);
    const fingerprints = new Uint8Array(mine.length * 16);
    mine.forEach((r, n) => {
      fingerprints.set(indexFingerprint(r.text_sha256), n * 16);
    });
    return {
      docId,
      chunkCount: mine.length,
      sourceKey: 's.jsonl',
      chunks: { fingerprints, at: { runId, unitId: 'u00000', firstRow: 0 } },
      ...over,
    };
  };
  const updatesFor = (
    rows: EmbeddingRow[],
    previous: IndexedDoc[],
    carried: string[],
    counts = emptyCounts(),
  ) => {
    const carriedRows = new Set(rows.filter((r) => carried.includes(r.chunk_id)));
    return docUpdatesOf(
      tallyRows(rows, carriedRows, emptyCounts(), undefined),
      rows,
      0,
      new Map(previous.map((d) => [d.docId, d])),
      counts,
      carriedRows,
      NOW,
    ).map((u) => u.docId);
  };

  it('leaves out a document carried whole whose entry is under 7 days old, and counts removals as before', () => {
    const rows = rowsOf([pending(1, 0), pending(1, 1), pending(2, 0)]);
    const counts = emptyCounts();
    const previous = [
      entryOf(rows, 'd1', SIX_DAYS_BEFORE),
      { ...entryOf(rows, 'd2', SIX_DAYS_BEFORE), chunkCount: 1 },
    ];
    expect(updatesFor(rows, previous, ['d1#0', 'd1#1', 'd2#0'], counts)).toEqual([]);
    expect(counts.removedChunks).toBe(0);
    // A week old or more, or an id that gives no time: rewritten to point at this run.
    expect(updatesFor(rows, [entryOf(rows, 'd1', SEVEN_DAYS_BEFORE)], ['d1#0', 'd1#1'])).toEqual([
      'd1',
      'd2',
    ]);
    expect(updatesFor(rows, [entryOf(rows, 'd1', 'earlier')], ['d1#0', 'd1#1'])).toEqual(['d1', 'd2']);
  });

  it('records a document with a chunk embedded, another chunk count, another source or no entry', () => {
    const rows = rowsOf([pending(1, 0), pending(1, 1)]);
    const fresh = entryOf(rows, 'd1', SIX_DAYS_BEFORE);
    expect(updatesFor(rows, [fresh], ['d1#0'])).toEqual(['d1']);
    expect(updatesFor(rows, [{ ...fresh, chunkCount: 3 }], ['d1#0', 'd1#1'])).toEqual(['d1']);
    expect(updatesFor(rows, [{ ...fresh, sourceKey: 'moved.jsonl' }], ['d1#0', 'd1#1'])).toEqual(['d1']);
    expect(updatesFor(rows, [], ['d1#0', 'd1#1'])).toEqual(['d1']);
    expect(updatesFor(rows, [fresh], ['d1#0', 'd1#1'])).toEqual([]);
  });

  it('returns every document with its fingerprints and first row in the part, counting removed chunks', () => {
    const rows = rowsOf([pending(1, 0), pending(1, 1), pending(2, 0)]);
    const counts = emptyCounts();
    const previous = new Map<string, IndexedDoc>([
      ['d1', { docId: 'd1', chunkCount: 2, sourceKey: 's.jsonl' }],
      ['d2', { docId: 'd2', chunkCount: 4, sourceKey: 'old.jsonl' }],
    ]);
    const updates = docUpdatesOf(
      tallyRows(rows, new Set(), emptyCounts(), undefined),
      rows,
      100,
      previous,
      counts,
      new Set(),
      NOW,
    );
    expect(counts.removedChunks).toBe(3);
    expect(updates.map((u) => [u.docId, u.chunkCount, u.sourceKey, u.chunks?.firstRow])).toEqual([
      ['d1', 2, 's.jsonl', 100],
      ['d2', 1, 's.jsonl', 102],
    ]);
    expect(Buffer.from(updates[0]!.chunks!.fingerprints).toString('hex')).toBe(
      rows[0]!.text_sha256.slice(0, 32) + rows[1]!.text_sha256.slice(0, 32),
    );
  });

  it('records a document without fingerprints when two records share its id', () => {
    const twice = { ...pending(3, 0), row: { ...pending(3, 0).row, doc_id: 'd1', chunk_id: 'd1#0' } };
    const rows = rowsOf([pending(1, 0), pending(2, 0), twice]);
    const updates = docUpdatesOf(
      tallyRows(rows, new Set(), emptyCounts(), undefined),
      rows,
      0,
      new Map(),
      emptyCounts(),
      new Set(),
      NOW,
    );
    expect(updates.find((u) => u.docId === 'd1')).toEqual({
      docId: 'd1',
      chunkCount: 2,
      sourceKey: 's.jsonl',
    });
    expect(updates.find((u) => u.docId === 'd2')?.chunks?.firstRow).toBe(1);
  });
});
