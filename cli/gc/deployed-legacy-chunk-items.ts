import { type DynamoDBDocumentClient, GetCommand, paginateScan } from '@aws-sdk/lib-dynamodb';
import {
  BATCH_PUT_MAX,
  type BatchResendOptions,
  batchDeleteResending,
} from '../../shared/adapters/aws/dynamo-batch.ts';
import { RUNS_TABLE_KEYS } from '../../shared/adapters/aws/dynamo-run-store.ts';
import {
  DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES,
  dynamoItemBytes,
  dynamoValueBytes,
} from '../../shared/cost/dynamo-item-size.ts';
import { writeRequestUnits } from '../../shared/cost/dynamo-request-units.ts';
import { pricesFor, type RegionPrices } from '../../shared/cost/pricing.ts';

/**
 * The per-chunk items the chunk index wrote before it kept one item per document (commit
 * 93fbc34): pk=`CHUNK#<pipeline>#<chunkId>`, sk=`CHUNK`, `sha` (S, the chunk's
 * text_sha256), `vec` (B, float32 little-endian) and `runId` (S). Nothing reads or writes
 * them since. The index's `DOC#<pipeline>#<docId>` / `DOC` items of that time are not
 * among them: the current index reads those (an item without `fp` as a document without
 * chunks) and rewrites them on the next run, so they are never dead weight.
 */
export const LEGACY_CHUNK_PK_PREFIX = 'CHUNK#';
export const LEGACY_CHUNK_SK = 'CHUNK';
const VEC = 'vec';

/** What the sweep of the runs table's legacy chunk items found, deleted and is worth. */
export interface LegacyChunkItemsReport {
  readonly table: string;
  /** Items the Scan read (every item of the table: a Scan reads them all, the filter drops the rest). */
  readonly scanned: number;
  /** Legacy chunk items deleted (or that would be, on a dry run). */
  readonly deleted: number;
  /** Of them, by pipeline. */
  readonly byPipeline: Readonly<Record<string, number>>;
  /**
   * Their billed storage, about: each item's size by DynamoDB's rules plus its 100 bytes of
   * overhead, its vector's bytes taken from one item per pipeline (see {@link sweepLegacyChunkItems}).
   */
  readonly bytes: number;
  /** Read units the Scan (and the per-pipeline vector samples) consumed, as DynamoDB reported them. */
  readonly readUnits: number;
  /** Write units the deletes take, about: 1 per KB of each item deleted, rounded up (shared/cost/dynamo-request-units.ts). */
  readonly writeUnits: number;
  /** The region's on-demand prices of the above, when shared/cost/pricing.ts has them. */
  readonly usd?: {
    readonly region: string;
    readonly reads: number;
    readonly writes: number;
    /** Storage the deletes free (or would), per month. */
    readonly storagePerMonth: number;
  };
}

export interface LegacyChunkItemsOptions {
  readonly dryRun: boolean;
  /** Items a Scan page reads at most (Scan's `Limit`). @default DynamoDB's 1 MB page */
  readonly pageSize?: number;
  /** How deletes resend what DynamoDB leaves unprocessed. @default dynamo-batch.ts's */
  readonly resend?: BatchResendOptions;
  /** The region prices are looked up for. @default the client's region */
  readonly region?: string;
}

/**
 * Deletes the runs table's `CHUNK#` items ({@link LEGACY_CHUNK_PK_PREFIX}) that a stack
 * deployed before the per-document chunk index left behind: a vector each (1.5 KB at 384
 * dimensions), billed as storage every month, never read again. Exactly pk beginning
 * `CHUNK#` with sk `CHUNK`; no other item the table holds (runs, units, leases, the prompt
 * cache's `PROMPT#`, the index's `DOC#`, segment statistics) has that prefix.
 *
 * One Scan of the whole table, filtered on the key, projecting the keys, `sha` and `runId`
 * (the vector stays in DynamoDB: a laptop need not download gigabytes to delete them). The
 * Scan is billed by every item it reads, filter or not, half a read unit per 4 KB: the
 * report gives the units DynamoDB says it consumed. An item's size is counted from what was
 * projected plus its vector's bytes, read once per pipeline (one GetItem of `vec`; every
 * chunk of a pipeline has its model's dimension, so it is an estimate where a pipeline
 * changed models). Deletes are BatchWriteItem, 25 a call as the pages come, unprocessed
 * items resent with backoff; a delete of an item already gone succeeds, so a sweep cut short
 * is finished by running it again. With `dryRun` it counts and estimates, deleting nothing.
 */
