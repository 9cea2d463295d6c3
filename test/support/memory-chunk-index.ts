import type { ChunkIndex, IndexedDoc } from '../../shared/ports/chunk-index.ts';

/**
 * A chunk index in memory, one entry per document, for tests of what wraps one (the usage
 * meter prices any index as the deployed one). Entries are kept per pipeline, as the
 * deployed index keys them.
 */
export class MemoryChunkIndex implements ChunkIndex {
  /** Entries by `<pipeline>#<docId>`. */
  readonly docs = new Map<string, IndexedDoc>();

  async lookupDocs(pipeline: string, docIds: readonly string[]): Promise<Map<string, IndexedDoc>> {
    const found = new Map<string, IndexedDoc>();
    for (const id of docIds) {
      const doc = this.docs.get(`${pipeline}#${id}`);
      if (doc) found.set(id, doc);
    }
    return found;
  }

  async record(pipeline: string, docs: readonly IndexedDoc[]): Promise<void> {
    for (const doc of docs) this.docs.set(`${pipeline}#${doc.docId}`, doc);
  }
}
