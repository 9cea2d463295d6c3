export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
}

/** Object storage (S3, or a folder mirroring S3 keys locally). */
export interface ObjectStore {
  /** Size of an object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Streams bytes from `start` (inclusive) to `end` (exclusive; omitted = to the end). */
  readRange(key: string, start: number, end?: number): AsyncIterable<Uint8Array>;
  /** Writes a whole object, replacing any existing one (idempotent retries rely on this). */
  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void>;
  /** Reads a whole small object, or undefined when missing. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Lists objects under a prefix, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
}
