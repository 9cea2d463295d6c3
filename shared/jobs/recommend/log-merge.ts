import { openObjectWrite } from '../../output/streamed-part.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { float64sOf, int32sOf, readBytes, readHeaderAndIds } from './array-file.ts';
import { compareIds, replaces } from './interaction-log.ts';
import { LOG_MAGIC, logLayoutOf } from './log-codec.ts';

/**
 * The ingest stage's merge of its units' interaction logs without holding them: every
 * unit's log is already a sorted run (users, then items, in id order, deduplicated within
 * the unit), so the run's deduplicated log is a k-way merge of them, read window by window
 * with range reads. Only the id tables (the run's distinct users and items), one window per
 * open run and one user's row are held. More runs than `fanIn` are merged in passes:
 * groups of `fanIn` into spill runs (fixed 24-byte records in the run's ids) under
 * `spillPrefix`, then those. Duplicate pairs across units are resolved by the contract's
 * rule, which does not depend on the order they come in, so the result is the one
 * {@link InteractionLogBuilder} gives on every interaction at once.
 */
export interface LogMergeOptions {
  /** Where spill runs are written (deterministic keys: a retried merge overwrites them). */
  readonly spillPrefix: string;
  /** Runs merged at once. @default 32 */
  readonly fanIn?: number;
  /** Entries read from a run (and buffered for a spill run) at a time. @default 32768 */
  readonly windowEntries?: number;
}

/** One user's deduplicated interactions, items ascending; views valid only during the call. */
export interface MergedRow {
  readonly items: Int32Array;
  readonly values: Float64Array;
  readonly timestamps: Float64Array;
}

export interface LogMergeResult {
  /** The run's users and items, ascending: the indices rows are given in. */
  readonly userIds: readonly string[];
  readonly itemIds: readonly string[];
  /** Entries in the unit logs (each deduplicated within its unit). */
  readonly inputEntries: number;
  /** Entries kept after duplicates across units. */
  readonly kept: number;
  /** Spill runs written by the passes before the last (0 when every run fit in one pass). */
  readonly spillRuns: number;
}

/** A sorted run being read: the current window of entries in the run's (global) indices. */
interface RunReader {
  users: Int32Array;
  items: Int32Array;
  values: Float64Array;
  timestamps: Float64Array;
  at: number;
  length: number;
  /** Loads the next window; false when the run is done. */
  next(): Promise<boolean>;
}

/** Where merged entries go, in (user, item) order. */
interface EntrySink {
  add(user: number, item: number, value: number, timestamp: number): void;
  /** True when the sink holds a window's worth and wants {@link EntrySink.drain}. */
  readonly full: boolean;
  drain(): Promise<void>;
  end(): Promise<void>;
}

const SPILL_RECORD_BYTES = 24;

/** What receives the merge: the run's id tables first, then each user's row in user order. */
export interface MergedLogSink {
  start(tables: {
    readonly userIds: readonly string[];
    readonly itemIds: readonly string[];
    readonly inputEntries: number;
  }): void;
  user(user: number, row: MergedRow): void;
}

export async function mergeLogParts(
  store: ObjectStore,
  keys: readonly string[],
  options: LogMergeOptions,
  out: MergedLogSink,
): Promise<LogMergeResult> {
  const fanIn = Math.max(2, options.fanIn ?? 32);
  const window = Math.max(1, options.windowEntries ?? 32_768);
  // The run's id tables: the union of every unit's (read without their arrays).
  const users = new Set<string>();
  const items = new Set<string>();
  let inputEntries = 0;
  for (const key of keys) {
    const part = await readHeaderAndIds(store, key, LOG_MAGIC, logLayoutOf, 'interactions file');
    const [, nUsers, , nnz] = part.header;
    inputEntries += nnz!;
    for (let k = 0; k < part.ids.length; k++) (k < nUsers! ? users : items).add(part.ids[k]!);
  }
  const userIds = [...users].sort(compareIds);
  const itemIds = [...items].sort(compareIds);
  users.clear();
  items.clear();
  out.start({ userIds, itemIds, inputEntries });
  const userIndex = new Map(userIds.map((id, k) => [id, k]));
  const itemIndex = new Map(itemIds.map((id, k) => [id, k]));
  const openPart = (key: string) => openPartReader(store, key, userIndex, itemIndex, window);

  // Passes: while there are more runs than one merge takes, merge groups into spill runs.
  let sources: (() => Promise<RunReader>)[] = keys.map((key) => () => openPart(key));
  let spillRuns = 0;
  for (let pass = 0; sources.length > fanIn; pass++) {
    const next: (() => Promise<RunReader>)[] = [];
    for (let g = 0; g * fanIn < sources.length; g++) {
      const key = `${options.spillPrefix}pass-${pass}/run-${String(g).padStart(5, '0')}.bin`;
      const group = sources.slice(g * fanIn, (g + 1) * fanIn);
      const sink = await spillSink(store, key, window);
      await mergeRuns(await Promise.all(group.map((open) => open())), sink);
      spillRuns += 1;
      next.push(() => openSpillReader(store, key, window));
    }
    sources = next;
  }
  const rows = new RowSink((user, row) => out.user(user, row));
  const kept = await mergeRuns(await Promise.all(sources.map((open) => open())), rows);
  return { userIds, itemIds, inputEntries, kept, spillRuns };
}

