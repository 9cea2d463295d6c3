import { PackedEntries } from '../../duplicates/packed-entries.ts';
import { INDEX_FINGERPRINT_BYTES, type IndexedDoc } from '../../ports/chunk-index.ts';

/** Bytes per block of fingerprints (a document with more gets a block of its own). */
const FINGERPRINT_BLOCK_BYTES = 256 * 1024;
/** Fingerprints a block holds: where they start there, in fingerprints, is below this. */
const FINGERPRINTS_PER_BLOCK = FINGERPRINT_BLOCK_BYTES / INDEX_FINGERPRINT_BYTES;
/** Blocks a {@link FingerprintBlocks} may hold: its refs stay below 2^32 - 1, left for a marker. */
const MAX_BLOCKS = 2 ** 32 / FINGERPRINTS_PER_BLOCK - 2;

/**
 * Chunk fingerprints kept in blocks of bytes rather than an array each: a unit of short
 * records keeps hundreds of thousands of documents' until its part is written. Where a
 * document's are is one number (its ref: 1 + the block's number, times the fingerprints a
 * block holds, plus where they start there), so a packed entry keeps one field for them.
 */
export class FingerprintBlocks {
  private readonly blocks: Uint8Array[] = [];
  private blockUsed = FINGERPRINT_BLOCK_BYTES;

  /** Bytes the blocks hold. */
  get heldBytes(): number {
    return this.blocks.reduce((sum, block) => sum + block.byteLength, 0);
  }

  /** Keeps a copy of `bytes` (whole fingerprints); returns its ref, 1 or more. */
  store(bytes: Uint8Array): number {
    if (bytes.length > FINGERPRINT_BLOCK_BYTES) {
      this.newBlock(bytes.slice());
      // The block of its own is full: the next document starts a new one.
      this.blockUsed = FINGERPRINT_BLOCK_BYTES;
      return this.blocks.length * FINGERPRINTS_PER_BLOCK;
    }
    if (this.blockUsed + bytes.length > FINGERPRINT_BLOCK_BYTES) {
      this.newBlock(new Uint8Array(FINGERPRINT_BLOCK_BYTES));
      this.blockUsed = 0;
    }
    const offset = this.blockUsed;
    this.blocks[this.blocks.length - 1]!.set(bytes, offset);
    this.blockUsed += bytes.length;
    return this.blocks.length * FINGERPRINTS_PER_BLOCK + offset / INDEX_FINGERPRINT_BYTES;
  }

  /** A copy of the `chunks` fingerprints stored at `ref` (an adapter may keep what it is given). */
  read(ref: number, chunks: number): Uint8Array {
    const at = ref % FINGERPRINTS_PER_BLOCK;
    const block = this.blocks[(ref - at) / FINGERPRINTS_PER_BLOCK - 1]!;
    const offset = at * INDEX_FINGERPRINT_BYTES;
    return block.slice(offset, offset + chunks * INDEX_FINGERPRINT_BYTES);
  }

  private newBlock(block: Uint8Array): void {
    if (this.blocks.length >= MAX_BLOCKS)
      throw new RangeError(`a unit's index entries hold over ${MAX_BLOCKS} blocks of fingerprints`);
    this.blocks.push(block);
  }
}

/**
 * Index entries as the index returned them (any run's part), packed as
 * `PendingDocUpdates` packs a unit's own: the id (optional: a list kept beside another
 * may leave it out), the chunk count, the source's and the part's numbers, the first row and
 * where the fingerprints are.
 */
export class PackedIndexedDocs {
  private readonly strings: string[] = [];
  private readonly stringNumbers = new Map<string, number>();
  /** chunkCount, source + 1 (0: none), part + 1 (0: no chunks), firstRow, fingerprints' ref. */
  private readonly entries = new PackedEntries(['u32', 'u32', 'u32', 'u32', 'u32']);

  /** @param fingerprints where the fingerprints go: shared with another list, one may point at the other's. */
  constructor(private readonly fingerprints = new FingerprintBlocks()) {}

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries' packed arrays hold, without the fingerprint blocks. */
  get entryBytes(): number {
    return this.entries.capacityBytes;
  }

  /** Bytes the entries hold (their packed arrays' capacity and the fingerprint blocks). */
  get heldBytes(): number {
    return this.entries.capacityBytes + this.fingerprints.heldBytes;
  }

  /**
   * Appends `doc`, its id as `id` (the doc's by default); returns its number. `sameAs`: the
   * ref of fingerprints already stored in this list's blocks that equal the doc's (kept once).
   */
  add(doc: IndexedDoc, id: string = doc.docId, sameAs?: number): number {
    const source = doc.sourceKey === undefined ? 0 : this.numberOf(doc.sourceKey) + 1;
    const chunks = doc.chunks;
    if (!chunks) return this.entries.push(id, [doc.chunkCount, source, 0, 0, 0]);
    const part = this.numberOf(`${chunks.at.runId}\n${chunks.at.unitId}`) + 1;
    const ref = sameAs ?? this.fingerprints.store(chunks.fingerprints);
    return this.entries.push(id, [doc.chunkCount, source, part, chunks.at.firstRow, ref]);
  }

  /** Entry `k`, its id `docId` where the list does not keep ids. */
  get(k: number, docId: string = this.entries.id(k)): IndexedDoc {
    const { entries } = this;
    const chunkCount = entries.value(k, 0);
    const source = entries.value(k, 1);
    const part = entries.value(k, 2);
    const doc = { docId, chunkCount, ...(source === 0 ? {} : { sourceKey: this.strings[source - 1]! }) };
    if (part === 0) return doc;
    const [runId, unitId] = this.strings[part - 1]!.split('\n') as [string, string];
    return {
      ...doc,
      chunks: {
        fingerprints: this.fingerprints.read(entries.value(k, 4), chunkCount),
        at: { runId, unitId, firstRow: entries.value(k, 3) },
      },
    };
  }

  private numberOf(value: string): number {
    let n = this.stringNumbers.get(value);
    if (n === undefined) {
      n = this.strings.length;
      this.strings.push(value);
      this.stringNumbers.set(value, n);
    }
    return n;
  }
}
