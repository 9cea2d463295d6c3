import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';

type LogLine = { c: string; h: string; v: string; r: string } | { d: string; n: number };

interface PipelineIndex {
  chunks: Map<string, IndexedChunk>;
  docs: Map<string, IndexedDoc>;
  lines: number;
}

function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

function decodeVector(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

/**
 * The chunk index of one machine: an append-only JSON-lines log per pipeline under
 * `<dir>/`, loaded into memory on first use. The log is rewritten without superseded
 * entries once it holds twice as many lines as live entries.
 */
export class LocalChunkIndex implements ChunkIndex {
  private readonly loaded = new Map<string, Promise<PipelineIndex>>();
  private writes: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  private fileOf(pipeline: string): string {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(pipeline)) throw new Error(`invalid pipeline name "${pipeline}"`);
    return path.join(this.dir, `${pipeline}.jsonl`);
  }

  private load(pipeline: string): Promise<PipelineIndex> {
    let index = this.loaded.get(pipeline);
    if (!index) {
      index = (async () => {
        const out: PipelineIndex = { chunks: new Map(), docs: new Map(), lines: 0 };
        let text = '';
        try {
          text = await readFile(this.fileOf(pipeline), 'utf8');
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
        for (const line of text.split('\n')) {
          if (!line) continue;
          out.lines += 1;
          const entry = JSON.parse(line) as LogLine;
          if ('c' in entry)
            out.chunks.set(entry.c, {
              chunkId: entry.c,
              textSha256: entry.h,
              embedding: decodeVector(entry.v),
              runId: entry.r,
            });
          else out.docs.set(entry.d, { docId: entry.d, chunkCount: entry.n });
        }
        return out;
      })();
      this.loaded.set(pipeline, index);
    }
    return index;
  }

  async lookupChunks(pipeline: string, chunkIds: readonly string[]): Promise<Map<string, IndexedChunk>> {
    const index = await this.load(pipeline);
    const found = new Map<string, IndexedChunk>();
    for (const id of chunkIds) {
      const hit = index.chunks.get(id);
      if (hit) found.set(id, hit);
    }
    return found;
  }

  async lookupDocs(pipeline: string, docIds: readonly string[]): Promise<Map<string, IndexedDoc>> {
    const index = await this.load(pipeline);
    const found = new Map<string, IndexedDoc>();
    for (const id of docIds) {
      const hit = index.docs.get(id);
      if (hit) found.set(id, hit);
    }
    return found;
  }

  async record(
    pipeline: string,
    chunks: readonly IndexedChunk[],
    docs: readonly IndexedDoc[],
  ): Promise<void> {
    const index = await this.load(pipeline);
    const lines: string[] = [];
    for (const chunk of chunks) {
      index.chunks.set(chunk.chunkId, chunk);
      lines.push(
        JSON.stringify({
          c: chunk.chunkId,
          h: chunk.textSha256,
          v: encodeVector(chunk.embedding),
          r: chunk.runId,
        }),
      );
    }
    for (const doc of docs) {
      index.docs.set(doc.docId, doc);
      lines.push(JSON.stringify({ d: doc.docId, n: doc.chunkCount }));
    }
    if (lines.length === 0) return;
    index.lines += lines.length;
    const file = this.fileOf(pipeline);
    const compact = index.lines > 2 * (index.chunks.size + index.docs.size) + 1000;
    this.writes = this.writes.then(async () => {
      await mkdir(this.dir, { recursive: true });
      if (!compact) {
        await appendFile(file, `${lines.join('\n')}\n`);
        return;
      }
      const all = [
        ...[...index.chunks.values()].map((c) =>
          JSON.stringify({ c: c.chunkId, h: c.textSha256, v: encodeVector(c.embedding), r: c.runId }),
        ),
        ...[...index.docs.values()].map((d) => JSON.stringify({ d: d.docId, n: d.chunkCount })),
      ];
      index.lines = all.length;
      await writeFile(`${file}.tmp`, `${all.join('\n')}\n`);
      await rename(`${file}.tmp`, file);
    });
    await this.writes;
  }
}
