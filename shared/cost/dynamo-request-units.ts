/**
 * DynamoDB request units as on-demand bills them, one rule for every store Sluice keeps in the
 * runs table (the generate prompt cache, the embed chunk index), from the developer guide's
 * "DynamoDB read and write operations"
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html,
 * read 2026-12-07):
 * - a standard write (PutItem, and each put of a BatchWriteItem, which DynamoDB processes as
 *   one PutItem per item) takes 1 write unit per KB (1,024 bytes) of the item, rounded up;
 * - an eventually consistent read (GetItem, and each key of a BatchGetItem, processed as one
 *   GetItem per key with each item's size rounded up to 4 KB on its own) takes 0.5 read unit
 *   per 4 KB; the adapters read without `ConsistentRead` (shared/adapters/aws/dynamo-batch.ts),
 *   so eventually consistent, except finalize's chunk index lookups;
 * - a strongly consistent read (`ConsistentRead: true`) takes twice that: 1 read unit per
 *   4 KB, and 1 for a key not found ("a strongly consistent read request consumes one read
 *   capacity unit", the same guide);
 * - "If you perform a read operation on an item that does not exist, DynamoDB still consumes
 *   provisioned read throughput: ... an eventually consistent read request consumes 0.5 of a
 *   read capacity unit" (the same guide): a key not found is 0.5 read unit. On-demand bills the
 *   same units as request units (https://aws.amazon.com/dynamodb/pricing/on-demand/).
 * Item sizes are DynamoDB's (shared/cost/dynamo-item-size.ts), without the storage overhead.
 */

/** Write request units of one standard put of an item of `itemBytes`: 1 per KB, at least 1. */
export function writeRequestUnits(itemBytes: number): number {
  return Math.max(1, Math.ceil(itemBytes / 1024));
}

/** Read request units of one eventually consistent read of an item of `itemBytes`: 0.5 per 4 KB, at least 0.5. */
export function readRequestUnits(itemBytes: number): number {
  return 0.5 * Math.max(1, Math.ceil(itemBytes / 4096));
}

/** Read request units of a key looked up and not found (eventually consistent). */
export const MISSING_KEY_READ_UNITS = 0.5;

/**
 * Read request units of BatchGetItem calls for `keys` distinct keys that found items of the
 * sizes `foundItemBytes` (one per key found): each item found by its size, each key not found
 * 0.5; twice that when `consistent` (`ConsistentRead: true`).
 */
export function batchGetReadUnits(
  keys: number,
  foundItemBytes: readonly number[],
  consistent = false,
): number {
  let units = MISSING_KEY_READ_UNITS * Math.max(0, keys - foundItemBytes.length);
  for (const bytes of foundItemBytes) units += readRequestUnits(bytes);
  return consistent ? 2 * units : units;
}
