import {
  type AsyncBuffer,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
} from 'hyparquet';
import { DROPPED_ORDINALS_KEY } from '../../duplicates/resolve-duplicate-ids.ts';
import { unitPartKey } from '../../output/keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { objectAsyncBuffer } from '../../readers/parquet.ts';

/** A chunk whose vector is wanted, and the row of the part that should hold it. */
export interface VectorRequest {
  readonly chunkId: string;
  readonly row: number;
  /**
   * The chunk's whole fingerprint (`text_sha256`): the row must hold it too. The index keeps
   * 16 bytes of it; the row's own column settles it, so a row holding another text of the
   * same chunk id (a part rewritten by the duplicate-id rule) is a miss, never a wrong vector.
   */
  readonly textSha256: string;
}

/** The unit of an earlier run whose `embeddings` part holds the vectors. */
export interface PartRef {
  readonly runId: string;
  readonly unitId: string;
}

/** @default 8 parts: a window's unchanged documents mostly come from the one unit that embedded them before. */
const DEFAULT_MAX_CACHED_PARTS = 8;

/**
 * The footer's tail read first: a part's footer is about 1 KB per row group (measured: 4.9 KB
 * for 5 groups), so 64 KiB holds that of a part of over 100,000 chunks in one read without
 * fetching a small part's vectors along with it (hyparquet's default, 512 KiB, would).
 */
const FOOTER_FETCH_BYTES = 64 * 1024;

/** Rows read from a part: the chunk id and fingerprint to check, and the vector. */
const COLUMNS = ['chunk_id', 'text_sha256', 'embedding'];

/** Row groups of one part read at a time: each is about 3 MB of vectors at 384 floats. */
const GROUPS_AT_ONCE = 4;

/** A part's footer, kept so the windows of a unit that read the same old part read it once. */
interface OpenPart {
  readonly key: string;
  readonly size: number;
  readonly metadata: FileMetaData;
  /** Row number of each row group's first row, and one past the last row at the end. */
  readonly groupStarts: readonly number[];
  /**
   * Set when finalize's duplicate-id rule rewrote the part (its footer names the records it
   * dropped): rows after a dropped record moved up, so entries recorded before the rewrite
   * name rows past where their chunks are now.
   */
  readonly rewritten: boolean;
  /** Where a rewritten part's chunks are now: read on its first read, again after a store failure. */
  moved?: Promise<MovedRows | undefined> | undefined;
}

/**
 * Where each chunk of a rewritten part is now, by a 32-bit hash of its chunk id: `order`
 * holds the part's rows sorted by (hash, row), `hashes` each row's hash. 8 bytes a row.
 */
interface MovedRows {
  readonly hashes: Uint32Array;
  readonly order: Uint32Array;
}

/** A byte range of a part, read through a buffer that remembers a failure of the store itself. */
interface TrackedBuffer {
  readonly file: AsyncBuffer;
  /** The store's own error, when a read failed there rather than in decoding. */
  storeFailure(): { readonly error: unknown } | undefined;
}

/**
 * Reads the vectors of unchanged chunks back from the `embeddings` part of the earlier run
 * that embedded them, so a re-run does not pay the endpoint for them again. Only the row
 * groups that hold requested rows are read, only their `chunk_id`, `text_sha256` and `embedding` columns,
 * each once per {@link read}; a part's footer is read once per instance (a small LRU of
 * parts, a missing part remembered as missing).
 *
 * A part finalize's duplicate-id rule rewrote has its rows moved up past each record it
 * dropped; its `chunk_id` column is read once and each chunk looked for where it is now.
 * Without that, one duplicate id near the start of a unit made every unchanged re-run embed
 * the unit's later documents again (their entries named rows that held other chunks).
 *
 * Anything that makes a row untrustworthy is a miss, never an error: the caller embeds
 * that chunk again, which is always correct. A part gone or replaced while it is read (gc
 * removing it under a run) is a miss too. Only the store's own failures on a part still
 * there propagate, so the unit is retried rather than paying for chunks a passing fault
 * made look changed.
 */
export class PartVectors {
  private readonly parts = new Map<string, Promise<OpenPart | undefined>>();
  private readonly maxCachedParts: number;

  constructor(
    private readonly store: ObjectStore,
    private readonly pipeline: string,
    private readonly dimension: number,
    options: { readonly maxCachedParts?: number } = {},
  ) {
    this.maxCachedParts = Math.max(1, options.maxCachedParts ?? DEFAULT_MAX_CACHED_PARTS);
  }

