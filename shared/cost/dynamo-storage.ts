import { type CachedAnswer, promptItemKey } from '../jobs/generate/prompt-cache.ts';
import { INDEX_FINGERPRINT_BYTES, type IndexedDoc, MAX_INDEXED_CHUNKS } from '../ports/chunk-index.ts';
import {
  DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES,
  type DynamoItem,
  dynamoItemBytes,
  dynamoItemStorageBytes,
} from './dynamo-item-size.ts';

/**
 * The runs-table items a run adds and keeps (issue: DynamoDB storage in `cost.storage`), as
 * the deployed adapters write them, so that the meter sizes the very items a run writes
 * whichever store the worker has (a local run keeps its cache in the bucket and its index in
 * files, and is priced as if deployed):
 * - the generate prompt cache (shared/adapters/aws/dynamo-prompt-cache.ts):
 *   pk=`PROMPT#<pipeline>#<sha256>`, sk=`PROMPT`, the answer's fields;
 * - the embed chunk index (shared/adapters/aws/dynamo-chunk-index.ts): one item per document,
 *   pk=`DOC#<pipeline>#<docId>`, sk=`DOC`, `chunkCount`, `sourceKey` when known, and with its
 *   chunks `fp` (16 bytes a chunk), `runId`, `unitId` and `row` (where its vectors are).
 * test/cost/dynamo-storage.dynalite.test.ts checks these against what the adapters store.
 */

/** The prompt cache's item of an answer. */
export function promptCacheItem(pipeline: string, answer: CachedAnswer): DynamoItem {
  return { ...promptItemKey(pipeline, answer.promptSha256), ...answer };
}

/** The chunk index's item of a document. */
export function docIndexItem(pipeline: string, doc: IndexedDoc): DynamoItem {
  return {
    pk: `DOC#${pipeline}#${doc.docId}`,
    sk: 'DOC',
    chunkCount: doc.chunkCount,
    ...(doc.sourceKey === undefined ? {} : { sourceKey: doc.sourceKey }),
    ...(doc.chunks === undefined
      ? {}
      : {
          fp: doc.chunks.fingerprints,
          runId: doc.chunks.at.runId,
          unitId: doc.chunks.at.unitId,
          row: doc.chunks.at.firstRow,
        }),
  };
}

/**
 * Keys a {@link StoredItemTally} remembers, at least and at most twice over: enough for a
 * generate unit's lookups and for the documents of an embed unit of up to 4,096 (looked up
 * a window at a time, recorded once its part is written), without holding a key per record
 * of a million-record unit: at most about 0.8 MiB of keys (measured), against the few MiB
 * left under the memory target of bench/results/memory.json. An embed unit tells the meter
 * the entries its puts replace ({@link StoredItemTally.replace}), so a larger unit's
 * documents found early and recorded at its end are not counted as new.
 */
export const TALLY_KEYS_REMEMBERED = 4_096;

/**
 * What a delivery's puts add to a table's billed storage. A key the delivery found by a
 * lookup already holds an item: putting it again adds only the difference in size (often
 * none); a key not seen adds the whole item and DynamoDB's 100 bytes of per-item overhead.
 * Only the last {@link TALLY_KEYS_REMEMBERED} to 2x that keys found or put are remembered:
 * an item found earlier than that and then put again (a changed document's entry at the end
 * of a large embed unit) is counted as new, an over-count of its size, never an under-count.
 */
export class StoredItemTally {
  private recent = new Map<string, number>();
  private older = new Map<string, number>();

  constructor(private readonly remembered: number = TALLY_KEYS_REMEMBERED) {}

  /** An item a lookup found: it is already stored. Returns its size (names and values). */
  found(item: DynamoItem): number {
    const bytes = dynamoItemBytes(item);
    this.remember(keyOf(item), bytes);
    return bytes;
  }

  /** An item put: returns the bytes it adds to the table (negative when it shrank one). */
  put(item: DynamoItem): number {
    const key = keyOf(item);
    const bytes = dynamoItemBytes(item);
    const before = this.recent.get(key) ?? this.older.get(key);
    this.remember(key, bytes);
    return before === undefined ? bytes + DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES : bytes - before;
  }

