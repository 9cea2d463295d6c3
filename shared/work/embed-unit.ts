import type { PipelineConfig } from '../config/pipeline-config.ts';
import {
  type EmbeddingRow,
  emptyCounts,
  type RejectRow,
  type UnitCounts,
  type WorkUnit,
} from '../domain/types.ts';
import { chunkText } from '../embedding/chunker.ts';
import { chunkFingerprint } from '../embedding/fingerprint.ts';
import { cutTokenBudgetBatches, paddedTokens } from '../embedding/token-budget-batcher.ts';
import type { TokenCounter } from '../embedding/token-counter.ts';
import { ModelError } from '../errors/errors.ts';
import type { EmbeddingEndpoint } from '../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { readSourceRecords, type SourceSlice } from '../readers/source-records.ts';
import { mapWithConcurrency } from './concurrency.ts';

interface PendingChunk {
  readonly docKey: string;
  readonly row: Omit<EmbeddingRow, 'embedding'>;
}

interface DocInfo {
  readonly sourceKey: string;
  readonly line: number;
  readonly byteOffset: number;
  readonly excerpt: string;
}

export interface EmbeddedUnit {
  readonly rows: EmbeddingRow[];
  readonly rejects: RejectRow[];
  readonly counts: UnitCounts;
}

/** The slices a unit reads: its byte range of the main source, then each packed file whole. */
export function slicesOf(unit: WorkUnit): SourceSlice[] {
  return [
    {
      key: unit.sourceKey,
      format: unit.format,
      compression: unit.compression,
      byteStart: unit.byteStart,
      byteEnd: unit.byteEnd,
      firstLine: unit.firstLine,
      ...(unit.csvHeader === undefined ? {} : { csvHeader: unit.csvHeader }),
    },
    ...unit.packed.map((file) => ({ ...file, byteStart: 0, byteEnd: file.size, firstLine: 1 })),
  ];
}

/**
 * Reads a unit's records, chunks the documents, batches chunks by token budget and
 * embeds them. Records that cannot be used become rejects; a chunk the model refuses
 * (found by bisecting the failed batch) rejects its whole document, so a document is
 * either fully in the results or in rejects, never both.
 */
export async function embedUnit(
  deps: { store: ObjectStore; endpoint: EmbeddingEndpoint; tokenCounter: TokenCounter },
  config: PipelineConfig,
  unit: WorkUnit,
): Promise<EmbeddedUnit> {
  const counts = emptyCounts();
  const embedded: { docKey: string; row: EmbeddingRow }[] = [];
  const rejects: RejectRow[] = [];
  const docs = new Map<string, DocInfo>();
  const refused = new Map<string, string>();
  let window: PendingChunk[] = [];

  const embedBatch = async (batch: PendingChunk[]): Promise<void> => {
    try {
      const vectors = await deps.endpoint.embed(
        batch.map((c) => c.row.chunk_text),
        counts,
      );
      counts.realTokens += batch.reduce((sum, c) => sum + c.row.token_count, 0);
      counts.paddedTokens += paddedTokens(batch.map((c) => c.row.token_count));
      batch.forEach((chunk, i) => {
        embedded.push({
          docKey: chunk.docKey,
          row: { ...chunk.row, embedding: Float32Array.from(vectors[i]!) },
        });
      });
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      if (batch.length === 1) {
        refused.set(batch[0]!.docKey, `model rejected the input: ${error.message}`);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await embedBatch(batch.slice(0, half));
      await embedBatch(batch.slice(half));
    }
  };

  const flush = async (): Promise<void> => {
    const batches = cutTokenBudgetBatches(window, (c) => c.row.token_count, config.batching);
    window = [];
    await mapWithConcurrency(batches, config.endpoint.concurrency, embedBatch);
  };

  for (const slice of slicesOf(unit)) {
    if (slice.byteEnd === 0 && slice.byteStart === 0) {
      counts.records += 1;
      rejects.push({
        source_key: slice.key,
        byte_offset: 0,
        line: 0,
        reason: 'empty file: no records',
        excerpt: '',
      });
      continue;
    }
    for await (const record of readSourceRecords(deps.store, slice, config.input)) {
      counts.records += 1;
      if (record.kind === 'reject') {
        rejects.push({
          source_key: slice.key,
          byte_offset: record.byteOffset,
          line: record.line,
          reason: record.reason,
          excerpt: record.excerpt,
        });
        continue;
      }
      const docKey = `${slice.key}\u0000${record.line}`;
      docs.set(docKey, {
        sourceKey: slice.key,
        line: record.line,
        byteOffset: record.byteOffset,
        excerpt: record.text.slice(0, 200),
      });
      for (const chunk of chunkText(record.text, deps.tokenCounter, config.chunking)) {
        window.push({
          docKey,
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
  }
  await flush();

  const kept = embedded.filter((e) => !refused.has(e.docKey)).map((e) => e.row);
  for (const [docKey, reason] of refused) {
    const doc = docs.get(docKey)!;
    rejects.push({
      source_key: doc.sourceKey,
      byte_offset: doc.byteOffset,
      line: doc.line,
      reason,
      excerpt: doc.excerpt,
    });
  }
  counts.rejected = rejects.length;
  counts.chunks = kept.length;
  counts.embedded = kept.length;
  kept.sort((a, b) => (a.doc_id < b.doc_id ? -1 : a.doc_id > b.doc_id ? 1 : a.chunk_index - b.chunk_index));
  return { rows: kept, rejects, counts };
}
