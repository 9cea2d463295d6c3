import { describe, expect, it } from 'vitest';
import { batchGetReadUnits } from '../../shared/cost/dynamo-request-units.ts';
import { UsageMeter } from '../../shared/cost/unit-usage.ts';
import type { IndexedDoc, LookupOptions } from '../../shared/ports/chunk-index.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

const doc = (docId: string, chunks: number): IndexedDoc => ({
  docId,
  chunkCount: chunks,
  sourceKey: 'incoming/p/a.jsonl',
  chunks: {
    fingerprints: new Uint8Array(16 * chunks).fill(7),
    at: { runId: 'r-20261207T120000Z-abcdef', unitId: 'u00003', firstRow: 8192 },
  },
});

/** A memory index that keeps the options each lookup was given. */
class OptionsSeen extends MemoryChunkIndex {
  readonly seen: (LookupOptions | undefined)[] = [];
  override async lookupDocs(pipeline: string, docIds: readonly string[], options?: LookupOptions) {
    this.seen.push(options);
    return super.lookupDocs(pipeline, docIds);
  }
}

describe('consistent chunk index lookups in read units (ConsistentRead: 1 per 4 KB, 1 per key not found)', () => {
  it('bills a consistent BatchGetItem twice an eventually consistent one', () => {
    expect(batchGetReadUnits(3, [100, 5000])).toBe(0.5 + 0.5 + 1);
    expect(batchGetReadUnits(3, [100, 5000], true)).toBe(1 + 1 + 2);
  });

  it('meters a consistent lookup at the full rate and hands the option to the index; a plain one at half', async () => {
    const inner = new OptionsSeen();
    // 300 chunks: a 4.9 KB item, two 4 KB blocks.
    await inner.record('p', [doc('a', 2), doc('big', 300)]);
    const plain = new UsageMeter();
    await plain.chunkIndex(inner).lookupDocs('p', ['a', 'big', 'x', 'x']);
    // Found: 0.5 + 1; not found: x once, 0.5.
    expect(plain.usage.chunkIndexReadUnits).toBe(2);
    const consistent = new UsageMeter();
    await consistent.chunkIndex(inner).lookupDocs('p', ['a', 'big', 'x', 'x'], { consistent: true });
    expect(consistent.usage.chunkIndexReadUnits).toBe(4);
    expect(inner.seen).toEqual([undefined, { consistent: true }]);
  });
});
