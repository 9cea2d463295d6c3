import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../../errors/errors.ts';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';

/**
 * A folder that mirrors S3 keys (`<root>/<key>`), for local runs. Keys are checked so
 * none can escape the root (`..`, absolute paths, empty segments).
 */
export class FsObjectStore implements ObjectStore {
  constructor(readonly root: string) {}

  /** The file path of a key, after checking it stays inside the root. */
  pathOf(key: string): string {
    if (key.length === 0 || key.startsWith('/') || key.includes('\\') || key.includes('\u0000')) {
      throw new InputError(`invalid object key "${key}"`);
    }
    const segments = key.split('/');
    const last = segments.length - 1;
    if (segments.some((s, i) => s === '..' || s === '.' || (s === '' && i !== last))) {
      throw new InputError(`invalid object key "${key}": no "..", "." or empty path segments`);
    }
    return path.join(this.root, ...segments);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { key, size: info.size } : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async *readRange(key: string, start: number, end?: number): AsyncIterable<Uint8Array> {
    if (end !== undefined && end <= start) return;
    const stream = createReadStream(this.pathOf(key), {
      start,
      ...(end === undefined ? {} : { end: end - 1 }),
      highWaterMark: 1024 * 1024,
    });
    for await (const chunk of stream) yield chunk as Buffer;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    // Write then rename, so a reader never sees half an object (as with S3 PUT).
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(temp, body);
    await rename(temp, file);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const keys: ObjectInfo[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const entry of entries) {
        const key = `${keyPrefix}${entry.name}`;
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), `${key}/`);
        else if (entry.isFile() && !entry.name.endsWith('.tmp') && key.startsWith(prefix)) {
          keys.push({ key, size: (await stat(path.join(dir, entry.name))).size });
        }
      }
    };
    // Walk from the deepest folder the prefix names, then filter by the full prefix.
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    await walk(folder ? this.pathOf(folder.slice(0, -1)) : this.root, folder);
    keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* keys;
  }
}