/** k-way merge of sorted runs into a sink, one entry per (user, item): returns the entries kept. */
async function mergeRuns(runs: RunReader[], sink: EntrySink): Promise<number> {
  const live: RunReader[] = [];
  for (const run of runs) if (run.length > 0 || (await run.next())) live.push(run);
  // Binary min-heap of runs by their current (user, item); ties by run order.
  const order = live.map((_, k) => k);
  const less = (a: number, b: number) => {
    const ra = live[a]!;
    const rb = live[b]!;
    const ua = ra.users[ra.at]!;
    const ub = rb.users[rb.at]!;
    if (ua !== ub) return ua < ub;
    const ia = ra.items[ra.at]!;
    const ib = rb.items[rb.at]!;
    return ia !== ib ? ia < ib : a < b;
  };
  let size = order.length;
  const siftDown = (from: number) => {
    let at = from;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let smallest = at;
      if (left < size && less(order[left]!, order[smallest]!)) smallest = left;
      if (right < size && less(order[right]!, order[smallest]!)) smallest = right;
      if (smallest === at) return;
      [order[at], order[smallest]] = [order[smallest]!, order[at]!];
      at = smallest;
    }
  };
  for (let k = (size >> 1) - 1; k >= 0; k--) siftDown(k);
  let kept = 0;
  let user = -1;
  let item = -1;
  let value = 0;
  let timestamp = 0;
  while (size > 0) {
    const run = live[order[0]!]!;
    const u = run.users[run.at]!;
    const i = run.items[run.at]!;
    const v = run.values[run.at]!;
    const t = run.timestamps[run.at]!;
    if (u === user && i === item) {
      if (replaces(t, v, timestamp, value)) {
        value = v;
        timestamp = t;
      }
    } else {
      if (user >= 0) {
        sink.add(user, item, value, timestamp);
        kept += 1;
        if (sink.full) await sink.drain();
      }
      user = u;
      item = i;
      value = v;
      timestamp = t;
    }
    run.at += 1;
    if (run.at >= run.length && !(await run.next())) {
      order[0] = order[size - 1]!;
      size -= 1;
    }
    siftDown(0);
  }
  if (user >= 0) {
    sink.add(user, item, value, timestamp);
    kept += 1;
  }
  await sink.end();
  return kept;
}

/** A unit's log read window by window, its local user and item indices mapped to the run's. */
async function openPartReader(
  store: ObjectStore,
  key: string,
  userIndex: ReadonlyMap<string, number>,
  itemIndex: ReadonlyMap<string, number>,
  window: number,
): Promise<RunReader> {
  const part = await readHeaderAndIds(store, key, LOG_MAGIC, logLayoutOf, 'interactions file');
  const [, nUsers, nItems, nnz] = part.header as [number, number, number, number];
  const userMap = new Int32Array(nUsers);
  for (let u = 0; u < nUsers; u++) userMap[u] = userIndex.get(part.ids[u]!)!;
  const itemMap = new Int32Array(nItems);
  for (let i = 0; i < nItems; i++) itemMap[i] = itemIndex.get(part.ids[nUsers + i]!)!;
  const [ptrStart, itemsStart] = part.sections.ints as [number, number];
  const [valuesStart, timesStart] = part.sections.floats as [number, number];
  const userPtr = int32sOf(await readBytes(store, key, ptrStart, ptrStart + 4 * (nUsers + 1)));
  let localUser = 0;
  return windowedReader(nnz, window, async (entry, end) => {
    const n = end - entry;
    const [itemBytes, valueBytes, timeBytes] = await Promise.all([
      readBytes(store, key, itemsStart + 4 * entry, itemsStart + 4 * end),
      readBytes(store, key, valuesStart + 8 * entry, valuesStart + 8 * end),
      readBytes(store, key, timesStart + 8 * entry, timesStart + 8 * end),
    ]);
    const items = int32sOf(itemBytes);
    const users = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      while (userPtr[localUser + 1]! <= entry + k) localUser++;
      users[k] = userMap[localUser]!;
      items[k] = itemMap[items[k]!]!;
    }
    return { users, items, values: float64sOf(valueBytes), timestamps: float64sOf(timeBytes) };
  });
}

