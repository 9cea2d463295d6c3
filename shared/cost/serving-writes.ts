/**
 * What writing per-user recommendation lists to the DynamoDB serving table costs (issue 17,
 * item 4): one item per user and run (`pk = RECS#<pipeline>#<user>`, `sk = RUN#<runId>`,
 * `runId`, `unitId`, `items`: the list as compact JSON, see
 * shared/adapters/aws/dynamo-recommendation-lists.ts), put by BatchWriteItem. On-demand
 * DynamoDB bills a standard-table write one write request unit per 1 KB of item, rounded
 * up; a repeated put of the same item (a retried unit) bills again, which the run's
 * measured deliveries do not show, so the count is of users written once.
 */

/** Bytes one write request unit covers (standard table class). */
export const WRITE_UNIT_BYTES = 1024;

/**
 * Characters of a user or item id the run cost assumes when it does not know them (a run's
 * summary counts users, not their ids): 16, longer than the sample's `u0000`/`i433` and
 * most numeric or short-hash ids. `sluice cost` measures the ids of the inputs instead.
 */
export const ID_CHARS_ASSUMED = 16;

/** A run id: `r-20261128T235108Z-3f9a1c`. */
const RUN_ID_CHARS = 25;

/** A similarity unit's id (`u00012`-like, with room to spare). */
const UNIT_ID_CHARS = 8;

/**
 * Characters of a typical entry's score in the JSON list: a CF score is a double printed
 * shortest round-trip, usually 16-17 significant digits (`0.8234567891234567`, 18
 * characters). A popularity fill-in entry has a short integer score and the longer
 * `"popular"` source, together shorter than a CF entry's, so every entry is sized as CF.
 */
const SCORE_CHARS = 18;

/** `"cf"` with its quotes. */
const SOURCE_CHARS = 4;

/** A typical neighbour count (members of N(u) holding the item: a few, out of `neighbours.k`). */
const NEIGHBOUR_CHARS = 2;

/** The shape of the items one run writes. */
export interface ServingItemShape {
  readonly pipeline: string;
  /** `output.topN`: the entries of a full list. */
  readonly topN: number;
  /** Mean characters of a user id. @default ID_CHARS_ASSUMED */
  readonly userIdChars?: number;
  /** Mean characters of an item id. @default ID_CHARS_ASSUMED */
  readonly itemIdChars?: number;
}

/**
 * Bytes of one user's item as DynamoDB sizes it (attribute names plus values, strings by
 * their UTF-8 length), for a full list of `topN` typical entries (see {@link SCORE_CHARS}):
 * an estimate, not a bound. A list that straddles 1 KB may bill one unit more or less
 * than it says; ids with non-ASCII characters are longer in UTF-8 than their count.
 */
export function servingItemBytes(shape: ServingItemShape): number {
  const userId = Math.ceil(shape.userIdChars ?? ID_CHARS_ASSUMED);
  const itemId = shape.itemIdChars ?? ID_CHARS_ASSUMED;
  // ["<item>",<score>,"cf",<n>]
  const entry = 1 + (itemId + 2) + 1 + SCORE_CHARS + 1 + SOURCE_CHARS + 1 + NEIGHBOUR_CHARS + 1;
  const list = Math.ceil(2 + shape.topN * entry + Math.max(0, shape.topN - 1));
  const pk = 'pk'.length + `RECS#${shape.pipeline}#`.length + userId;
  const sk = 'sk'.length + 'RUN#'.length + RUN_ID_CHARS;
  const runId = 'runId'.length + RUN_ID_CHARS;
  const unitId = 'unitId'.length + UNIT_ID_CHARS;
  const items = 'items'.length + list;
  return pk + sk + runId + unitId + items;
}

/** Write request units to put one user's list. */
export function servingWriteUnitsPerUser(shape: ServingItemShape): number {
  return Math.ceil(servingItemBytes(shape) / WRITE_UNIT_BYTES);
}

/** Write request units to put `users` lists. */
export function servingWriteUnits(users: number, shape: ServingItemShape): number {
  return users <= 0 ? 0 : users * servingWriteUnitsPerUser(shape);
}

/** Bytes one read request unit covers; an eventually consistent read bills half a unit. */
export const READ_UNIT_BYTES = 4096;

/**
 * Lists a user's partition holds when a unit queries it, in steady state: the run before
 * the served one (the one the query finds to delete), the served run and the unit's own.
 */
const LISTS_PER_PARTITION = 3;

/** What keeping the serving table to the lists a reader may serve costs a run. */
export interface ServingSweepUnits {
  /** Read request units of the Query of each user's partition (eventually consistent). */
  readonly reads: number;
  /** Write request units of the superseded lists deleted (a delete bills the item's size, as a put). */
  readonly deletes: number;
}

/**
 * The similarity units' sweep (shared/adapters/aws/dynamo-recommendation-lists.ts): a
 * Query of each written user's partition, billed by the bytes of the items it reads
 * whatever it projects, and in steady state one list deleted per user, the one the run
 * before the served run wrote. An upper bound for a pipeline's first two runs (nothing is
 * superseded yet) and for users the run before lacked.
 */
export function servingSweepUnits(users: number, shape: ServingItemShape): ServingSweepUnits {
  if (users <= 0) return { reads: 0, deletes: 0 };
  const queryBytes = LISTS_PER_PARTITION * servingItemBytes(shape);
  return {
    reads: users * Math.ceil(queryBytes / READ_UNIT_BYTES) * 0.5,
    deletes: servingWriteUnits(users, shape),
  };
}