  /**
   * An item put where the caller knows what it replaces: `before`, the item as it was before
   * this run (undefined: none), however long ago it was found, and whichever delivery of the
   * run put it since (a retry's lookups find the first delivery's items, which the run added).
   * Returns the bytes the run's put adds to the table.
   */
  replace(item: DynamoItem, before: DynamoItem | undefined): number {
    const bytes = dynamoItemBytes(item);
    this.remember(keyOf(item), bytes);
    return before === undefined
      ? bytes + DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES
      : bytes - dynamoItemBytes(before);
  }

  private remember(key: string, bytes: number): void {
    this.recent.set(key, bytes);
    if (this.recent.size < this.remembered) return;
    this.older = this.recent;
    this.recent = new Map();
  }
}

const keyOf = (item: DynamoItem): string => `${String(item.pk)}\u0000${String(item.sk)}`;

/** A run id's length (`r-20261128T235108Z-3f9a1c`). */
const RUN_ID_CHARS = 25;

/**
 * Characters of a document id an estimate assumes when it has not read the ids: 16, as the
 * recommend estimate assumes for user and item ids (a short hash or a padded number).
 */
export const DOC_ID_CHARS_ASSUMED = 16;

/** Characters of a source key an estimate assumes (`incoming/<pipeline>/` and a dated file name). */
export const SOURCE_KEY_CHARS_ASSUMED = 64;

/** What a typical prompt-cache item holds, for an estimate. */
export interface TypicalAnswer {
  readonly pipeline: string;
  readonly model: string;
  /** Bytes of the answer's text. */
  readonly outputBytes: number;
  /** Whether `outputJson` holds the answer a second time (a pipeline with `output.jsonSchema`). */
  readonly json: boolean;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/**
 * The billed storage of one prompt-cache item of a typical answer: the item the deployed
 * cache writes ({@link promptCacheItem}), with ASCII text of the answer's length (twice with
 * a JSON schema: `output` and `outputJson`), `finishReason` "stop", one attempt, and the
 * 100 bytes of per-item overhead.
 */
export function typicalPromptCacheItemStorageBytes(answer: TypicalAnswer): number {
  const text = 'x'.repeat(Math.max(0, Math.round(answer.outputBytes)));
  return dynamoItemStorageBytes(
    promptCacheItem(answer.pipeline, {
      promptSha256: '0'.repeat(64),
      model: answer.model,
      output: text,
      outputJson: answer.json ? text : null,
      finishReason: 'stop',
      attempts: 1,
      promptTokens: Math.round(answer.promptTokens),
      completionTokens: Math.round(answer.completionTokens),
      runId: 'r'.repeat(RUN_ID_CHARS),
    }),
  );
}

/** A unit id's length (`u00012`, plan-units.ts). */
const UNIT_ID_CHARS = 6;

/**
 * The first row an estimate assumes a document's vectors start at: four digits, as in a
 * unit of 2M tokens (the docs sample's `planning.targetUnitTokens`) at 256-token chunks,
 * 7,813 rows (3 bytes as DynamoDB stores a number).
 */
const FIRST_ROW_ASSUMED = 4_321;

/**
 * A document's index entry for an estimate, as {@link docIndexItem} writes it: an id of
 * {@link DOC_ID_CHARS_ASSUMED} characters, a source key of {@link SOURCE_KEY_CHARS_ASSUMED},
 * `chunks` fingerprints (none past {@link MAX_INDEXED_CHUNKS}: such a document is recorded
 * without them) and where its vectors are.
 */
export function typicalDocIndexItem(pipeline: string, chunks: number): DynamoItem {
  const count = Math.max(1, Math.round(chunks));
  return docIndexItem(pipeline, {
    docId: 'd'.repeat(DOC_ID_CHARS_ASSUMED),
    chunkCount: count,
    sourceKey: 's'.repeat(SOURCE_KEY_CHARS_ASSUMED),
    ...(count > MAX_INDEXED_CHUNKS
      ? {}
      : {
          chunks: {
            fingerprints: new Uint8Array(count * INDEX_FINGERPRINT_BYTES),
            at: {
              runId: 'r'.repeat(RUN_ID_CHARS),
              unitId: 'u'.repeat(UNIT_ID_CHARS),
              firstRow: FIRST_ROW_ASSUMED,
            },
          },
        }),
  });
}
