import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import {
  type EmbeddingRow,
  emptyCounts,
  type RejectRow,
  type UnitCounts,
  type WorkUnit,
} from '../../domain/types.ts';
import { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { cutTokenBudgetBatches } from '../../embedding/token-budget-batcher.ts';
import type { TokenCounter } from '../../embedding/token-counter.ts';
import { tokenCounterFor } from '../../embedding/token-counter-for.ts';
import { UnitDocList } from '../../incremental/unit-doc-list.ts';
import type { ChunkIndex, IndexedDoc } from '../../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';
import {
  addKeptDocs,
  BatchEmbedder,
  carryCandidates,
  chunksOfRecord,
  type DocInfo,
  type DocRecord,
  docInfoOf,
  docUpdatesOf,
  type EmbeddedChunk,
  keptInOrder,
  type PendingChunk,
  readCarried,
  tallyRows,
} from './embed-window.ts';
import { PartVectors } from './part-vectors.ts';
import { PendingDocUpdates } from './pending-doc-updates.ts';
import { type EntriesBefore, PriorEntries } from './prior-entries.ts';

export { PendingDocUpdates } from './pending-doc-updates.ts';

/** Where a unit's embedded chunks go as each window of them is done (a Parquet part writer). */
export interface EmbeddingSink {
  add(rows: readonly EmbeddingRow[]): void | Promise<void>;
}

export interface EmbeddedUnit {
  readonly rejects: RejectRow[];
  readonly counts: UnitCounts;
  /**
   * Document entries to record in the chunk index once the unit's part is written (none
   * without an index): every document the unit wrote, pointing at its rows in the part,
   * but those carried whole whose entry is still fresh (`docUpdatesOf`).
   */
  readonly docUpdates: PendingDocUpdates;
  /**
   * With an index: the entries as they were before this run, and where the unit keeps those
   * its updates replace (written before they are recorded).
   */
  readonly priorEntries?: PriorEntries;
  /**
   * Incremental pipelines: the documents this unit put in `embeddings`, per source, for
   * finalize to tell which documents vanished from a re-dropped source.
   */
  readonly docList?: UnitDocList;
  /** The documents in the unit's part, in part order, for finalize's duplicate-id rule. */
  readonly idList: UnitIdList;
}

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
 * With a chunk index, chunks whose fingerprint matches the one the index holds for the
 * same chunk of the same document are carried forward with the vector read from the part
 * the index names (an earlier run's) instead of re-embedded, so every run's `embeddings`
 * still holds every chunk of the documents it read; and every document written gets an
 * entry pointing at its rows in this unit's part, recorded once the part is written, but a
 * document carried whole whose entry's run is under ENTRY_REFRESH_DAYS old: its entry is
 * still right (shared/incremental/entry-refresh.ts). Entries this run recorded already (a
 * delivery that died after recording, another unit's record of the same id) are compared as
 * the entries they replaced (prior-entries.ts): a retry counts what its first delivery did.
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
  /** Reads carried chunks' vectors from earlier runs' parts (with an index). */
  private readonly partVectors: PartVectors | undefined;
  /** Turns what lookups find into the entries before this run (with an index). */
  private readonly priorEntries: PriorEntries | undefined;
  private readonly counts = emptyCounts();
  private readonly rejects: RejectRow[] = [];
  private readonly docUpdates = new PendingDocUpdates();
  private readonly idList = new UnitIdList();
  private readonly docList: UnitDocList | undefined;
  /** The current window's documents, by seq, and chunks. */
  private docs = new Map<number, DocInfo>();
  private window: PendingChunk[] = [];
  private seq = 0;
  /** Rows sent to the sink so far: where the next window's rows start in the part. */
  private rowsWritten = 0;

  constructor(
    private readonly deps: EmbedDeps,
    private readonly config: EmbedPipelineConfig,
    private readonly unit: WorkUnit,
    private readonly sink: EmbeddingSink,
    private readonly tokenCounter: TokenCounter,
  ) {
    this.index = config.incremental.enabled ? deps.chunkIndex : undefined;
    this.partVectors = this.index
      ? new PartVectors(deps.store, unit.pipeline, config.endpoint.dimension)
      : undefined;
    this.priorEntries = this.index
      ? new PriorEntries(deps.store, unit.pipeline, unit.runId, unit.unitId)
      : undefined;
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
    const { counts, rejects, docUpdates, idList, docList, priorEntries } = this;
    counts.rejected = rejects.length;
    counts.embedded = counts.chunks - counts.skippedUnchanged;
    return {
      rejects,
      counts,
      docUpdates,
      idList,
      ...(docList ? { docList } : {}),
      ...(priorEntries ? { priorEntries } : {}),
    };
  }

  private addDoc(record: DocRecord, sourceKey: string): void {
    this.seq += 1;
    this.docs.set(this.seq, docInfoOf(record, sourceKey));
    for (const chunk of chunksOfRecord(this.seq, record, sourceKey, this.tokenCounter, this.config))
      this.window.push(chunk);
  }

  /** Embeds the current window, sends its rows to the sink and notes its documents' index entries. */
  private async flush(): Promise<void> {
    const pending = this.window;
    const docs = this.docs;
    this.window = [];
    this.docs = new Map();
    if (pending.length === 0) return;
    const { previous, rewritten } = await this.entriesBefore(pending);
    const { toEmbed, carried } = await this.carryForward(pending, previous);
    const embedder = new BatchEmbedder(this.deps.endpoint, this.counts, this.config.endpoint.dimension);
    const batches = cutTokenBudgetBatches(toEmbed, (c) => c.row.token_count, this.config.batching);
    await mapWithConcurrency(batches, this.config.endpoint.concurrency, (batch) => embedder.embed(batch));
    this.rejectRefused(embedder.refused, docs);
    const kept = keptInOrder([...carried, ...embedder.done], embedder.refused);
    // The carried rows themselves: a chunk id repeats when two records share an id.
    const carriedRows = new Set(carried.map((c) => c.row));
    addKeptDocs(this.idList, kept, docs, carriedRows);
    const rows = kept.map((e) => e.row);
    const chunkCounts = tallyRows(rows, carriedRows, this.counts, this.docList);
    await this.sink.add(rows);
    if (this.index)
      for (const doc of docUpdatesOf(
        chunkCounts,
        rows,
        this.rowsWritten,
        previous,
        this.counts,
        carriedRows,
        this.unit.runId,
        rewritten,
      ))
        this.docUpdates.add(doc);
    this.rowsWritten += rows.length;
  }

  /** With an index, the entries of the window's documents as the runs before this one left them. */
  private async entriesBefore(pending: readonly PendingChunk[]): Promise<EntriesBefore> {
    const { index, priorEntries } = this;
    if (!index || !priorEntries) return { previous: new Map(), rewritten: new Set() };
    const docIds = pending.map((c) => c.row.doc_id);
    return priorEntries.before(
      await lookupInSlices(docIds, (ids) => index.lookupDocs(this.unit.pipeline, ids)),
    );
  }

  /** The window's unchanged chunks carried forward with their vectors read from the part that holds them. */
  private async carryForward(
    pending: PendingChunk[],
    previous: ReadonlyMap<string, IndexedDoc>,
  ): Promise<{ toEmbed: PendingChunk[]; carried: EmbeddedChunk[] }> {
    const partVectors = this.partVectors;
    if (!partVectors || previous.size === 0) return { toEmbed: pending, carried: [] };
    const { toEmbed, candidates } = carryCandidates(pending, previous, this.unit.runId);
    if (candidates.length === 0) return { toEmbed, carried: [] };
    const { carried, missed } = await readCarried(candidates, (part, requests) =>
      partVectors.read(part, requests),
    );
    return { toEmbed: [...toEmbed, ...missed], carried };
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
}
