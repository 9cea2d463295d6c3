import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../shared/ports/chunk-index.ts';

/** A chunk index in memory, for tests of what wraps one (the usage meter prices any index as the deployed one). */
export class MemoryChunkIndex implements ChunkIndex {
  readonly chunks = new Map<string, IndexedChunk>();
  readonly docs = new Map<string, IndexedDoc>();
  async lookupChunks(_pipeline: string, ids: readonly string[]) {
    return new Map(ids.flatMap((id) => (this.chunks.has(id) ? [[id, this.chunks.get(id)!] as const] : [])));
  }
  async lookupDocs(_pipeline: string, ids: readonly string[]) {
    return new Map(ids.flatMap((id) => (this.docs.has(id) ? [[id, this.docs.get(id)!] as const] : [])));
  }
  async record(_pipeline: string, chunks: readonly IndexedChunk[], docs: readonly IndexedDoc[]) {
    for (const c of chunks) this.chunks.set(c.chunkId, c);
    for (const d of docs) this.docs.set(d.docId, d);
  }
}
