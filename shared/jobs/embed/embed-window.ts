import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import type { EmbeddingRow, UnitCounts } from '../../domain/types.ts';
import type { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { chunkText } from '../../embedding/chunker.ts';
import { chunkFingerprint } from '../../embedding/fingerprint.ts';
import { paddedTokens } from '../../embedding/token-budget-batcher.ts';
import type { TokenCounter } from '../../embedding/token-counter.ts';
import { ModelError } from '../../errors/errors.ts';
import type { UnitDocList } from '../../incremental/unit-doc-list.ts';
import type { IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { SourceRecord } from '../../readers/source-record.ts';

/** The steps of embedding one window of a unit's chunks, each on its own (see `embedUnit`). */

export interface PendingChunk {
  /** The record's position in the unit, which identifies its document: results keep that order. */
  readonly seq: number;
  readonly row: Omit<EmbeddingRow, 'embedding'>;
}

export interface EmbeddedChunk {
  readonly seq: number;
  readonly row: EmbeddingRow;
}

export interface DocInfo {
  readonly docId: string;
  readonly sourceKey: string;
  readonly line: number;
  readonly byteOffset: number;
  readonly excerpt: string;
}

export type DocRecord = Extract<SourceRecord, { kind: 'doc' }>;

/** A document entry to record: its chunk count and source. */
export interface ChangedDoc {
  readonly docId: string;
  readonly chunkCount: number;
  readonly sourceKey: string;
}

/** Chunks kept per document id in a window (a document's chunks are all in one window). */
export type WindowChunkCounts = Map<string, { chunks: number; sourceKey: string }>;

/** The document a record becomes, as rejects and the id list name it. */
export function docInfoOf(record: DocRecord, sourceKey: string): DocInfo {
  return {
    docId: record.id,
    sourceKey,
    line: record.line,
    byteOffset: record.byteOffset,
    excerpt: record.text.slice(0, 200),
  };
}

/** A document's chunks, each with its fingerprint, waiting to be embedded. */
export function chunksOfRecord(
  seq: number,
  record: DocRecord,
  sourceKey: string,
  tokenCounter: TokenCounter,
  config: EmbedPipelineConfig,
): PendingChunk[] {
  return chunkText(record.text, tokenCounter, config.chunking).map((chunk) => ({
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
      source_key: sourceKey,
      chunk_text: chunk.text,
      metadata: record.metadata,
    },
  }));
}

/**
 * Splits a window into the chunks to embed and those carried forward with the vector the
 * index holds for the same fingerprint. A hit recorded by this same run is an earlier
 * attempt of this unit: embed again, so the counts say what this run embedded.
 */
export function carryForward(
  pending: readonly PendingChunk[],
  known: ReadonlyMap<string, IndexedChunk>,
  runId: string,
  dimension: number,
): { toEmbed: PendingChunk[]; carried: EmbeddedChunk[] } {
  const toEmbed: PendingChunk[] = [];
  const carried: EmbeddedChunk[] = [];
  for (const chunk of pending) {
    const hit = known.get(chunk.row.chunk_id);
    if (
      !hit ||
      hit.runId === runId ||
      hit.textSha256 !== chunk.row.text_sha256 ||
      hit.embedding.length !== dimension
    )
      toEmbed.push(chunk);
    else carried.push({ seq: chunk.seq, row: { ...chunk.row, embedding: hit.embedding } });
  }
  return { toEmbed, carried };
}

/**
 * Embeds batches, counting their tokens. A batch the model refuses is bisected until the
 * refused chunk is alone; its document's seq is then noted in `refused` with the reason.
 */
export class BatchEmbedder {
  readonly done: EmbeddedChunk[] = [];
  readonly refused = new Map<number, string>();

  constructor(
    private readonly endpoint: EmbeddingEndpoint,
    private readonly counts: UnitCounts,
  ) {}

  async embed(batch: readonly PendingChunk[]): Promise<void> {
    try {
      const vectors = await this.endpoint.embed(
        batch.map((c) => c.row.chunk_text),
        this.counts,
      );
      this.counts.realTokens += batch.reduce((sum, c) => sum + c.row.token_count, 0);
      this.counts.paddedTokens += paddedTokens(batch.map((c) => c.row.token_count));
      batch.forEach((chunk, i) => {
        this.done.push({
          seq: chunk.seq,
          // The typed-array constructor copies an array without the iterator protocol `from` uses.
          row: { ...chunk.row, embedding: new Float32Array(vectors[i]!) },
        });
      });
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      if (batch.length === 1) {
        this.refused.set(batch[0]!.seq, `model rejected the input: ${error.message}`);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.embed(batch.slice(0, half));
      await this.embed(batch.slice(half));
    }
  }
}

/** The chunks of documents the model took whole, in record then chunk order. */
export function keptInOrder(
  done: readonly EmbeddedChunk[],
  refused: ReadonlyMap<number, string>,
): EmbeddedChunk[] {
  const kept = done.filter((e) => !refused.has(e.seq));
  kept.sort((a, b) => a.seq - b.seq || a.row.chunk_index - b.row.chunk_index);
  return kept;
}

/** Adds each kept document to the unit's id list: its chunks, and how many were carried. */
export function addKeptDocs(
  idList: UnitIdList,
  kept: readonly EmbeddedChunk[],
  docs: ReadonlyMap<number, DocInfo>,
  carried: ReadonlySet<string>,
): void {
  for (let i = 0; i < kept.length; ) {
    const { seq } = kept[i]!;
    const doc = docs.get(seq)!;
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
}

/**
 * Counts a window's rows (chunks, carried ones), notes their documents in the doc list and
 * returns the chunks per document and, with an index, the newly embedded chunks to record.
 */
export function tallyRows(
  rows: readonly EmbeddingRow[],
  carried: ReadonlySet<string>,
  counts: UnitCounts,
  docList: UnitDocList | undefined,
  indexRunId: string | undefined,
): { chunkCounts: WindowChunkCounts; chunkUpdates: IndexedChunk[] } {
  const chunkCounts: WindowChunkCounts = new Map();
  const chunkUpdates: IndexedChunk[] = [];
  for (const row of rows) {
    counts.chunks += 1;
    const kept = chunkCounts.get(row.doc_id);
    if (kept) kept.chunks += 1;
    else chunkCounts.set(row.doc_id, { chunks: 1, sourceKey: row.source_key });
    docList?.add(row.source_key, row.doc_id);
    if (carried.has(row.chunk_id)) counts.skippedUnchanged += 1;
    else if (indexRunId !== undefined) {
      chunkUpdates.push({
        chunkId: row.chunk_id,
        textSha256: row.text_sha256,
        embedding: row.embedding as Float32Array,
        runId: indexRunId,
      });
    }
  }
  return { chunkCounts, chunkUpdates };
}

/**
 * Counts the chunks an edit removed from a window's documents and returns the entries that
 * changed, to record once the parts are written (a retry must still see the old ones).
 */
export function changedDocs(
  chunkCounts: WindowChunkCounts,
  previous: ReadonlyMap<string, IndexedDoc>,
  counts: UnitCounts,
): ChangedDoc[] {
  const changed: ChangedDoc[] = [];
  for (const [docId, { chunks: chunkCount, sourceKey }] of chunkCounts) {
    const before = previous.get(docId);
    counts.removedChunks += Math.max(0, (before?.chunkCount ?? 0) - chunkCount);
    if (before?.chunkCount !== chunkCount || before.sourceKey !== sourceKey)
      changed.push({ docId, chunkCount, sourceKey });
  }
  return changed;
}
