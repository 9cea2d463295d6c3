import { createHash } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import { InputError, ObjectChanged } from '../../errors/errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { ModelUnusable } from '../errors.ts';
import { modelVersionOf } from '../model-pin.ts';
import { XgboostPredictor } from '../xgboost/xgboost-predictor.ts';

/** A model as a worker scores with it, and what it was read from. */
export interface WorkerModel {
  readonly predictor: XgboostPredictor;
  /**
   * The model id the local model server gives the same file (`xgboost-json:<file
   * name>@<first 12 hex of its sha256>`), so scores say which bytes produced them.
   */
  readonly modelId: string;
  /** The object version the bytes were read at (S3 VersionId or ETag; locally a content hash). */
  readonly version: string | undefined;
}

interface Entry {
  readonly key: string;
  version: string | undefined;
  readonly digest: string;
  /** The compiled model, or why the object at this version is not one (kept, so it is not re-read). */
  readonly model: WorkerModel | undefined;
  readonly failure: ModelUnusable | undefined;
  /** Bytes the compiled forest holds (0 for a failure). */
  readonly bytes: number;
  checkedAt: number;
}

export interface XgboostModelCacheOptions {
  /**
   * Compiled forests kept, in bytes of their node arrays (about 13 bytes a node); the
   * least recently used are dropped past it. One model larger than this is still kept
   * alone. @default 256 MiB
   */
  readonly maxBytes?: number;
  /**
   * How long a cached model is used without asking the store whether the object changed
   * (one HEAD per key per interval; a changed version is read and compiled again).
   * @default 60000
   */
  readonly revalidateMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/** What a load may read: the object is refused before it is read when larger. */
export interface ModelLoadLimits {
  /** Largest model object (JSON bytes) the worker loads; see {@link maxModelBytesFor}. */
  readonly maxModelBytes: number;
}

const MIB = 1024 * 1024;

/**
 * The largest model JSON a worker with `memoryMiB` loads: an eighth of its memory, or of
 * its JavaScript heap where that is smaller (a local run's unit threads and main thread
 * run with a bounded heap, see bin/sluice.js). Loading holds the bytes, the decoded text,
 * the parsed JSON (about 3x the text, measured on the shipped models) and the compiler's
 * node lists at once, about 6x the file at its peak; the eighth leaves the rest for the
 * unit's records and its Parquet part.
 * @param heapLimitBytes @default this isolate's heap limit (`v8.getHeapStatistics()`)
 */
export function maxModelBytesFor(
  memoryMiB: number,
  heapLimitBytes: number = getHeapStatistics().heap_size_limit,
): number {
  return Math.floor(Math.min(memoryMiB * MIB, heapLimitBytes) / 8);
}

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Where a pinned version is held: beside the key's unpinned entry, one entry per version. */
const pinnedCacheKey = (key: string, version: string): string => `${key}\u0000${version}`;

function tooLargeLine(key: string, size: number, limits: ModelLoadLimits): string {
  return `model.modelKey: ${key} is ${(size / MIB).toFixed(1)} MiB, more than in-worker scoring loads (${(limits.maxModelBytes / MIB).toFixed(0)} MiB, an eighth of the worker's memory or heap): raise workers.memoryMiB or set model.hosting to serverless or instance`;
}

/** The file name of a key (its last segment). */
const fileNameOf = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

/**
 * The XGBoost JSON models a worker (one Lambda container, one local unit thread) scores
 * with, read from the object store once and compiled once, by key:
 * - a model is used for `revalidateMs` without a request; then one HEAD tells whether the
 *   object's version changed, and only a changed object is read again (and compiled
 *   again only when its bytes differ), so a replaced model is picked up within that
 *   interval by a warm container and at once by a new one;
 * - calls that arrive while a key is loading share that load;
 * - a model that cannot be used (missing, too large, not a model the evaluator
 *   reproduces) throws {@link ModelUnusable}, and the failure is remembered for that
 *   version, so units fail with the same line without reading the object again;
 * - compiled forests are bounded by `maxBytes`, least recently used dropped first.
 */
export class XgboostModelCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<WorkerModel>>();
  private readonly maxBytes: number;
  private readonly revalidateMs: number;
  private readonly now: () => number;
  /** Objects read (GET) and compiled since the cache was made; for tests and benchmarks. */
  readonly counters = { heads: 0, reads: 0, compiles: 0 };

