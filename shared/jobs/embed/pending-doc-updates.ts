import { PackedEntries } from '../../duplicates/packed-entries.ts';
import type { IndexedDoc } from '../../ports/chunk-index.ts';
import { FingerprintBlocks, PackedIndexedDocs } from './packed-docs.ts';

/** A document entry to record once the unit's part is written. */
export interface DocUpdate {
  readonly docId: string;
  readonly chunkCount: number;
  readonly sourceKey: string;
  /** Its chunks' fingerprints and first row in this unit's part; absent when not kept (see MAX_INDEXED_CHUNKS). */
  readonly chunks?: { readonly fingerprints: Uint8Array; readonly firstRow: number };
  /**
   * The document's entry as it was before this run, which this one replaces (absent: it had
   * none): kept beside the part for a retry to count against (prior-entries.ts), and told
   * to the index's meter, which counts a replaced entry by its change in size.
   */
  readonly replaces?: IndexedDoc;
  /** Put back `replaces` as it was, rather than record this entry ({@link PendingDocUpdates.restore}). */
  readonly restores?: boolean;
}

/** Index entries are recorded this many at a time. */
const RECORD_SLICE = 2048;
/** The fingerprints' ref of an entry that puts back the entry it replaces ({@link PendingDocUpdates.restore}). */
const RESTORED = 0xffff_ffff;

/** A slice of entries to record, with the entries they replace (a document not in it had none). */
export interface RecordSlice {
  readonly docs: IndexedDoc[];
  readonly replacing: Map<string, IndexedDoc>;
}

/**
 * Document entries waiting for the unit's part, packed ({@link PackedEntries}: the id,
 * the source's number, the chunk count, the first row, where the fingerprints are, the
 * entry replaced) and the fingerprints in blocks of bytes, rather than an object each: a
 * unit of short records has hundreds of thousands of documents, and every document it
 * writes gets an entry (its vectors' place moves to this run's part) unless it was carried
 * whole from an entry still fresh (shared/incremental/entry-refresh.ts). The entries
 * replaced are kept apart, only for documents that had one.
 */
export class PendingDocUpdates {
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();
  /** source, chunkCount, firstRow, fingerprints' ref (0: none kept), replaced + 1 (0: none). */
  private readonly entries = new PackedEntries(['u32', 'u32', 'u32', 'u32', 'u32']);
  private readonly fingerprints = new FingerprintBlocks();
  /**
   * The entries replaced, without their ids (the entry's that replaces each), their
   * fingerprints in the same blocks: a document carried whole whose entry is refreshed
   * (every week, every document of an unchanged re-run) keeps its fingerprints once.
   */
  private readonly replaced = new PackedIndexedDocs(this.fingerprints);

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries hold (their packed arrays' capacity and the fingerprint blocks). */
  get heldBytes(): number {
    return this.entries.capacityBytes + this.fingerprints.heldBytes + this.replaced.entryBytes;
  }

  add(doc: DocUpdate): void {
    if (doc.restores && doc.replaces) {
      this.restore(doc.replaces);
      return;
    }
    let source = this.sourceNumbers.get(doc.sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(doc.sourceKey);
      this.sourceNumbers.set(doc.sourceKey, source);
    }
    const chunks = doc.chunks;
    const ref = chunks ? this.fingerprints.store(chunks.fingerprints) : 0;
    const before = doc.replaces?.chunks?.fingerprints;
    const same = chunks && before && Buffer.from(before).equals(chunks.fingerprints) ? ref : undefined;
    const replaced = doc.replaces ? this.replaced.add(doc.replaces, '', same) + 1 : 0;
    this.entries.push(doc.docId, [source, doc.chunkCount, chunks?.firstRow ?? 0, ref, replaced]);
  }

  /**
   * Puts `entry` back as it was before this run: the document is carried whole from it and
   * it is still fresh, so a clean delivery would leave it, but an earlier delivery of this
   * run's (one that died after recording, or another unit's record of the same id) replaced it.
   */
  restore(entry: IndexedDoc): void {
    this.entries.push(entry.docId, [0, 0, 0, RESTORED, this.replaced.add(entry, '') + 1]);
  }

  /** The entries as the index records them, pointing at `runId`'s unit `unitId` part, `size` at a time. */
  *slices(runId: string, unitId: string, size = RECORD_SLICE): Generator<IndexedDoc[]> {
    for (const slice of this.recordSlices(runId, unitId, size)) yield slice.docs;
  }

  /** {@link slices} with the entries each slice replaces. */
  *recordSlices(runId: string, unitId: string, size = RECORD_SLICE): Generator<RecordSlice> {
    const { entries } = this;
    for (let i = 0; i < entries.size; i += size) {
      const docs: IndexedDoc[] = [];
      const replacing = new Map<string, IndexedDoc>();
      for (let k = i; k < Math.min(entries.size, i + size); k += 1) {
        const docId = entries.id(k);
        const replaced = this.replacedOf(k, docId);
        if (replaced) replacing.set(docId, replaced);
        docs.push(this.entryOf(k, docId, runId, unitId) ?? replaced!);
      }
      yield { docs, replacing };
    }
  }

  /** Every entry replaced, with its document's id, in the order added. */
  *replacedEntries(): Generator<IndexedDoc> {
    for (let k = 0; k < this.entries.size; k += 1) {
      if (this.entries.value(k, 4) === 0) continue;
      yield this.replacedOf(k, this.entries.id(k))!;
    }
  }

  private replacedOf(k: number, docId: string): IndexedDoc | undefined {
    const replaced = this.entries.value(k, 4);
    return replaced === 0 ? undefined : this.replaced.get(replaced - 1, docId);
  }

  /** Entry `k` as recorded; undefined for one that puts back the entry it replaces. */
  private entryOf(k: number, docId: string, runId: string, unitId: string): IndexedDoc | undefined {
    const { entries } = this;
    const ref = entries.value(k, 3);
    if (ref === RESTORED) return undefined;
    const chunkCount = entries.value(k, 1);
    const doc = { docId, chunkCount, sourceKey: this.sources[entries.value(k, 0)]! };
    if (ref === 0) return doc;
    return {
      ...doc,
      chunks: {
        fingerprints: this.fingerprints.read(ref, chunkCount),
        at: { runId, unitId, firstRow: entries.value(k, 2) },
      },
    };
  }
}
