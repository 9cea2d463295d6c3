import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BatchIncomplete, describeError } from '../../errors/errors.ts';
import { fullJitterDelay, realSleep, type Sleep } from './backoff.ts';

type Item = Record<string, unknown>;

/** How a batch call resends what DynamoDB left unprocessed (throttled partitions, size limits). */
export interface BatchResendOptions {
  /** Calls per batch, counting the first, while DynamoDB keeps leaving items unprocessed. @default 8 */
  readonly maxAttempts?: number;
  /** @default 50 */
  readonly baseDelayMs?: number;
  /** @default 2000 */
  readonly maxDelayMs?: number;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
}

interface ResendTarget {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  /** What the items are and what was not done to them, for the error: `unit items unprocessed`. */
  readonly label: string;
  /** BatchGetItem only: read with `ConsistentRead` (twice the read units). @default false */
  readonly consistentRead?: boolean;
}

/**
 * Calls `send` with what is still pending until nothing is left, waiting a full-jitter
 * backoff between calls. Throws BatchIncomplete (with the count left) when items are still
 * left after `maxAttempts` calls, or when a call throws (the SDK error is its `cause`).
 */
export async function resendUnprocessed<T>(
  first: readonly T[],
  send: (pending: readonly T[]) => Promise<readonly T[]>,
  target: Pick<ResendTarget, 'tableName' | 'label'>,
  options: BatchResendOptions = {},
): Promise<void> {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 8);
  const sleep = options.sleep ?? realSleep;
  const random = options.random ?? Math.random;
  const incomplete = (left: number, attempts: number, cause?: unknown) =>
    new BatchIncomplete(
      `DynamoDB left ${left} ${target.label} in ${target.tableName} after ${attempts} attempts` +
        (cause === undefined ? '' : `: ${describeError(cause)}`),
      left,
      attempts,
      cause === undefined ? undefined : { cause },
    );
  let pending = first;
  for (let attempt = 1; pending.length > 0; attempt++) {
    try {
      pending = await send(pending);
    } catch (error) {
      throw incomplete(pending.length, attempt, error);
    }
    if (pending.length === 0) return;
    if (attempt >= maxAttempts) throw incomplete(pending.length, attempt);
    await sleep(fullJitterDelay(attempt - 1, options.baseDelayMs ?? 50, options.maxDelayMs ?? 2000, random));
  }
}

/** BatchWriteItem of at most 25 puts into one table, resending UnprocessedItems with backoff. */
export async function batchPutResending(
  target: ResendTarget,
  items: readonly Item[],
  options?: BatchResendOptions,
): Promise<void> {
  await resendUnprocessed(
    items,
    async (pending) => {
      const out = await target.doc.send(
        new BatchWriteCommand({
          RequestItems: { [target.tableName]: pending.map((Item) => ({ PutRequest: { Item } })) },
        }),
      );
      return (out.UnprocessedItems?.[target.tableName] ?? []).flatMap((r) =>
        r.PutRequest?.Item === undefined ? [] : [r.PutRequest.Item],
      );
    },
    target,
    options,
  );
}

/** BatchWriteItem of at most 25 deletes from one table, resending UnprocessedItems with backoff (a key already gone is no error). */
export async function batchDeleteResending(
  target: ResendTarget,
  keys: readonly Item[],
  options?: BatchResendOptions,
): Promise<void> {
  await resendUnprocessed(
    keys,
    async (pending) => {
      const out = await target.doc.send(
        new BatchWriteCommand({
          RequestItems: { [target.tableName]: pending.map((Key) => ({ DeleteRequest: { Key } })) },
        }),
      );
      return (out.UnprocessedItems?.[target.tableName] ?? []).flatMap((r) =>
        r.DeleteRequest?.Key === undefined ? [] : [r.DeleteRequest.Key],
      );
    },
    target,
    options,
  );
}

/** BatchGetItem of at most 100 keys from one table, resending UnprocessedKeys with backoff; the items found. */
export async function batchGetResending(
  target: ResendTarget,
  keys: readonly Item[],
  options?: BatchResendOptions,
): Promise<Item[]> {
  const found: Item[] = [];
  await resendUnprocessed(
    keys,
    async (pending) => {
      const out = await target.doc.send(
        new BatchGetCommand({
          RequestItems: {
            [target.tableName]: {
              Keys: [...pending],
              ...(target.consistentRead ? { ConsistentRead: true } : {}),
            },
          },
        }),
      );
      found.push(...(out.Responses?.[target.tableName] ?? []));
      return out.UnprocessedKeys?.[target.tableName]?.Keys ?? [];
    },
    target,
    options,
  );
  return found;
}

/** BatchWriteItem takes at most 25 puts a call, BatchGetItem 100 keys. */
export const BATCH_PUT_MAX = 25;
export const BATCH_GET_MAX = 100;

/** Every item put, {@link BATCH_PUT_MAX} per BatchWriteItem call in order, each resending its unprocessed items. */
export async function batchPutAllResending(
  target: ResendTarget,
  items: readonly Item[],
  options?: BatchResendOptions,
): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH_PUT_MAX)
    await batchPutResending(target, items.slice(i, i + BATCH_PUT_MAX), options);
}

/** Every key read, {@link BATCH_GET_MAX} per BatchGetItem call in order, each resending its unprocessed keys; the items found. */
export async function batchGetAllResending(
  target: ResendTarget,
  keys: readonly Item[],
  options?: BatchResendOptions,
): Promise<Item[]> {
  const found: Item[] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_MAX)
    found.push(...(await batchGetResending(target, keys.slice(i, i + BATCH_GET_MAX), options)));
  return found;
}
