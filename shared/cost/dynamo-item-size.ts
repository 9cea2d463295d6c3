/**
 * DynamoDB item sizes, by the rules of the developer guide's "DynamoDB item sizes and
 * formats" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html,
 * read 2026-12-07): an item is the sum of its attribute names' and values' sizes, where
 * - a string is its UTF-8 bytes; a binary its raw bytes (not the base64 sent on the wire);
 * - a number is about 1 byte per two significant digits, plus 1 byte (leading and trailing
 *   zeros trimmed; up to 38 digits);
 * - a null or Boolean is 1 byte;
 * - a List or Map is 3 bytes plus its elements, each element 1 byte more (a Map element's
 *   size includes its name); a set is its members.
 * For storage billing every item also carries {@link DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES} of
 * indexing overhead (global tables, transactions and Kinesis streams add more; Sluice's
 * runs table uses none of them). All sizes are binary units: 1 KB = 1,024 bytes, 1 GB = 1,024^3.
 *
 * Values are sized as the document client marshals them (`removeUndefinedValues`, as the
 * deployed client is built): a string, number, boolean, null, Uint8Array, array, Set or
 * plain object; an undefined attribute is left out.
 */

/** Bytes DynamoDB adds to every item for indexing, counted in the table's billed storage. */
export const DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES = 100;

/** A document-client item: attribute names to native values. */
export type DynamoItem = Readonly<Record<string, unknown>>;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Significant decimal digits of a number as DynamoDB stores it (at least 1, for zero). */
function significantDigits(n: number | bigint): number {
  const text = typeof n === 'bigint' ? n.toString() : Math.abs(n).toExponential();
  const mantissa = (text.split('e')[0] ?? '').replace(/[-.]/g, '').replace(/^0+/, '').replace(/0+$/, '');
  return Math.max(1, mantissa.length);
}

/** The size of one attribute value (without its name). */
export function dynamoValueBytes(value: unknown): number {
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return utf8(value);
  if (typeof value === 'number' || typeof value === 'bigint')
    return Math.ceil(significantDigits(value) / 2) + 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (value instanceof Set) {
    let sum = 0;
    for (const member of value) sum += dynamoValueBytes(member);
    return sum;
  }
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, v) => sum + 1 + dynamoValueBytes(v), 0);
  if (typeof value === 'object') {
    let sum = 3;
    for (const [name, v] of Object.entries(value))
      if (v !== undefined) sum += 1 + utf8(name) + dynamoValueBytes(v);
    return sum;
  }
  throw new TypeError(`not a DynamoDB value: ${typeof value}`);
}

/** An item's size as DynamoDB counts it for request units and the 400 KB limit: names plus values. */
export function dynamoItemBytes(item: DynamoItem): number {
  let sum = 0;
  for (const [name, value] of Object.entries(item))
    if (value !== undefined) sum += utf8(name) + dynamoValueBytes(value);
  return sum;
}

/** An item's billed storage: its size plus the per-item indexing overhead. */
export function dynamoItemStorageBytes(item: DynamoItem): number {
  return dynamoItemBytes(item) + DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES;
}
