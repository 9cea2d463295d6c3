import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';

/**
 * Objects held in memory, for tests and benchmarks that should not touch the disk.
 * `chunkSize` splits reads into small pieces so readers see records cut across chunks.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();

  constructor(private readonly chunkSize = 64 * 1024) {}

  async head(key: string): Promise<ObjectInfo | undefined> {
    const body = this.objects.get(key);
    return body ? { key, size: body.byteLength } : undefined;
  }

  async *readRange(key: string, start: number, end?: number): AsyncIterable<Uint8Array> {
    const body = this.objects.get(key);
    if (!body) throw new Error(`no object ${key}`);
    const stop = Math.min(end ?? body.byteLength, body.byteLength);
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
}
