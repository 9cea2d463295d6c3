/** What the index remembers of a chunk that was embedded: enough to carry it forward unchanged. */
export interface IndexedChunk {
  readonly chunkId: string;
  /** Content fingerprint: sha256 of normalised text + model id + chunking parameters. */
  readonly textSha256: string;
  readonly embedding: Float32Array;
  /** Run that embedded it. */
  readonly runId: string;
}

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
}

/**
 * Fingerprints of the chunks a pipeline has embedded, keyed by chunk id (`docId#n`), so a
 * re-drop embeds only what changed. Lookups are point reads by id, never a scan.
 */
export interface ChunkIndex {
  lookupChunks(pipeline: string, chunkIds: readonly string[]): Promise<Map<string, IndexedChunk>>;
  lookupDocs(pipeline: string, docIds: readonly string[]): Promise<Map<string, IndexedDoc>>;
  /** Records chunks after their Parquet part is written; a retry writes the same entries again. */
  record(pipeline: string, chunks: readonly IndexedChunk[], docs: readonly IndexedDoc[]): Promise<void>;
}