  constructor(options: XgboostModelCacheOptions = {}) {
    this.maxBytes = options.maxBytes ?? 256 * MIB;
    this.revalidateMs = options.revalidateMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * The model at `key` in `store`, from the cache while it is fresh. With `version` (the
   * run's pin, `WorkUnit.modelPin`), exactly that version: read with it (S3 `VersionId` or
   * `If-Match`, locally the content hash, kept earlier contents included) and then held
   * without revalidation, since a version's bytes never change. A pinned version the store
   * no longer has is {@link ModelUnusable}, naming it.
   */
  get(store: ObjectStore, key: string, limits: ModelLoadLimits, version?: string): Promise<WorkerModel> {
    if (version !== undefined) return this.getPinned(store, key, limits, version);
    const entry = this.entries.get(key);
    if (entry && this.now() - entry.checkedAt < this.revalidateMs) {
      this.touch(entry);
      return entry.failure ? Promise.reject(entry.failure) : Promise.resolve(entry.model!);
    }
    let load = this.loading.get(key);
    if (!load) {
      load = this.refresh(store, key, limits, entry).finally(() => this.loading.delete(key));
      this.loading.set(key, load);
    }
    return load;
  }

  private getPinned(
    store: ObjectStore,
    key: string,
    limits: ModelLoadLimits,
    version: string,
  ): Promise<WorkerModel> {
    const cacheKey = pinnedCacheKey(key, version);
    const entry = this.entries.get(cacheKey);
    if (entry) {
      this.touch(entry);
      return entry.failure ? Promise.reject(entry.failure) : Promise.resolve(entry.model!);
    }
    let load = this.loading.get(cacheKey);
    if (!load) {
      load = this.loadPinned(store, key, limits, version).finally(() => this.loading.delete(cacheKey));
      this.loading.set(cacheKey, load);
    }
    return load;
  }

  private async loadPinned(
    store: ObjectStore,
    key: string,
    limits: ModelLoadLimits,
    version: string,
  ): Promise<WorkerModel> {
    const cacheKey = pinnedCacheKey(key, version);
    this.counters.reads += 1;
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of store.readRange(key, 0, undefined, { version })) {
        size += chunk.byteLength;
        if (size > limits.maxModelBytes) {
          return this.settle(
            cacheKey,
            version,
            `size:${size}`,
            this.now(),
            new ModelUnusable(tooLargeLine(key, size, limits)),
          );
        }
        chunks.push(chunk);
      }
    } catch (error) {
      // Not remembered: the store may answer otherwise for the next unit (a restored version).
      if (error instanceof ObjectChanged)
        throw new ModelUnusable(
          `model.modelKey: ${key} at version ${modelVersionOf(version)}, pinned when the run was planned, can no longer be read (${error.message}); start a new run to score with the current model`,
          { cause: error },
        );
      if (error instanceof InputError)
        throw new ModelUnusable(
          `model.modelKey: no object ${key} in the bucket (in-worker scoring reads it)`,
          {
            cause: error,
          },
        );
      throw error;
    }
    return this.compile(cacheKey, key, version, Buffer.concat(chunks), this.now());
  }

  /** Models held and the bytes of their compiled forests. */
  get size(): { models: number; bytes: number } {
    let bytes = 0;
    for (const entry of this.entries.values()) bytes += entry.bytes;
    return { models: this.entries.size, bytes };
  }

  private async refresh(
    store: ObjectStore,
    key: string,
    limits: ModelLoadLimits,
    known: Entry | undefined,
  ): Promise<WorkerModel> {
    this.counters.heads += 1;
    const info = await store.head(key, { version: true });
    const checkedAt = this.now();
    if (!info) {
      // Not cached: the object may be uploaded before the next unit.
      this.entries.delete(key);
      throw new ModelUnusable(`model.modelKey: no object ${key} in the bucket (in-worker scoring reads it)`);
    }
    if (known && info.version !== undefined && info.version === known.version) {
      known.checkedAt = checkedAt;
      this.touch(known);
      if (known.failure) throw known.failure;
      return known.model!;
    }
    if (info.size > limits.maxModelBytes) {
      return this.settle(
        key,
        info.version,
        `size:${info.size}`,
        checkedAt,
        new ModelUnusable(tooLargeLine(key, info.size, limits)),
      );
    }
    this.counters.reads += 1;
    const bytes = await store.get(key);
    if (!bytes) {
      this.entries.delete(key);
      throw new ModelUnusable(`model.modelKey: no object ${key} in the bucket (in-worker scoring reads it)`);
    }
    const digest = sha256Hex(bytes);
    if (known && digest === known.digest) {
      // Same bytes under a new version (re-uploaded): nothing to compile.
      known.version = info.version;
      known.checkedAt = checkedAt;
      this.touch(known);
      if (known.failure) throw known.failure;
      return { ...known.model!, version: info.version };
    }
    return this.compile(key, key, info.version, bytes, checkedAt, digest);
  }

  /** Compiles a model's bytes and keeps the model, or why it is none, under `cacheKey`. */
  private compile(
    cacheKey: string,
    key: string,
    version: string | undefined,
    bytes: Uint8Array,
    checkedAt: number,
    digest: string = sha256Hex(bytes),
  ): WorkerModel {
    this.counters.compiles += 1;
    let predictor: XgboostPredictor;
    try {
      predictor = XgboostPredictor.fromJson(new TextDecoder().decode(bytes), key);
    } catch (error) {
      if (!(error instanceof ModelUnusable)) throw error;
      return this.settle(cacheKey, version, digest, checkedAt, error);
    }
    const model: WorkerModel = {
      predictor,
      modelId: `xgboost-json:${fileNameOf(key)}@${digest.slice(0, 12)}`,
      version,
    };
    return this.settle(cacheKey, version, digest, checkedAt, model);
  }

  /** Stores what a load found (a model or why there is none) and returns or throws it. */
  private settle(
    key: string,
    version: string | undefined,
    digest: string,
    checkedAt: number,
    found: WorkerModel | ModelUnusable,
  ): WorkerModel {
    const failure = found instanceof ModelUnusable ? found : undefined;
    const model = failure ? undefined : (found as WorkerModel);
    const entry: Entry = {
      key,
      version,
      digest,
      model,
      failure,
      bytes: model ? forestBytes(model.predictor) : 0,
      checkedAt,
    };
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.evict(key);
    if (failure) throw failure;
    return model!;
  }

  /** Marks an entry most recently used (a Map iterates in insertion order). */
  private touch(entry: Entry): void {
    this.entries.delete(entry.key);
    this.entries.set(entry.key, entry);
  }

  /** Drops the least recently used models until the rest fit, never `keep`. */
  private evict(keep: string): void {
    let total = this.size.bytes;
    for (const [key, entry] of this.entries) {
      if (total <= this.maxBytes) return;
      if (key === keep) continue;
      this.entries.delete(key);
      total -= entry.bytes;
    }
  }
}

/** Bytes of a compiled forest's arrays: per node a feature, a threshold or leaf value, a child (4 each) and a flag. */
function forestBytes(predictor: XgboostPredictor): number {
  return predictor.nodeCount * 13 + predictor.numTrees * 8;
}
