import { ObjectChanged } from '../../errors/errors.ts';
import type { HeadOptions, ObjectInfo, ObjectStore, ReadRangeOptions } from '../../ports/object-store.ts';
import { assertRangeWithin } from './object-range.ts';

/**
 * Objects held in memory, for tests and benchmarks that should not touch the disk.
 * `chunkSize` splits reads into small pieces so readers see records cut across chunks.
 * Every put gives the key a new version (`g<n>`), as a versioned bucket would.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  /** The body each version was given to: a body set straight into `objects` is a new version. */
  private readonly versions = new Map<string, { body: Uint8Array; version: string }>();
  private writes = 0;

  constructor(private readonly chunkSize = 64 * 1024) {}

  async head(key: string, options: HeadOptions = {}): Promise<ObjectInfo | undefined> {
    const body = this.objects.get(key);
    if (!body) return undefined;
    return options.version
      ? { key, size: body.byteLength, version: this.versionOf(key) }
      : { key, size: body.byteLength };
  }

  async *readRange(
    key: string,
    start: number,
    end?: number,
    options: ReadRangeOptions = {},
  ): AsyncIterable<Uint8Array> {
    const body = this.objects.get(key);
    if (!body) {
      if (options.version !== undefined)
        throw new ObjectChanged(key, `${key} was deleted since the run was planned`);
      throw new Error(`no object ${key}`);
    }
    if (options.version !== undefined && options.version !== this.versionOf(key)) {
      throw new ObjectChanged(
        key,
        `${key} changed since the run was planned (version ${options.version}, now ${this.versionOf(key)}, ${body.byteLength} bytes)`,
      );
    }
    assertRangeWithin(key, body.byteLength, start, end);
    const stop = end ?? body.byteLength;
    for (let at = start; at < stop; at += this.chunkSize)
      yield body.subarray(at, Math.min(stop, at + this.chunkSize));
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    this.objects.set(key, typeof body === 'string' ? new TextEncoder().encode(body) : body);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.objects.get(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) yield { key, size: this.objects.get(key)!.byteLength };
  }

  /** Every body a key is given (by `put`, or set straight into `objects` as tests do) is a new version. */
  private versionOf(key: string): string {
    const body = this.objects.get(key)!;
    const known = this.versions.get(key);
    if (known?.body === body) return known.version;
    this.writes += 1;
    const version = `g${this.writes}`;
    this.versions.set(key, { body, version });
    return version;
  }
}
