import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import type { EmbeddingRow, UnitCounts } from '../../domain/types.ts';
import type { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { chunkText } from '../../embedding/chunker.ts';
import { chunkFingerprint } from '../../embedding/fingerprint.ts';
import { paddedTokens } from '../../embedding/token-budget-batcher.ts';
import type { TokenCounter } from '../../embedding/token-counter.ts';
import { ModelError } from '../../errors/errors.ts';
import { entryIsFresh } from '../../incremental/entry-refresh.ts';
import type { UnitDocList } from '../../incremental/unit-doc-list.ts';
import {
  INDEX_FINGERPRINT_BYTES,
  type IndexedDoc,
  indexFingerprint,
  MAX_INDEXED_CHUNKS,
  sameFingerprint,
} from '../../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { SourceRecord } from '../../readers/source-record.ts';
import { ModelUnusable } from '../../scoring/errors.ts';
import type { PartRef, VectorRequest } from './part-vectors.ts';
import type { DocUpdate } from './pending-doc-updates.ts';

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

/**
 * Chunks kept per document id in a window (a document's chunks are all in one window),
 * with the first of its rows among the window's and whether its rows are consecutive.
 */
export type WindowChunkCounts = Map<
  string,
  { chunks: number; sourceKey: string; firstRow: number; contiguous: boolean }
>;

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

/** A chunk the index says is unchanged, and the row of the earlier part that holds its vector. */
export interface CarryCandidate {
  readonly chunk: PendingChunk;
  readonly part: PartRef;
  readonly row: number;
}

/**
 * Splits a window into the chunks to embed and those whose fingerprint matches the one
 * the index holds for the same chunk of the same document, whose vector is then read from
 * the part the index names. `previous` holds the entries as they were before this run
 * (prior-entries.ts: one an earlier delivery or another unit of the run recorded is
 * compared as the one it replaced); an entry naming a part of this run is never carried
 * from all the same, since a retry rewrites that part while it reads.
 */
export function carryCandidates(
  pending: readonly PendingChunk[],
  previous: ReadonlyMap<string, IndexedDoc>,
  runId: string,
): { toEmbed: PendingChunk[]; candidates: CarryCandidate[] } {
  const toEmbed: PendingChunk[] = [];
  const candidates: CarryCandidate[] = [];
  for (const chunk of pending) {
    const doc = previous.get(chunk.row.doc_id);
    const chunks = doc?.chunks;
    const n = chunk.row.chunk_index;
    if (
      !chunks ||
      chunks.at.runId === runId ||
      n >= doc.chunkCount ||
      !sameFingerprint(chunks, n, chunk.row.text_sha256)
    )
      toEmbed.push(chunk);
    else
      candidates.push({
        chunk,
        part: { runId: chunks.at.runId, unitId: chunks.at.unitId },
        row: chunks.at.firstRow + n,
      });
  }
  return { toEmbed, candidates };
}

/** Reads a part's vectors for the rows asked for (shared/jobs/embed/part-vectors.ts). */
export type ReadPartVectors = (
  part: PartRef,
  requests: readonly VectorRequest[],
) => Promise<Map<string, Float32Array>>;

/**
 * The candidates' vectors, read part by part: a chunk whose vector the part no longer has
 * (gone, rewritten, another chunk at that row) is embedded after all.
 */
export async function readCarried(
  candidates: readonly CarryCandidate[],
  read: ReadPartVectors,
): Promise<{ carried: EmbeddedChunk[]; missed: PendingChunk[] }> {
  const byPart = new Map<string, CarryCandidate[]>();
  for (const candidate of candidates) {
    const key = `${candidate.part.runId}/${candidate.part.unitId}`;
    const list = byPart.get(key);
    if (list) list.push(candidate);
    else byPart.set(key, [candidate]);
  }
  const carried: EmbeddedChunk[] = [];
  const missed: PendingChunk[] = [];
  for (const list of byPart.values()) {
    const vectors = await read(
      list[0]!.part,
      list.map((c) => ({ chunkId: c.chunk.row.chunk_id, row: c.row, textSha256: c.chunk.row.text_sha256 })),
    );
    for (const { chunk } of list) {
      const embedding = vectors.get(chunk.row.chunk_id);
      if (embedding) carried.push({ seq: chunk.seq, row: { ...chunk.row, embedding } });
      else missed.push(chunk);
    }
  }
  return { carried, missed };
}

/**
 * Embeds batches, counting their tokens. A batch the model refuses is bisected until the
 * refused chunk is alone; its document's seq is then noted in `refused` with the reason.
 */
export class BatchEmbedder {
  readonly done: EmbeddedChunk[] = [];
  readonly refused = new Map<number, string>();

  /**
   * @param dimension the pipeline's `endpoint.dimension`: a vector of any other length means
   *   the model is not the one configured, for every chunk alike, so the unit fails at once
   *   ({@link ModelUnusable}) rather than write vectors Athena, search and the chunk index
   *   would read as another model's (a re-run would carry none of them).
   */
  constructor(
    private readonly endpoint: EmbeddingEndpoint,
    private readonly counts: UnitCounts,
    private readonly dimension: number,
  ) {}

  async embed(batch: readonly PendingChunk[]): Promise<void> {
    try {
      const vectors = await this.endpoint.embed(
        batch.map((c) => c.row.chunk_text),
        this.counts,
      );
      const wrong = vectors.find((v) => v.length !== this.dimension);
      if (wrong)
        throw new ModelUnusable(
          `the embedding model returned ${wrong.length}-dimensional vectors, but the pipeline's endpoint.dimension is ${this.dimension}: set endpoint.dimension to the model's, or point the endpoint at the model configured`,
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

/**
 * Adds each kept document to the unit's id list: its chunks, and how many were carried.
 * `carried` holds the carried rows themselves, not their chunk ids: two records with one id
 * in a window share chunk ids, and one may be carried while the other is embedded.
 */
export function addKeptDocs(
  idList: UnitIdList,
  kept: readonly EmbeddedChunk[],
  docs: ReadonlyMap<number, DocInfo>,
  carried: ReadonlySet<EmbeddingRow>,
): void {
  for (let i = 0; i < kept.length; ) {
    const { seq } = kept[i]!;
    const doc = docs.get(seq)!;
    let chunks = 0;
    let carriedChunks = 0;
    for (; i < kept.length && kept[i]!.seq === seq; i += 1) {
      chunks += 1;
      if (carried.has(kept[i]!.row)) carriedChunks += 1;
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
 * returns each document's chunks: how many, and the first of its rows (a document's rows
 * are consecutive: record then chunk order).
 */
export function tallyRows(
  rows: readonly EmbeddingRow[],
  carried: ReadonlySet<EmbeddingRow>,
  counts: UnitCounts,
  docList: UnitDocList | undefined,
): WindowChunkCounts {
  const chunkCounts: WindowChunkCounts = new Map();
  let previousSeqDoc: string | undefined;
  rows.forEach((row, i) => {
    counts.chunks += 1;
    const kept = chunkCounts.get(row.doc_id);
    if (!kept)
      chunkCounts.set(row.doc_id, { chunks: 1, sourceKey: row.source_key, firstRow: i, contiguous: true });
    else {
      kept.chunks += 1;
      // The same id again after another document's rows: two records with one id.
      if (previousSeqDoc !== row.doc_id) kept.contiguous = false;
    }
    previousSeqDoc = row.doc_id;
    docList?.add(row.source_key, row.doc_id);
    if (carried.has(row)) counts.skippedUnchanged += 1;
  });
  return chunkCounts;
}

/**
 * Counts the chunks an edit removed from a window's documents and returns the entries to
 * record once the part is written (a retry must still see the old ones): each document's
 * chunks' fingerprints and first row in the part, `rowsBefore` being the rows the part held
 * before this window's. A document whose rows are not one run of chunks 0..n-1 (two records
 * with one id) and one over MAX_INDEXED_CHUNKS are recorded without them, so their chunks
 * are embedded again next time rather than carried wrongly.
 *
 * A document whose entry is still right is left out: every chunk carried (`carried`: read
 * back from the part the entry names, so each fingerprint matched and the part holds them),
 * as many chunks as the entry, the same source, and the entry's run fresh against this run
 * `runId` ({@link entryIsFresh}). Its entry keeps pointing at the older part, which gc keeps
 * for as long (shared/incremental/entry-refresh.ts): an unchanged re-run then writes an entry
 * per document once in ENTRY_REFRESH_DAYS, not every run. But where this run already wrote
 * over that entry (`rewritten`: an earlier delivery of the unit, another unit's record of the
 * same id), it is put back as it was, so the index ends as one clean delivery leaves it.
 *
 * `previous` holds the entries as they were before this run (prior-entries.ts), so that a
 * retry counts, and each update names the entry it replaces, as the first delivery did.
 */
export function docUpdatesOf(
  chunkCounts: WindowChunkCounts,
  rows: readonly EmbeddingRow[],
  rowsBefore: number,
  previous: ReadonlyMap<string, IndexedDoc>,
  counts: UnitCounts,
  carried: ReadonlySet<EmbeddingRow>,
  runId: string,
  rewritten: ReadonlySet<string> = new Set(),
): DocUpdate[] {
  const updates: DocUpdate[] = [];
  for (const [docId, { chunks: chunkCount, sourceKey, firstRow, contiguous }] of chunkCounts) {
    const before = previous.get(docId);
    counts.removedChunks += Math.max(0, (before?.chunkCount ?? 0) - chunkCount);
    const doc = { docId, chunkCount, sourceKey, ...(before ? { replaces: before } : {}) };
    if (!contiguous || chunkCount > MAX_INDEXED_CHUNKS || !inChunkOrder(rows, firstRow, chunkCount)) {
      updates.push(doc);
      continue;
    }
    if (
      before?.chunks &&
      before.chunkCount === chunkCount &&
      before.sourceKey === sourceKey &&
      entryIsFresh(runId, before.chunks.at.runId) &&
      allCarried(rows, firstRow, chunkCount, carried)
    ) {
      if (rewritten.has(docId)) updates.push({ ...doc, restores: true });
      continue;
    }
    const fingerprints = new Uint8Array(chunkCount * INDEX_FINGERPRINT_BYTES);
    for (let n = 0; n < chunkCount; n += 1)
      fingerprints.set(indexFingerprint(rows[firstRow + n]!.text_sha256), n * INDEX_FINGERPRINT_BYTES);
    updates.push({ ...doc, chunks: { fingerprints, firstRow: rowsBefore + firstRow } });
  }
  return updates;
}

/** Whether every one of rows `first..first+count-1` was carried (none embedded). */
function allCarried(
  rows: readonly EmbeddingRow[],
  first: number,
  count: number,
  carried: ReadonlySet<EmbeddingRow>,
): boolean {
  for (let n = 0; n < count; n += 1) if (!carried.has(rows[first + n]!)) return false;
  return true;
}

/** Whether rows `first..first+count-1` are chunks 0..count-1, in order. */
function inChunkOrder(rows: readonly EmbeddingRow[], first: number, count: number): boolean {
  for (let n = 0; n < count; n += 1) if (rows[first + n]!.chunk_index !== n) return false;
  return true;
}
