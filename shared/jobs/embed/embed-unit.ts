import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import {
  type EmbeddingRow,
  emptyCounts,
  type RejectRow,
  type UnitCounts,
  type WorkUnit,
} from '../../domain/types.ts';
import { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { chunkText } from '../../embedding/chunker.ts';
import { chunkFingerprint } from '../../embedding/fingerprint.ts';
import { cutTokenBudgetBatches, paddedTokens } from '../../embedding/token-budget-batcher.ts';
import type { TokenCounter } from '../../embedding/token-counter.ts';
import { tokenCounterFor } from '../../embedding/token-counter-for.ts';
import { ModelError } from '../../errors/errors.ts';
import { UnitDocList } from '../../incremental/unit-doc-list.ts';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';

interface PendingChunk {
  /** The record's position in the unit, which identifies its document: results keep that order. */
  readonly seq: number;
  readonly row: Omit<EmbeddingRow, 'embedding'>;
}

interface EmbeddedChunk {
  readonly seq: number;
  readonly row: EmbeddingRow;
}

interface DocInfo {
  readonly docId: string;
  readonly sourceKey: string;
  readonly line: number;
  readonly byteOffset: number;
  readonly excerpt: string;
}

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
 * Document entries waiting for the unit's parts, one compact line each (chunk count, the
 * source's number, the id) rather than an object each: a unit of short records has
 * hundreds of thousands of documents.
 */
export class PendingDocUpdates {
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();
  private readonly lines: string[] = [];

  get size(): number {
    return this.lines.length;
  }

  add(doc: { readonly docId: string; readonly chunkCount: number; readonly sourceKey: string }): void {
    let source = this.sourceNumbers.get(doc.sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(doc.sourceKey);
      this.sourceNumbers.set(doc.sourceKey, source);
    }
    this.lines.push(`${doc.chunkCount}\t${source}\t${doc.docId}`);
  }

  /** The entries, `size` at a time. */
  *slices(size = RECORD_SLICE): Generator<IndexedDoc[]> {
    for (let i = 0; i < this.lines.length; i += size) {
      yield this.lines.slice(i, i + size).map((line) => {
        const tab = line.indexOf('\t');
        const tab2 = line.indexOf('\t', tab + 1);
        return {
          docId: line.slice(tab2 + 1),
          chunkCount: Number(line.slice(0, tab)),
          sourceKey: this.sources[Number(line.slice(tab + 1, tab2))]!,
        };
      });
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
  deps: {
    store: ObjectStore;
    endpoint: EmbeddingEndpoint;
    tokenCounter: TokenCounter;
    chunkIndex?: ChunkIndex | undefined;
  },
  config: EmbedPipelineConfig,
  unit: WorkUnit,
  sink: EmbeddingSink,
  checkpoint?: Checkpoint,
): Promise<EmbeddedUnit> {
  const index = config.incremental.enabled ? deps.chunkIndex : undefined;
  const tokenCounter = await tokenCounterFor(deps.store, config, deps.tokenCounter);
  const counts = emptyCounts();
  const rejects: RejectRow[] = [];
  const docUpdates = new PendingDocUpdates();
  const idList = new UnitIdList();
  const docList = config.incremental.enabled ? new UnitDocList() : undefined;
  // The current window's documents and chunks.
  let docs = new Map<number, DocInfo>();
  let window: PendingChunk[] = [];

  const flush = async (): Promise<void> => {
    let pending = window;
    const windowDocs = docs;
    window = [];
    docs = new Map();
    const done: EmbeddedChunk[] = [];
    const refused = new Map<number, string>();
    const carried = new Set<string>();

    const embedBatch = async (batch: PendingChunk[]): Promise<void> => {
      try {
        const vectors = await deps.endpoint.embed(
          batch.map((c) => c.row.chunk_text),
          counts,
        );
        counts.realTokens += batch.reduce((sum, c) => sum + c.row.token_count, 0);
        counts.paddedTokens += paddedTokens(batch.map((c) => c.row.token_count));
        batch.forEach((chunk, i) => {
          done.push({
            seq: chunk.seq,
            // The typed-array constructor copies an array without the iterator protocol `from` uses.
            row: { ...chunk.row, embedding: new Float32Array(vectors[i]!) },
          });
        });
      } catch (error) {
        if (!(error instanceof ModelError)) throw error;
        if (batch.length === 1) {
          refused.set(batch[0]!.seq, `model rejected the input: ${error.message}`);
          return;
        }
        const half = Math.ceil(batch.length / 2);
        await embedBatch(batch.slice(0, half));
        await embedBatch(batch.slice(half));
      }
    };

    if (index && pending.length > 0) {
      const known = await lookupInSlices(
        pending.map((c) => c.row.chunk_id),
        (ids) => index.lookupChunks(unit.pipeline, ids),
      );
      pending = pending.filter((chunk) => {
        const hit = known.get(chunk.row.chunk_id);
        // A hit recorded by this same run is an earlier attempt of this unit: embed again,
        // so the counts say what this run embedded.
        if (
          !hit ||
          hit.runId === unit.runId ||
          hit.textSha256 !== chunk.row.text_sha256 ||
          hit.embedding.length !== config.endpoint.dimension
        )
          return true;
        carried.add(chunk.row.chunk_id);
        done.push({ seq: chunk.seq, row: { ...chunk.row, embedding: hit.embedding } });
        return false;
      });
    }
    const batches = cutTokenBudgetBatches(pending, (c) => c.row.token_count, config.batching);
    await mapWithConcurrency(batches, config.endpoint.concurrency, embedBatch);

    for (const [seq, reason] of refused) {
      const doc = windowDocs.get(seq)!;
      rejects.push({
        source_key: doc.sourceKey,
        byte_offset: doc.byteOffset,
        line: doc.line,
        reason,
        excerpt: doc.excerpt,
      });
    }
    const kept = done.filter((e) => !refused.has(e.seq));
    kept.sort((a, b) => a.seq - b.seq || a.row.chunk_index - b.row.chunk_index);
    const rows = kept.map((e) => e.row);
    for (let i = 0; i < kept.length; ) {
      const { seq } = kept[i]!;
      const doc = windowDocs.get(seq)!;
      let chunks = 0;
      let carriedChunks = 0;
      for (; i < kept.length && kept[i]!.seq === seq; i += 1) {
        chunks += 1;
        if (carried.has(kept[i]!.row.chunk_id)) carriedChunks += 1;
      }
      idList.add({
        id: doc.docId,
        sourceKey: doc.sourceKey,
        byteOffset: doc.byteOffset,
        line: doc.line,
        rows: chunks,
        carried: carriedChunks,
      });
    }
    /** Chunks kept per document id in this window (a document's chunks are all in one window). */
    const chunkCounts = new Map<string, { chunks: number; sourceKey: string }>();
    const chunkUpdates: IndexedChunk[] = [];
    for (const row of rows) {
      counts.chunks += 1;
      const kept = chunkCounts.get(row.doc_id);
      if (kept) kept.chunks += 1;
      else chunkCounts.set(row.doc_id, { chunks: 1, sourceKey: row.source_key });
      docList?.add(row.source_key, row.doc_id);
      if (carried.has(row.chunk_id)) counts.skippedUnchanged += 1;
      else if (index) {
        chunkUpdates.push({
          chunkId: row.chunk_id,
          textSha256: row.text_sha256,
          embedding: row.embedding as Float32Array,
          runId: unit.runId,
        });
      }
    }
    await sink.add(rows);
    if (index) {
      // Recorded now, not after the part is written, so a unit holds one window of vectors:
      // an entry says which vector the model gave for a fingerprint, true whether or not this
      // attempt's part is ever committed, and a retry in the same run never carries its own.
      for (let i = 0; i < chunkUpdates.length; i += RECORD_SLICE)
        await index.record(unit.pipeline, chunkUpdates.slice(i, i + RECORD_SLICE), []);
      await compareDocs(index, chunkCounts);
    }
  };

  /**
   * Counts the chunks an edit removed from this window's documents and keeps the entries
   * that changed, to record once the parts are written (a retry must still see the old ones).
   */
  const compareDocs = async (
    index: ChunkIndex,
    chunkCounts: ReadonlyMap<string, { chunks: number; sourceKey: string }>,
  ): Promise<void> => {
    const previous = await lookupInSlices([...chunkCounts.keys()], (ids) =>
      index.lookupDocs(unit.pipeline, ids),
    );
    for (const [docId, { chunks: chunkCount, sourceKey }] of chunkCounts) {
      const before = previous.get(docId);
      counts.removedChunks += Math.max(0, (before?.chunkCount ?? 0) - chunkCount);
      if (before?.chunkCount !== chunkCount || before.sourceKey !== sourceKey)
        docUpdates.add({ docId, chunkCount, sourceKey });
    }
  };

  let seq = 0;
  for await (const { slice, record } of unitRecords(deps.store, unit, config.input, checkpoint)) {
    counts.records += 1;
    docList?.noteSource(slice.key);
    if (record.kind === 'reject') {
      rejects.push(rejectRowOf(slice.key, record));
      continue;
    }
    if (record.kind !== 'doc') throw new Error(`embedding reader yielded a ${record.kind}`);
    seq += 1;
    docs.set(seq, {
      docId: record.id,
      sourceKey: slice.key,
      line: record.line,
      byteOffset: record.byteOffset,
      excerpt: record.text.slice(0, 200),
    });
    for (const chunk of chunkText(record.text, tokenCounter, config.chunking)) {
      window.push({
        seq,
        row: {
          doc_id: record.id,
          chunk_id: `${record.id}#${chunk.index}`,
          chunk_index: chunk.index,
          char_start: chunk.charStart,
          char_end: chunk.charEnd,
          token_count: chunk.tokens,
          text_sha256: chunkFingerprint(chunk.text, config.endpoint.model, config.chunking),
          model: config.endpoint.model,
          source_key: slice.key,
          chunk_text: chunk.text,
          metadata: record.metadata,
        },
      });
    }
    if (window.length >= config.batching.sortWindow) await flush();
  }
  await flush();

  counts.rejected = rejects.length;
  counts.embedded = counts.chunks - counts.skippedUnchanged;
  return { rejects, counts, docUpdates, idList, ...(docList ? { docList } : {}) };
}
