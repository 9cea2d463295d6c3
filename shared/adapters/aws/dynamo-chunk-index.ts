import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  type ChunkIndex,
  INDEX_FINGERPRINT_BYTES,
  type IndexedDoc,
  type LookupOptions,
  MAX_INDEXED_CHUNKS,
} from '../../ports/chunk-index.ts';
import type { Sleep } from './backoff.ts';
import { type BatchResendOptions, batchGetAllResending, batchPutAllResending } from './dynamo-batch.ts';

export interface DynamoChunkIndexOptions {
  /** Created once per process and injected. */
  readonly doc: DynamoDBDocumentClient;
  /** The runs table: document items share it under their own key prefix. */
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
 * DynamoDB refuses a whole BatchGetItem or BatchWriteItem call that names a partition key
 * over 2,048 bytes. A document id is any string a record holds, so one long id would fail
 * its whole window on every delivery and dead-letter the unit; such a document gets no
 * entry instead (a miss: it is embedded again each run, never carried).
 */
const MAX_PARTITION_KEY_BYTES = 2048;

/**
 * (secondary adapter) ChunkIndex over the runs table, one item per document, by point
 * lookups only: pk=`DOC#<pipeline>#<docId>`, sk=`DOC`, `chunkCount` (N), `sourceKey` (S,
 * when known), and when the document's chunks are kept: `fp` (B, 16 bytes a chunk),
 * `runId`, `unitId` (S) and `row` (N, the first row of its vectors in that unit's
 * `embeddings` part). At {@link MAX_INDEXED_CHUNKS} chunks `fp` is 256 KiB, under the
 * 400 KB item limit; `record` refuses a document past it rather than have DynamoDB refuse
 * the whole batch. A document whose key would pass {@link MAX_PARTITION_KEY_BYTES} is
 * neither looked up nor recorded: it has no entry, so it is embedded again each run.
 *
 * An item without `fp` (written before fingerprints were kept) reads as a document without
 * chunks, which embeds it again once. The `CHUNK#<pipeline>#<chunkId>` items earlier
 * versions wrote (a vector each) are no longer read or written: an upgraded table keeps
 * them as dead weight, billed as storage until deleted.
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

  /** `consistent` reads with `ConsistentRead` (finalize: entries written moments ago); otherwise eventually consistent. */
  async lookupDocs(
    pipeline: string,
    docIds: readonly string[],
    options?: LookupOptions,
  ): Promise<Map<string, IndexedDoc>> {
    const found = new Map<string, IndexedDoc>();
    const prefix = `DOC#${pipeline}#`;
    // One key per id: DynamoDB refuses a batch that names a key twice.
    const keys = [...new Set(docIds)].map((id) => docKey(pipeline, id)).filter(keyFits);
    const target = {
      doc: this.doc,
      tableName: this.tableName,
      label: 'chunk index keys unread',
      consistentRead: options?.consistent === true,
    };
    for (const item of await batchGetAllResending(target, keys, this.resend)) {
      const docId = (item.pk as string).slice(prefix.length);
      found.set(docId, fromItem(docId, item));
    }
    return found;
  }

  async record(pipeline: string, docs: readonly IndexedDoc[]): Promise<void> {
    // One put per key, the last recorded: DynamoDB refuses a batch that names a key twice.
    const items = new Map<string, Item>();
    for (const d of docs) {
      const item = toItem(pipeline, d);
      if (keyFits(item)) items.set(d.docId, item);
    }
    const target = { doc: this.doc, tableName: this.tableName, label: 'chunk index items unwritten' };
    await batchPutAllResending(target, [...items.values()], this.resend);
  }
}

const docKey = (pipeline: string, docId: string) => ({ pk: `DOC#${pipeline}#${docId}`, sk: 'DOC' });

/** Whether DynamoDB takes the item's partition key (see {@link MAX_PARTITION_KEY_BYTES}). */
const keyFits = (item: Item): boolean =>
  Buffer.byteLength(item.pk as string, 'utf8') <= MAX_PARTITION_KEY_BYTES;

function toItem(pipeline: string, d: IndexedDoc): Item {
  const item: Item = {
    ...docKey(pipeline, d.docId),
    chunkCount: d.chunkCount,
    ...(d.sourceKey === undefined ? {} : { sourceKey: d.sourceKey }),
  };
  if (d.chunks === undefined) return item;
  const { fingerprints, at } = d.chunks;
  if (fingerprints.length !== d.chunkCount * INDEX_FINGERPRINT_BYTES || d.chunkCount > MAX_INDEXED_CHUNKS)
    throw new Error(
      `chunk index: document ${JSON.stringify(d.docId)} has ${fingerprints.length} fingerprint bytes for ${d.chunkCount} chunks (${INDEX_FINGERPRINT_BYTES} a chunk, at most ${MAX_INDEXED_CHUNKS} chunks)`,
    );
  return { ...item, fp: fingerprints, runId: at.runId, unitId: at.unitId, row: at.firstRow };
}

function fromItem(docId: string, item: Item): IndexedDoc {
  const base = {
    docId,
    chunkCount: item.chunkCount as number,
    ...(typeof item.sourceKey === 'string' ? { sourceKey: item.sourceKey } : {}),
  };
  if (!(item.fp instanceof Uint8Array)) return base;
  // A copy of its own: the SDK's array may be a view into a larger buffer it would keep alive.
  const fingerprints = new Uint8Array(item.fp.byteLength);
  fingerprints.set(item.fp);
  return {
    ...base,
    chunks: {
      fingerprints,
      at: { runId: item.runId as string, unitId: item.unitId as string, firstRow: item.row as number },
    },
  };
}
