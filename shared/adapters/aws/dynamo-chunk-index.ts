import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChunkIndex, IndexedChunk, IndexedDoc } from '../../ports/chunk-index.ts';
import { fullJitterDelay, realSleep, type Sleep } from './backoff.ts';

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

/** BatchGetItem takes 100 keys, BatchWriteItem 25 puts. */
const GET_SLICE = 100;
const PUT_SLICE = 25;

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
  private readonly maxAttempts: number;
  private readonly sleep: Sleep;
  private readonly random: () => number;

  constructor(options: DynamoChunkIndexOptions) {
    this.doc = options.doc;
    this.tableName = options.tableName;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 8);
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
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
    for (let i = 0; i < unique.length; i += PUT_SLICE) await this.batchPut(unique.slice(i, i + PUT_SLICE));
  }

  private async batchGet(keys: readonly { pk: string; sk: string }[]): Promise<Item[]> {
    const unique = [...new Map(keys.map((k) => [k.pk, k])).values()];
    const out: Item[] = [];
    for (let i = 0; i < unique.length; i += GET_SLICE) {
      let pending: Item[] = unique.slice(i, i + GET_SLICE);
      for (let attempt = 1; pending.length > 0; attempt++) {
        const response = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending } } }),
        );
        out.push(...(response.Responses?.[this.tableName] ?? []));
        pending = response.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
        if (pending.length === 0) break;
        if (attempt >= this.maxAttempts)
          throw new Error(
            `DynamoDB left ${pending.length} chunk index keys unread in ${this.tableName} after ${attempt} attempts`,
          );
        await this.sleep(fullJitterDelay(attempt - 1, 50, 2000, this.random));
      }
    }
    return out;
  }

  private async batchPut(items: readonly Item[]): Promise<void> {
    let requests = items.map((item) => ({ PutRequest: { Item: item } }));
    for (let attempt = 1; ; attempt++) {
      const response = await this.doc.send(
        new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }),
      );
      const unprocessed = response.UnprocessedItems?.[this.tableName] ?? [];
      if (unprocessed.length === 0) return;
      if (attempt >= this.maxAttempts)
        throw new Error(
          `DynamoDB left ${unprocessed.length} chunk index items unwritten in ${this.tableName} after ${attempt} attempts`,
        );
      requests = unprocessed.flatMap((r) =>
        r.PutRequest?.Item === undefined ? [] : [{ PutRequest: { Item: r.PutRequest.Item } }],
      );
      await this.sleep(fullJitterDelay(attempt - 1, 50, 2000, this.random));
    }
  }
}

const chunkKey = (pipeline: string, chunkId: string) => ({ pk: `CHUNK#${pipeline}#${chunkId}`, sk: 'CHUNK' });
const docKey = (pipeline: string, docId: string) => ({ pk: `DOC#${pipeline}#${docId}`, sk: 'DOC' });