  /**
   * Vectors of the rows asked for, by chunk id. A row whose chunk_id is not the one asked
   * for, a row past the part's end, a part that is gone (store.head undefined) or not a
   * readable embeddings part, or a vector whose length is not `dimension` is left out: the
   * caller embeds those chunks again. Other store errors propagate (the unit is retried).
   */
  async read(part: PartRef, requests: readonly VectorRequest[]): Promise<Map<string, Float32Array>> {
    const found = new Map<string, Float32Array>();
    if (requests.length === 0) return found;
    const open = await this.open(unitPartKey('embeddings', this.pipeline, part.runId, part.unitId));
    if (!open) return found;
    const groups = [...requestsByGroup(open, await this.relocated(open, requests))];
    for (let at = 0; at < groups.length; at += GROUPS_AT_ONCE) {
      const batch = groups.slice(at, at + GROUPS_AT_ONCE);
      const read = await Promise.all(batch.map(([group, wanted]) => this.readGroup(open, group, wanted)));
      for (const vectors of read) for (const [chunkId, vector] of vectors) found.set(chunkId, vector);
    }
    return found;
  }

  /** The part's footer, from the cache or read now; undefined when the part is gone or unreadable. */
  private open(key: string): Promise<OpenPart | undefined> {
    const cached = this.parts.get(key);
    if (cached) {
      // Most recently used last, so the first key is the one to evict.
      this.parts.delete(key);
      this.parts.set(key, cached);
      return cached;
    }
    const opening = this.readFooter(key);
    this.parts.set(key, opening);
    // A store failure is not remembered: the next window (or the retried unit) asks again.
    opening.catch(() => {
      if (this.parts.get(key) === opening) this.parts.delete(key);
    });
    while (this.parts.size > this.maxCachedParts) {
      const oldest = this.parts.keys().next().value as string;
      this.parts.delete(oldest);
    }
    return opening;
  }

  /**
   * The requests with each row moved to where its chunk id is now in a part the duplicate-id
   * rule rewrote: the last row at or before the one asked for that holds that chunk id's hash
   * (rows only move up, and a run keeps one record per id, so at most one row holds it). A
   * row is checked as any other afterwards, so a hash collision is a miss, never a wrong vector.
   * Parts never rewritten are read where the entry says.
   */
  private async relocated(
    open: OpenPart,
    requests: readonly VectorRequest[],
  ): Promise<readonly VectorRequest[]> {
    if (!open.rewritten) return requests;
    open.moved ??= this.readMovedRows(open);
    const moved = await open.moved.catch((error: unknown) => {
      // A store failure is not remembered: the retried unit reads the part again.
      open.moved = undefined;
      throw error;
    });
    if (!moved) return requests;
    return requests.map((request) => {
      const row = movedRow(moved, hashOf(request.chunkId), request.row);
      return row === undefined || row === request.row ? request : { ...request, row };
    });
  }

  /** Every row's chunk id hash of a rewritten part; undefined when its rows do not decode. */
  private async readMovedRows({ key, size, metadata }: OpenPart): Promise<MovedRows | undefined> {
    const rows = metadata.row_groups.reduce((sum, group) => sum + Number(group.num_rows), 0);
    const hashes = new Uint32Array(rows);
    const tracked = trackedBuffer(this.store, key, size);
    try {
      let rowStart = 0;
      for (const group of metadata.row_groups) {
        const rowEnd = rowStart + Number(group.num_rows);
        const ids = await parquetReadObjects({
          file: tracked.file,
          metadata,
          columns: ['chunk_id'],
          rowStart,
          rowEnd,
        });
        ids.forEach((record, i) => {
          hashes[rowStart + i] = typeof record.chunk_id === 'string' ? hashOf(record.chunk_id) : 0;
        });
        rowStart = rowEnd;
      }
    } catch {
      const failure = tracked.storeFailure();
      if (failure && !(await this.goneSince(key, size))) throw failure.error;
      return undefined;
    }
    const order = new Uint32Array(rows);
    for (let i = 0; i < rows; i += 1) order[i] = i;
    order.sort((a, b) => hashes[a]! - hashes[b]! || a - b);
    return { hashes, order };
  }

  /**
   * Whether a part whose read failed is gone or replaced since it was opened (`size`
   * bytes then), as when gc removes it while a run reads it: a miss, not a failure. Stores
   * say a key is missing each in their own way, so the part is asked after again. A part
   * still there as it was lets the failure through (the unit is retried).
   */
  private async goneSince(key: string, size: number): Promise<boolean> {
    const now = await this.store.head(key);
    return now === undefined || now.size !== size;
  }