/** One window of a run's entries, in (user, item) order. */
type RunWindow = Pick<RunReader, 'users' | 'items' | 'values' | 'timestamps'>;

/** A reader over `entries` entries that loads them `window` at a time through `load(from, to)`. */
function windowedReader(
  entries: number,
  window: number,
  load: (from: number, to: number) => Promise<RunWindow>,
): RunReader {
  let entry = 0;
  const reader: RunReader = {
    users: new Int32Array(0),
    items: new Int32Array(0),
    values: new Float64Array(0),
    timestamps: new Float64Array(0),
    at: 0,
    length: 0,
    async next() {
      if (entry >= entries) return false;
      const end = Math.min(entries, entry + window);
      Object.assign(reader, await load(entry, end), { at: 0, length: end - entry });
      entry = end;
      return true;
    },
  };
  return reader;
}

/** A spill run written by an earlier pass: 24-byte little-endian records (user, item, value, timestamp). */
async function openSpillReader(store: ObjectStore, key: string, window: number): Promise<RunReader> {
  const size = (await store.head(key))?.size ?? 0;
  const entries = size / SPILL_RECORD_BYTES;
  return windowedReader(entries, window, async (entry, end) => {
    const n = end - entry;
    const bytes = await readBytes(store, key, SPILL_RECORD_BYTES * entry, SPILL_RECORD_BYTES * end);
    const users = new Int32Array(n);
    const items = new Int32Array(n);
    const values = new Float64Array(n);
    const timestamps = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const at = SPILL_RECORD_BYTES * k;
      users[k] = bytes.readInt32LE(at);
      items[k] = bytes.readInt32LE(at + 4);
      values[k] = bytes.readDoubleLE(at + 8);
      timestamps[k] = bytes.readDoubleLE(at + 16);
    }
    return { users, items, values, timestamps };
  });
}

/** Merged entries written as a spill run, a window at a time. */
async function spillSink(store: ObjectStore, key: string, window: number): Promise<EntrySink> {
  const out = await openObjectWrite(store, key, 'application/octet-stream');
  let buffer = Buffer.alloc(SPILL_RECORD_BYTES * window);
  let count = 0;
  const flush = async () => {
    if (count === 0) return;
    const piece = buffer.subarray(0, SPILL_RECORD_BYTES * count);
    buffer = Buffer.alloc(SPILL_RECORD_BYTES * window);
    count = 0;
    await out.write(piece);
  };
  return {
    add(user, item, value, timestamp) {
      const at = SPILL_RECORD_BYTES * count;
      buffer.writeInt32LE(user, at);
      buffer.writeInt32LE(item, at + 4);
      buffer.writeDoubleLE(value, at + 8);
      buffer.writeDoubleLE(timestamp, at + 16);
      count += 1;
    },
    get full() {
      return count >= window;
    },
    drain: flush,
    async end() {
      try {
        await flush();
      } catch (error) {
        await out.abort();
        throw error;
      }
      await out.finish();
    },
  };
}

/** Merged entries gathered into one user's row at a time, handed over when the user ends. */
class RowSink implements EntrySink {
  private user = -1;
  private items = new Int32Array(256);
  private values = new Float64Array(256);
  private timestamps = new Float64Array(256);
  private count = 0;
  readonly full = false;

  constructor(private readonly onUser: (user: number, row: MergedRow) => void) {}

  add(user: number, item: number, value: number, timestamp: number): void {
    if (user !== this.user) this.flush(user);
    if (this.count === this.items.length) {
      const grow = <T extends Int32Array | Float64Array>(a: T, to: T): T => {
        to.set(a);
        return to;
      };
      this.items = grow(this.items, new Int32Array(2 * this.count));
      this.values = grow(this.values, new Float64Array(2 * this.count));
      this.timestamps = grow(this.timestamps, new Float64Array(2 * this.count));
    }
    this.items[this.count] = item;
    this.values[this.count] = value;
    this.timestamps[this.count] = timestamp;
    this.count += 1;
  }

  async drain(): Promise<void> {}

  async end(): Promise<void> {
    this.flush(-1);
  }

  private flush(next: number): void {
    if (this.user >= 0 && this.count > 0)
      this.onUser(this.user, {
        items: this.items.subarray(0, this.count),
        values: this.values.subarray(0, this.count),
        timestamps: this.timestamps.subarray(0, this.count),
      });
    this.user = next;
    this.count = 0;
  }
}
