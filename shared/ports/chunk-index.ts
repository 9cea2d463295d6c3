/**
 * Bytes of a chunk's fingerprint the index keeps: the first 16 bytes of its sha256
 * (`text_sha256`). 128 bits tell an edited chunk from the one before it as surely as the
 * whole digest does for this use, and keep a document's entry small (DynamoDB bills a
 * write per KB).
 */
export const INDEX_FINGERPRINT_BYTES = 16;

/**
 * The most chunks a document's entry carries fingerprints for (16 B each: 256 KiB, under
 * DynamoDB's 400 KB item limit). A longer document is recorded without them, so it is
 * embedded again whole on every run (a document of over 4M tokens at 256-token chunks).
 */
export const MAX_INDEXED_CHUNKS = 16_384;

/**
 * Where a document's vectors are: the `embeddings` part of run `runId`'s unit `unitId`
 * (`unitPartKey('embeddings', pipeline, runId, unitId)`), rows `firstRow` to
 * `firstRow + chunkCount - 1`, one row per chunk in chunk order. A reader checks each
 * row's `chunk_id` and fingerprint before using its vector: a part that is gone (gc, a
 * dead-lettered unit's parts taken back) is a miss, and the chunk is embedded again; in a
 * part finalize's duplicate-id rule rewrote, the rows past a dropped record moved up, and
 * the reader looks for them there (shared/jobs/embed/part-vectors.ts).
 */
export interface VectorLocation {
  readonly runId: string;
  readonly unitId: string;
  readonly firstRow: number;
}

/** A document's chunks as last embedded: their fingerprints and where their vectors are. */
export interface IndexedChunks {
  /**
   * {@link INDEX_FINGERPRINT_BYTES} bytes per chunk, in chunk order (chunk `n` at
   * `n * 16`): the first bytes of each chunk's `text_sha256` (sha256 of normalised text +
   * model id + chunking parameters).
   */
  readonly fingerprints: Uint8Array;
  readonly at: VectorLocation;
}

/** What the index remembers of a document: enough to carry its unchanged chunks forward. */
export interface IndexedDoc {
  readonly docId: string;
  /** Chunks the document had when last embedded, to count chunks an edit removed. */
  readonly chunkCount: number;
  /**
   * The source it was last read from, so finalize can tell a document that moved to
   * another source in an earlier run from one that was deleted. Absent for entries
   * written before it was kept, and for documents found removed.
   */
  readonly sourceKey?: string;
  /**
   * Its chunks' fingerprints and vectors' place. Absent for documents found removed, for
   * documents over {@link MAX_INDEXED_CHUNKS} chunks, and for entries written before the
   * index kept them (their chunks are embedded again once).
   */
  readonly chunks?: IndexedChunks;
}

/**
 * What a pipeline has embedded, one entry per document (keyed by document id), so a
 * re-drop embeds only the chunks that changed and reads the others' vectors from the part
 * that holds them. Lookups are point reads by id, never a scan. Vectors are not kept in the
 * index: a run's parts already hold them, and DynamoDB bills a vector's 1.5 KB as two
 * writes and ten times S3's storage price.
 */
/** How a lookup reads. */
export interface LookupOptions {
  /**
   * Reflect every write that completed before the lookup (DynamoDB `ConsistentRead`, which
   * bills twice the read units). Finalize asks for it: it reads entries its run's units and
   * its own earlier steps wrote moments ago. A unit reads entries of earlier runs, long
   * settled, and reads eventually consistent. An index that is always consistent ignores it.
   * @default false
   */
  readonly consistent?: boolean;
}

export interface ChunkIndex {
  lookupDocs(
    pipeline: string,
    docIds: readonly string[],
    options?: LookupOptions,
  ): Promise<Map<string, IndexedDoc>>;
  /**
   * Records documents after their Parquet part is written; a retry writes the same entries again.
   * `replacing`, where the caller knows it: each document's entry as it was before this run
   * (a document not in it had none), for a meter to count a replaced entry by its change in
   * size (shared/cost/unit-usage.ts); an index ignores it.
   */
  record(
    pipeline: string,
    docs: readonly IndexedDoc[],
    replacing?: ReadonlyMap<string, IndexedDoc>,
  ): Promise<void>;
}

/** The fingerprint bytes the index keeps of a chunk's `text_sha256` (hex). */
export function indexFingerprint(textSha256: string): Uint8Array {
  return Buffer.from(textSha256.slice(0, 2 * INDEX_FINGERPRINT_BYTES), 'hex');
}

/** Whether chunk `n` of an indexed document has the fingerprint of `textSha256` (hex). */
export function sameFingerprint(chunks: IndexedChunks, n: number, textSha256: string): boolean {
  const at = n * INDEX_FINGERPRINT_BYTES;
  if (at + INDEX_FINGERPRINT_BYTES > chunks.fingerprints.length) return false;
  for (let i = 0; i < INDEX_FINGERPRINT_BYTES; i += 1) {
    const byte = Number.parseInt(textSha256.slice(2 * i, 2 * i + 2), 16);
    if (chunks.fingerprints[at + i] !== byte) return false;
  }
  return true;
}
