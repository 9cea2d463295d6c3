import { PackedEntries } from '../../duplicates/packed-entries.ts';
import { INDEX_FINGERPRINT_BYTES, type IndexedDoc } from '../../ports/chunk-index.ts';

/** A document entry to record once the unit's part is written. */
export interface DocUpdate {
  readonly docId: string;
  readonly chunkCount: number;
  readonly sourceKey: string;
  /** Its chunks' fingerprints and first row in this unit's part; absent when not kept (see MAX_INDEXED_CHUNKS). */
  readonly chunks?: { readonly fingerprints: Uint8Array; readonly firstRow: number };
}

/** Bytes per block of fingerprints (a document with more gets a block of its own). */
const FINGERPRINT_BLOCK_BYTES = 256 * 1024;
/** Index entries are recorded this many at a time. */
const RECORD_SLICE = 2048;

/**
 * Document entries waiting for the unit's part, packed ({@link PackedEntries}: the id,
 * the source's number, the chunk count, the first row, where the fingerprints are) and the
 * fingerprints in blocks of bytes, rather than an object each: a unit of short records has
 * hundreds of thousands of documents, and every document it writes gets an entry (its
 * vectors' place moves to this run's part) unless it was carried whole from an entry still
 * fresh (shared/incremental/entry-refresh.ts).
 */
export class PendingDocUpdates {
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();
  /** source, chunkCount, firstRow, fingerprint block + 1 (0: none kept), offset there. */
  private readonly entries = new PackedEntries(['u32', 'u32', 'u32', 'u32', 'u32']);
  private readonly blocks: Uint8Array[] = [];
  private blockUsed = FINGERPRINT_BLOCK_BYTES;

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries hold (their packed arrays' capacity and the fingerprint blocks). */
  get heldBytes(): number {
    return this.entries.capacityBytes + this.blocks.reduce((sum, block) => sum + block.byteLength, 0);
  }

  add(doc: DocUpdate): void {
    let source = this.sourceNumbers.get(doc.sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(doc.sourceKey);
      this.sourceNumbers.set(doc.sourceKey, source);
    }
    const chunks = doc.chunks;
    if (!chunks) {
      this.entries.push(doc.docId, [source, doc.chunkCount, 0, 0, 0]);
      return;
    }
    const { block, offset } = this.storeFingerprints(chunks.fingerprints);
    this.entries.push(doc.docId, [source, doc.chunkCount, chunks.firstRow, block + 1, offset]);
  }

  /** The entries as the index records them, pointing at `runId`'s unit `unitId` part, `size` at a time. */
  *slices(runId: string, unitId: string, size = RECORD_SLICE): Generator<IndexedDoc[]> {
    const { entries } = this;
    for (let i = 0; i < entries.size; i += size) {
      const slice: IndexedDoc[] = [];
      for (let k = i; k < Math.min(entries.size, i + size); k += 1) {
        const chunkCount = entries.value(k, 1);
        const doc = {
          docId: entries.id(k),
          chunkCount,
          sourceKey: this.sources[entries.value(k, 0)]!,
        };
        const blockNumber = entries.value(k, 3);
        if (blockNumber === 0) {
          slice.push(doc);
          continue;
        }
        const block = this.blocks[blockNumber - 1]!;
        const offset = entries.value(k, 4);
        slice.push({
          ...doc,
          chunks: {
            // A copy: the slice outlives nothing, but an adapter may keep what it is given.
            fingerprints: block.slice(offset, offset + chunkCount * INDEX_FINGERPRINT_BYTES),
            at: { runId, unitId, firstRow: entries.value(k, 2) },
          },
        });
      }
      yield slice;
    }
  }

  private storeFingerprints(bytes: Uint8Array): { block: number; offset: number } {
    if (bytes.length > FINGERPRINT_BLOCK_BYTES) {
      this.blocks.push(bytes.slice());
      // The block of its own is full: the next document starts a new one.
      this.blockUsed = FINGERPRINT_BLOCK_BYTES;
      return { block: this.blocks.length - 1, offset: 0 };
    }
    if (this.blockUsed + bytes.length > FINGERPRINT_BLOCK_BYTES) {
      this.blocks.push(new Uint8Array(FINGERPRINT_BLOCK_BYTES));
      this.blockUsed = 0;
    }
    const block = this.blocks.length - 1;
    const offset = this.blockUsed;
    this.blocks[block]!.set(bytes, offset);
    this.blockUsed += bytes.length;
    return { block, offset };
  }
}
