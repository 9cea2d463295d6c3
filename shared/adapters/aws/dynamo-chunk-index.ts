import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import type { Sleep } from './backoff.ts';
import { type BatchResendOptions, batchGetAllResending, batchPutAllResending } from './dynamo-batch.ts';

export interface DynamoChunkIndexOptions {
  /** Created once per process and injected. */
  readonly doc: DynamoDBDocumentClient;
  /** The runs table: chunk and document items share it under their own key prefixes. */
  readonly tableName: string;
  /** Calls per batch while DynamoDB returns unprocessed keys or items. @default 8 */
  readonly maxAttempts?: number;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
}

type Item = Record<string, unknown>;

/**
 * (secondary adapter) ChunkIndex over the runs table, by point lookups only:
 * - chunk item: pk=`CHUNK#<pipeline>#<chunkId>`, sk=`CHUNK`, `sha`, `vec` (float32
 *   little-endian bytes), `runId`
 * - document item: pk=`DOC#<pipeline>#<docId>`, sk=`DOC`, `chunkCount`, `sourceKey` (when known)
 * A 384-dimension vector is 1.5 KB, far under the 400 KB item limit.
 */
export class DynamoChunkIndex implements ChunkIndex {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly resend: BatchResendOptions;

  constructor(options: DynamoChunkIndexOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.resend = { maxAttempts: options.maxAttempts, sleep: options.sleep, random: options.random };
  }

  async lookupChunks(pipeline: string, chunkIds: readonly string[]): Promise<Map<string, IndexedChunk>> {
    const found = new Map<string, IndexedChunk>();
    const items = await this.batchGet(chunkIds.map((id) => chunkKey(pipeline, id)));
    for (const item of items) {
      const chunkId = (item.pk as string).slice(`CHUNK#${pipeline}#`.length);
      const bytes = item.vec as Uint8Array;
      const copy = new Uint8Array(bytes.byteLength);
      copy.set(bytes);
      found.set(chunkId, {
        chunkId,
        textSha256: item.sha as string,
        embedding: new Float32Array(copy.buffer),
        runId: item.runId as string,
      });
    }
    return found;
  }

  async lookupDocs(pipeline: string, docIds: readonly string[]): Promise<Map<string, IndexedDoc>> {
    const found = new Map<string, IndexedDoc>();
    for (const item of await this.batchGet(docIds.map((id) => docKey(pipeline, id)))) {
      const docId = (item.pk as string).slice(`DOC#${pipeline}#`.length);
      found.set(docId, {
        docId,
        chunkCount: item.chunkCount as number,
        ...(typeof item.sourceKey === 'string' ? { sourceKey: item.sourceKey } : {}),
      });
    }
    return found;
  }

  async record(
    pipeline: string,
    chunks: readonly IndexedChunk[],
    docs: readonly IndexedDoc[],
  ): Promise<void> {
    const items: Item[] = [
      ...chunks.map((c) => ({
        ...chunkKey(pipeline, c.chunkId),
        sha: c.textSha256,
        vec: new Uint8Array(c.embedding.buffer, c.embedding.byteOffset, c.embedding.byteLength),
        runId: c.runId,
      })),
      ...docs.map((d) => ({
        ...docKey(pipeline, d.docId),
        chunkCount: d.chunkCount,
        ...(d.sourceKey === undefined ? {} : { sourceKey: d.sourceKey }),
      })),
    ];
    // One put per key per batch: DynamoDB refuses a batch that names a key twice.
    const unique = [...new Map(items.map((item) => [`${item.pk}`, item])).values()];
    await this.batchPut(unique);
  }

  private async batchGet(keys: readonly { pk: string; sk: string }[]): Promise<Item[]> {
    const unique = [...new Map(keys.map((k) => [k.pk, k])).values()];
    const target = { doc: this.doc, tableName: this.tableName, label: 'chunk index keys unread' };
    return batchGetAllResending(target, unique, this.resend);
  }

  private async batchPut(items: readonly Item[]): Promise<void> {
    const target = { doc: this.doc, tableName: this.tableName, label: 'chunk index items unwritten' };
    await batchPutAllResending(target, items, this.resend);
  }
}

const chunkKey = (pipeline: string, chunkId: string) => ({ pk: `CHUNK#${pipeline}#${chunkId}`, sk: 'CHUNK' });
const docKey = (pipeline: string, docId: string) => ({ pk: `DOC#${pipeline}#${docId}`, sk: 'DOC' });
