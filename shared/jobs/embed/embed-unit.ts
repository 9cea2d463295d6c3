import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import {
  type EmbeddingRow,
  emptyCounts,
  type RejectRow,
  type UnitCounts,
  type WorkUnit,
} from '../../domain/types.ts';
import { PackedEntries } from '../../duplicates/packed-entries.ts';
import { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { cutTokenBudgetBatches } from '../../embedding/token-budget-batcher.ts';
import type { TokenCounter } from '../../embedding/token-counter.ts';
import { tokenCounterFor } from '../../embedding/token-counter-for.ts';
import { UnitDocList } from '../../incremental/unit-doc-list.ts';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';
import {
  addKeptDocs,
  BatchEmbedder,
  carryForward,
  changedDocs,
  chunksOfRecord,
  type DocInfo,
  type DocRecord,
  docInfoOf,
  type EmbeddedChunk,
  keptInOrder,
  type PendingChunk,
  tallyRows,
  type WindowChunkCounts,
} from './embed-window.ts';

/** Where a unit's embedded chunks go as each window of them is done (a Parquet part writer). */
export interface EmbeddingSink {
  add(rows: readonly EmbeddingRow[]): void | Promise<void>;
}

export interface EmbeddedUnit {
  readonly rejects: RejectRow[];
  readonly counts: UnitCounts;
  /**
   * Document entries to record in the chunk index once the unit's parts are written, in
   * slices (none without an index). Chunk entries are recorded as each window is embedded.
   */
  readonly docUpdates: PendingDocUpdates;
  /**
   * Incremental pipelines: the documents this unit put in `embeddings`, per source, for
   * finalize to tell which documents vanished from a re-dropped source.
   */
  readonly docList?: UnitDocList;
  /** The documents in the unit's part, in part order, for finalize's duplicate-id rule. */
  readonly idList: UnitIdList;
}

/**
 * Document entries waiting for the unit's parts, packed ({@link PackedEntries}: the id,
 * the source's number, the chunk count) rather than an object each: a unit of short
 * records has hundreds of thousands of documents.
 */
export class PendingDocUpdates {
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();
  private readonly entries = new PackedEntries(['u32', 'u32']);

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries hold (their packed arrays' capacity). */
  get heldBytes(): number {
    return this.entries.capacityBytes;
  }

  add(doc: { readonly docId: string; readonly chunkCount: number; readonly sourceKey: string }): void {
    let source = this.sourceNumbers.get(doc.sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(doc.sourceKey);
      this.sourceNumbers.set(doc.sourceKey, source);
    }
    this.entries.push(doc.docId, [source, doc.chunkCount]);
  }

  /** The entries, `size` at a time. */
  *slices(size = RECORD_SLICE): Generator<IndexedDoc[]> {
    const { entries } = this;
    for (let i = 0; i < entries.size; i += size) {
      const slice: IndexedDoc[] = [];
      for (let k = i; k < Math.min(entries.size, i + size); k += 1)
        slice.push({
          docId: entries.id(k),
          chunkCount: entries.value(k, 1),
          sourceKey: this.sources[entries.value(k, 0)]!,
        });
      yield slice;
    }
  }
}

/** Index entries are recorded this many at a time. */
const RECORD_SLICE = 2048;

/** Point lookups go out in slices of this many ids (DynamoDB BatchGetItem takes 100 keys). */
const LOOKUP_SLICE = 100;

async function lookupInSlices<T>(
  ids: readonly string[],
  lookup: (slice: string[]) => Promise<Map<string, T>>,
): Promise<Map<string, T>> {
  const found = new Map<string, T>();
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += LOOKUP_SLICE) {
    for (const [id, value] of await lookup(unique.slice(i, i + LOOKUP_SLICE))) found.set(id, value);
  }
  return found;
}

/**
 * Reads a unit's records, chunks the documents, batches chunks by token budget and
 * embeds them, a window of `batching.sortWindow` chunks at a time. Each finished window
 * goes to `sink` in record order, so a unit holds one window of chunks, not all of them.
 * Records that cannot be used become rejects; a chunk the model refuses (found by
 * bisecting the failed batch) rejects its whole document, so a document is either fully
 * in the results or in rejects, never both (a document's chunks are always in one window).
 *
 * With a chunk index, chunks whose fingerprint matches the one last embedded under the
 * same chunk id are carried forward with their stored vector instead of re-embedded, so
 * every run's `embeddings` still holds every chunk of the documents it read.
 */
export async function embedUnit(
  deps: EmbedDeps,
  config: EmbedPipelineConfig,
  unit: WorkUnit,
  sink: EmbeddingSink,
  checkpoint?: Checkpoint,
): Promise<EmbeddedUnit> {
  const tokenCounter = await tokenCounterFor(deps.store, config, deps.tokenCounter);
  return new UnitEmbedder(deps, config, unit, sink, tokenCounter).run(checkpoint);
}

interface EmbedDeps {
  store: ObjectStore;
  endpoint: EmbeddingEndpoint;
  tokenCounter: TokenCounter;
  chunkIndex?: ChunkIndex | undefined;
}

/** One unit's embedding: the unit's results so far and the current window, as fields. */
class UnitEmbedder {
  private readonly index: ChunkIndex | undefined;
  private readonly counts = emptyCounts();
  private readonly rejects: RejectRow[] = [];
  private readonly docUpdates = new PendingDocUpdates();
  private readonly idList = new UnitIdList();
  private readonly docList: UnitDocList | undefined;
  /** The current window's documents, by seq, and chunks. */
  private docs = new Map<number, DocInfo>();
  private window: PendingChunk[] = [];
  private seq = 0;

  constructor(
    private readonly deps: EmbedDeps,
    private readonly config: EmbedPipelineConfig,
    private readonly unit: WorkUnit,
    private readonly sink: EmbeddingSink,
    private readonly tokenCounter: TokenCounter,
  ) {
    this.index = config.incremental.enabled ? deps.chunkIndex : undefined;
    this.docList = config.incremental.enabled ? new UnitDocList() : undefined;
  }

  async run(checkpoint: Checkpoint | undefined): Promise<EmbeddedUnit> {
    const { store } = this.deps;
    for await (const { slice, record } of unitRecords(store, this.unit, this.config.input, checkpoint)) {
      this.counts.records += 1;
      this.docList?.noteSource(slice.key);
      if (record.kind === 'reject') {
        this.rejects.push(rejectRowOf(slice.key, record));
        continue;
      }
      if (record.kind !== 'doc') throw new Error(`embedding reader yielded a ${record.kind}`);
      this.addDoc(record, slice.key);
      if (this.window.length >= this.config.batching.sortWindow) await this.flush();
    }
    await this.flush();
    const { counts, rejects, docUpdates, idList, docList } = this;
    counts.rejected = rejects.length;
    counts.embedded = counts.chunks - counts.skippedUnchanged;
    return { rejects, counts, docUpdates, idList, ...(docList ? { docList } : {}) };
  }

  private addDoc(record: DocRecord, sourceKey: string): void {
    this.seq += 1;
    this.docs.set(this.seq, docInfoOf(record, sourceKey));
    for (const chunk of chunksOfRecord(this.seq, record, sourceKey, this.tokenCounter, this.config))
      this.window.push(chunk);
  }

  /** Embeds the current window, sends its rows to the sink and records them in the index. */
  private async flush(): Promise<void> {
    const pending = this.window;
    const docs = this.docs;
    this.window = [];
    this.docs = new Map();
    const { toEmbed, carried } = await this.carryForward(pending);
    const embedder = new BatchEmbedder(this.deps.endpoint, this.counts);
    const batches = cutTokenBudgetBatches(toEmbed, (c) => c.row.token_count, this.config.batching);
    await mapWithConcurrency(batches, this.config.endpoint.concurrency, (batch) => embedder.embed(batch));
    this.rejectRefused(embedder.refused, docs);
    const kept = keptInOrder([...carried, ...embedder.done], embedder.refused);
    const carriedIds = new Set(carried.map((c) => c.row.chunk_id));
    addKeptDocs(this.idList, kept, docs, carriedIds);
    const rows = kept.map((e) => e.row);
    const indexRunId = this.index ? this.unit.runId : undefined;
    const tally = tallyRows(rows, carriedIds, this.counts, this.docList, indexRunId);
    await this.sink.add(rows);
    if (this.index) await this.recordWindow(this.index, tally.chunkUpdates, tally.chunkCounts);
  }

  /** With an index, the window's unchanged chunks carried forward with their stored vectors. */
  private async carryForward(
    pending: PendingChunk[],
  ): Promise<{ toEmbed: PendingChunk[]; carried: EmbeddedChunk[] }> {
    const index = this.index;
    if (!index || pending.length === 0) return { toEmbed: pending, carried: [] };
    const known = await lookupInSlices(
      pending.map((c) => c.row.chunk_id),
      (ids) => index.lookupChunks(this.unit.pipeline, ids),
    );
    return carryForward(pending, known, this.unit.runId, this.config.endpoint.dimension);
  }

  /** A document with a chunk the model refused becomes a reject, whole. */
  private rejectRefused(refused: ReadonlyMap<number, string>, docs: ReadonlyMap<number, DocInfo>): void {
    for (const [seq, reason] of refused) {
      const doc = docs.get(seq)!;
      this.rejects.push({
        source_key: doc.sourceKey,
        byte_offset: doc.byteOffset,
        line: doc.line,
        reason,
        excerpt: doc.excerpt,
      });
    }
  }

  /**
   * Records the window's new chunk entries now, not after the part is written, so a unit
   * holds one window of vectors: an entry says which vector the model gave for a
   * fingerprint, true whether or not this attempt's part is ever committed, and a retry in
   * the same run never carries its own. Document entries wait for the parts.
   */
  private async recordWindow(
    index: ChunkIndex,
    chunkUpdates: readonly IndexedChunk[],
    chunkCounts: WindowChunkCounts,
  ): Promise<void> {
    const { pipeline } = this.unit;
    for (let i = 0; i < chunkUpdates.length; i += RECORD_SLICE)
      await index.record(pipeline, chunkUpdates.slice(i, i + RECORD_SLICE), []);
    const previous = await lookupInSlices([...chunkCounts.keys()], (ids) => index.lookupDocs(pipeline, ids));
    for (const doc of changedDocs(chunkCounts, previous, this.counts)) this.docUpdates.add(doc);
  }
}