export async function sweepLegacyChunkItems(
  doc: DynamoDBDocumentClient,
  tableName: string,
  options: LegacyChunkItemsOptions,
): Promise<LegacyChunkItemsReport> {
  const { partitionKey, sortKey } = RUNS_TABLE_KEYS;
  const vectorBytes = new Map<string, number>();
  const byPipeline: Record<string, number> = {};
  let scanned = 0;
  let deleted = 0;
  let bytes = 0;
  let readUnits = 0;
  let writeUnits = 0;
  let keys: Record<string, unknown>[] = [];

  const flush = async () => {
    const batch = keys;
    keys = [];
    if (options.dryRun || batch.length === 0) return;
    await batchDeleteResending(
      {
        doc,
        tableName,
        label: 'legacy chunk index items undeleted (run sluice gc --deployed --legacy-chunk-items again)',
      },
      batch,
      options.resend,
    );
  };

  /** The bytes of one item's `vec` attribute (name and value), read once per pipeline. */
  const vectorOf = async (pipeline: string, key: Record<string, unknown>): Promise<number> => {
    const known = vectorBytes.get(pipeline);
    if (known !== undefined) return known;
    const out = await doc.send(
      new GetCommand({
        TableName: tableName,
        Key: key,
        ProjectionExpression: '#vec',
        ExpressionAttributeNames: { '#vec': VEC },
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    readUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
    const vec = out.Item?.[VEC];
    // Gone since the Scan (another gc): this item counts without it, the next one asks again.
    if (vec === undefined) return 0;
    const size = Buffer.byteLength(VEC) + dynamoValueBytes(vec);
    vectorBytes.set(pipeline, size);
    return size;
  };

  const pages = paginateScan(
    { client: doc, ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }) },
    {
      TableName: tableName,
      FilterExpression: 'begins_with(#pk, :prefix) AND #sk = :sk',
      ProjectionExpression: '#pk, #sk, #sha, #runId',
      ExpressionAttributeNames: { '#pk': partitionKey, '#sk': sortKey, '#sha': 'sha', '#runId': 'runId' },
      ExpressionAttributeValues: { ':prefix': LEGACY_CHUNK_PK_PREFIX, ':sk': LEGACY_CHUNK_SK },
      ReturnConsumedCapacity: 'TOTAL',
    },
  );
  for await (const page of pages) {
    scanned += page.ScannedCount ?? 0;
    readUnits += page.ConsumedCapacity?.CapacityUnits ?? 0;
    for (const item of page.Items ?? []) {
      const pk = item[partitionKey];
      const sk = item[sortKey];
      if (typeof pk !== 'string' || !pk.startsWith(LEGACY_CHUNK_PK_PREFIX) || sk !== LEGACY_CHUNK_SK)
        continue;
      const key = { [partitionKey]: pk, [sortKey]: sk };
      const pipeline = pipelineOf(pk);
      const itemBytes = dynamoItemBytes(item) + (await vectorOf(pipeline, key));
      byPipeline[pipeline] = (byPipeline[pipeline] ?? 0) + 1;
      deleted += 1;
      bytes += itemBytes + DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES;
      writeUnits += writeRequestUnits(itemBytes);
      keys.push(key);
      if (keys.length >= BATCH_PUT_MAX) await flush();
    }
  }
  await flush();

  const region = options.region ?? (await regionOf(doc));
  const prices = region === undefined ? undefined : pricedIn(region);
  return {
    table: tableName,
    scanned,
    deleted,
    byPipeline,
    bytes,
    readUnits,
    writeUnits,
    ...(prices === undefined || region === undefined
      ? {}
      : {
          usd: {
            region,
            reads: readUnits * prices.dynamoReadRequestUnit.usd,
            writes: writeUnits * prices.dynamoWriteRequestUnit.usd,
            storagePerMonth: (bytes / 1024 ** 3) * prices.dynamoStandardGbMonth.usd,
          },
        }),
  };
}

/** `CHUNK#<pipeline>#<chunkId>`: pipeline names have no '#' (lowercase letters, digits, dashes). */
function pipelineOf(pk: string): string {
  const end = pk.indexOf('#', LEGACY_CHUNK_PK_PREFIX.length);
  return end < 0 ? pk.slice(LEGACY_CHUNK_PK_PREFIX.length) : pk.slice(LEGACY_CHUNK_PK_PREFIX.length, end);
}

async function regionOf(doc: DynamoDBDocumentClient): Promise<string | undefined> {
  try {
    return await doc.config.region();
  } catch {
    return undefined;
  }
}

/** The region's prices, or none where shared/cost/pricing.ts has no sourced figure: the counts are still told. */
function pricedIn(region: string): RegionPrices | undefined {
  try {
    return pricesFor(region);
  } catch {
    return undefined;
  }
}
