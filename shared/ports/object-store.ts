export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /**
   * The object's version as the store can pin it (an opaque token: S3 `VersionId` on a
   * versioned bucket, else its ETag; a content hash locally). Absent when the store cannot
   * tell without reading the object (a local listing). A unit records it at planning and
   * reads with it, so a changed object is an error rather than other records.
   */
  readonly version?: string;
  /** The object's ETag, where the store has one (S3 `head`); not used to read. */
  readonly etag?: string;
}

/** Options of {@link ObjectStore.head}. */
export interface HeadOptions {
  /**
   * Also give the object's version where the store must read the object to know it
   * (locally: a content hash); S3 always gives it. @default false
   */
  readonly version?: boolean;
}

/** Options of {@link ObjectStore.readRange}. */
export interface ReadRangeOptions {
  /**
   * Read exactly this version (from `head`): on a store that keeps versions the pinned
   * one is read even after an overwrite; otherwise an object whose version is no longer
   * this one fails the read with `ObjectChanged`.
   */
  readonly version?: string;
}

/** Object storage (S3, or a folder mirroring S3 keys locally). */
export interface ObjectStore {
  /** Size and version of an object, or undefined when it does not exist. */
  head(key: string, options?: HeadOptions): Promise<ObjectInfo | undefined>;
  /**
   * Streams bytes from `start` (inclusive) to `end` (exclusive; omitted = to the end).
   * A range that reaches past the end of the object (a start past it, or at it when the
   * object is not empty, or an end past it) is an error (`ObjectRangeError`), never a
   * short or empty body: the caller sized it from a `head` of the same version.
   * `readRange(key, 0)` of an empty object yields nothing.
   */
  readRange(key: string, start: number, end?: number, options?: ReadRangeOptions): AsyncIterable<Uint8Array>;
  /** Writes a whole object, replacing any existing one (idempotent retries rely on this). */
  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void>;
  /** Reads a whole small object, or undefined when missing. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Lists objects under a prefix, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Writes an object from bytes produced over time, so a large object (a unit's part) is
   * never held whole. Readers see the previous object, or none, until `finish`. Stores
   * without it are written through {@link openObjectWrite}'s buffered fallback.
   */
  openWrite?(key: string, contentType?: string): Promise<ObjectWrite>;
}

/** An object being written piece by piece: S3 a multipart upload, locally a temporary file. */
export interface ObjectWrite {
  /** Appends bytes; the caller may reuse nothing it passed (the store may keep the view). */
  write(bytes: Uint8Array): Promise<void>;
  /** Makes the object visible, whole, replacing any previous one. */
  finish(): Promise<void>;
  /** Drops what was written; the previous object, if any, stays. */
  abort(): Promise<void>;
}