  private async readFooter(key: string): Promise<OpenPart | undefined> {
    const info = await this.store.head(key);
    if (!info) return undefined;
    const tracked = trackedBuffer(this.store, key, info.size);
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(tracked.file, { initialFetchSize: FOOTER_FETCH_BYTES });
    } catch {
      // A part that is not Parquet (cut short, replaced by something else) holds no vector we can trust.
      const failure = tracked.storeFailure();
      if (failure && !(await this.goneSince(key, info.size))) throw failure.error;
      return undefined;
    }
    const columns = new Set(parquetSchema(metadata).children.map((child) => child.element.name));
    if (!COLUMNS.every((column) => columns.has(column))) return undefined;
    const groupStarts = [0];
    for (const group of metadata.row_groups) groupStarts.push(groupStarts.at(-1)! + Number(group.num_rows));
    const rewritten = metadata.key_value_metadata?.some((kv) => kv.key === DROPPED_ORDINALS_KEY) ?? false;
    return { key, size: info.size, metadata, groupStarts, rewritten };
  }

  /**
   * The vectors of one row group's requested rows that pass the checks. Only the rows from
   * the first to the last requested are decoded; when they are under half the group, the
   * columns' offset index lets only their pages be fetched.
   */
  private async readGroup(
    open: OpenPart,
    group: number,
    wanted: readonly VectorRequest[],
  ): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    let first = Number.POSITIVE_INFINITY;
    let last = -1;
    for (const { row } of wanted) {
      first = Math.min(first, row);
      last = Math.max(last, row);
    }
    const groupRows = open.groupStarts[group + 1]! - open.groupStarts[group]!;
    const tracked = trackedBuffer(this.store, open.key, open.size);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({
        file: tracked.file,
        metadata: open.metadata,
        columns: COLUMNS,
        rowStart: first,
        rowEnd: last + 1,
        useOffsetIndex: 2 * (last + 1 - first) <= groupRows,
      });
    } catch {
      // A row group that does not decode is a miss for its rows, as a part that is gone is.
      const failure = tracked.storeFailure();
      if (failure) {
        if (!(await this.goneSince(open.key, open.size))) throw failure.error;
        // Its footer no longer describes it: the next window opens it again.
        this.parts.delete(open.key);
      }
      return out;
    }
    for (const { chunkId, row, textSha256 } of wanted) {
      const record = rows[row - first];
      if (record?.chunk_id !== chunkId || record.text_sha256 !== textSha256) continue;
      const vector = asVector(record.embedding, this.dimension);
      if (vector) out.set(chunkId, vector);
    }
    return out;
  }
}

/** The requests grouped by the row group holding their row, in row group order; rows past the part are dropped. */
function requestsByGroup(open: OpenPart, requests: readonly VectorRequest[]): Map<number, VectorRequest[]> {
  const groups = new Map<number, VectorRequest[]>();
  const rows = open.groupStarts.at(-1)!;
  const sorted = requests
    .filter(({ row }) => Number.isInteger(row) && row >= 0 && row < rows)
    .sort((a, b) => a.row - b.row);
  let group = 0;
  for (const request of sorted) {
    while (request.row >= open.groupStarts[group + 1]!) group += 1;
    const list = groups.get(group);
    if (list) list.push(request);
    else groups.set(group, [request]);
  }
  return groups;
}

/** FNV-1a over a chunk id's UTF-16 code units: which rows may hold it. */
function hashOf(chunkId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < chunkId.length; i += 1) hash = Math.imul(hash ^ chunkId.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** The last row at or before `row` whose chunk id hashes to `hash`, or undefined. */
function movedRow(moved: MovedRows, hash: number, row: number): number | undefined {
  const { hashes, order } = moved;
  // The first position in `order` past (hash, row).
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const at = order[mid]!;
    if (hashes[at]! < hash || (hashes[at] === hash && at <= row)) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return undefined;
  const found = order[lo - 1]!;
  return hashes[found] === hash ? found : undefined;
}

/** A fresh Float32Array of the decoded vector, or undefined when it is not `dimension` numbers. */
function asVector(value: unknown, dimension: number): Float32Array | undefined {
  if (!(Array.isArray(value) || value instanceof Float32Array) || value.length !== dimension)
    return undefined;
  // Every value was a float32 in the file, so the copy is exact.
  return Float32Array.from(value as ArrayLike<number>);
}

/**
 * The part as hyparquet's AsyncBuffer, keeping the store's own error when a read fails, so
 * a failure of the store (propagated) is told from bytes that do not decode (a miss).
 */
function trackedBuffer(store: ObjectStore, key: string, size: number): TrackedBuffer {
  const file = objectAsyncBuffer(store, key, size);
  let failure: { error: unknown } | undefined;
  return {
    file: {
      byteLength: size,
      async slice(start, end) {
        try {
          return await file.slice(start, end);
        } catch (error) {
          failure ??= { error };
          throw error;
        }
      },
    },
    storeFailure: () => failure,
  };
}
