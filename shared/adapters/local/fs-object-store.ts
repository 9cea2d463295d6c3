import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, ObjectChanged } from '../../errors/errors.ts';
import type {
  HeadOptions,
  ObjectInfo,
  ObjectStore,
  ObjectWrite,
  ReadRangeOptions,
} from '../../ports/object-store.ts';
import { openFsObjectWrite } from './fs-object-write.ts';
import { assertRangeWithin } from './object-range.ts';

/**
 * A file modified less than this long ago may be modified again within the same
 * timestamp tick (Linux file times advance by the scheduler tick, 1 to 10 ms) without
 * its mtime or ctime changing: its identity cannot vouch for its content yet, so a
 * version is only taken once the file is older than this (Git's "racy clean" rule).
 */
const RACY_MS = 50;

/** inode, size, mtime and ctime in ns: any write or replacement of the file changes one. */
function identityOf(info: BigIntStats): string {
  return `${info.ino}-${info.size}-${info.mtimeNs}-${info.ctimeNs}`;
}

/** Milliseconds since the file's last change (content or metadata). */
function ageMs(info: BigIntStats): number {
  return Date.now() - Math.max(Number(info.mtimeNs / 1_000_000n), Number(info.ctimeNs / 1_000_000n));
}

async function sha256Of(handle: FileHandle, size: number): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(Math.min(Math.max(size, 1), 1024 * 1024));
  for (let at = 0; ; ) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash.digest('hex').slice(0, 32); // 128 bits: the token is in every unit descriptor
}

/**
 * A folder that mirrors S3 keys (`<root>/<key>`), for local runs. Keys are checked so
 * none can escape the root (`..`, absolute paths, empty segments).
 */
export class FsObjectStore implements ObjectStore {
  /** Content hashes already taken, by path, valid while the file keeps the identity they were taken at. */
  private readonly hashes = new Map<string, { identity: string; hash: string }>();

  /**
   * @param root the folder whose files are the objects
   * @param versionsDir where earlier contents of replaced objects are kept by content hash
   * ({@link versionFileOf}), so a read pinned to one still finds it, as on a versioned
   * bucket; without it a pinned read of a replaced object fails with `ObjectChanged`
   */
  constructor(
    readonly root: string,
    readonly versionsDir?: string,
  ) {}

  /**
   * The file that keeps `bytes` as an earlier version of any object
   * (`<versionsDir>/<hash>`, the hash a version token of them starts with), or undefined
   * without a versions folder.
   */
  versionFileOf(bytes: Uint8Array): string | undefined {
    if (this.versionsDir === undefined) return undefined;
    return path.join(this.versionsDir, createHash('sha256').update(bytes).digest('hex').slice(0, 32));
  }

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

  /**
   * Size, and with `version` the object's version: `<sha256 of the content>.<identity>`,
   * the identity being inode, size, mtime and ctime (ns). The hash says what the object
   * holds; the identity lets a later read skip re-hashing while the file is untouched.
   */
  async head(key: string, options: HeadOptions = {}): Promise<ObjectInfo | undefined> {
    const file = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // ENOTDIR: a key under a file's name (`a/b` when `a` is a file) is no object here.
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return undefined;
      throw error;
    }
    try {
      const info = await handle.stat({ bigint: true });
      if (!info.isFile()) return undefined;
      if (!options.version) return { key, size: Number(info.size) };
      const pinned = await this.versionOf(key, file, handle, info);
      return { key, size: pinned.size, version: pinned.version };
    } finally {
      await handle.close();
    }
  }

  /**
   * Streams `[start, end)` from one open descriptor, so a file replaced while it is read
   * does not mix two versions. With a pinned `version`, the file must still have the
   * content that version hashed: an untouched file (same identity) is read at once, a
   * touched one is hashed again and read only if its content is the same.
   */
  async *readRange(
    key: string,
    start: number,
    end?: number,
    options: ReadRangeOptions = {},
  ): AsyncIterable<Uint8Array> {
    if (end !== undefined && end <= start) return;
    const file = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && options.version !== undefined)
        throw new ObjectChanged(key, `${key} was deleted since the run was planned`, { cause: error });
      throw error;
    }
    try {
      let info = await handle.stat({ bigint: true });
      if (options.version !== undefined) {
        const kept = await this.pinnedHandle(key, file, handle, info, options.version);
        if (kept !== handle) {
          await handle.close();
          handle = kept;
          info = await handle.stat({ bigint: true });
        }
      }
      assertRangeWithin(key, Number(info.size), start, end);
      if (Number(info.size) === 0) return;
      const stream = handle.createReadStream({
        start,
        ...(end === undefined ? {} : { end: end - 1 }),
        highWaterMark: 1024 * 1024,
        autoClose: false,
      });
      for await (const chunk of stream) yield chunk as Buffer;
      // Written in place while read: what was read may mix two versions.
      if (
        options.version !== undefined &&
        identityOf(await handle.stat({ bigint: true })) !== identityOf(info)
      ) {
        throw new ObjectChanged(key, `${key} was overwritten while it was read`);
      }
    } finally {
      await handle.close();
    }
  }

  /**
   * The open file holding the pinned version: `handle` while the object still has that
   * content, else the kept earlier version of it (closing nothing), else `ObjectChanged`.
   */
  private async pinnedHandle(
    key: string,
    file: string,
    handle: FileHandle,
    info: BigIntStats,
    pinned: string,
  ): Promise<FileHandle> {
    const [hash, identity] = pinned.split('.');
    if (identity !== undefined && identity === identityOf(info)) return handle;
    const current = await this.versionOf(key, file, handle, info);
    if (current.version.split('.')[0] === hash) return handle;
    const kept = await this.keptVersion(hash);
    if (kept) return kept;
    throw new ObjectChanged(
      key,
      `${key} changed since the run was planned (content sha256 ${hash?.slice(0, 12)}, now ${current.version.slice(0, 12)}, ${current.size} bytes)`,
    );
  }

  /** The kept earlier version whose content hash is `hash`, opened, if the versions folder has it intact. */
  private async keptVersion(hash: string | undefined): Promise<FileHandle | undefined> {
    if (this.versionsDir === undefined || hash === undefined || !/^[0-9a-f]{32}$/.test(hash))
      return undefined;
    let kept: FileHandle;
    try {
      kept = await open(path.join(this.versionsDir, hash), 'r');
    } catch {
      return undefined;
    }
    const size = Number((await kept.stat()).size);
    if ((await sha256Of(kept, size)) === hash) return kept;
    await kept.close();
    return undefined;
  }

  /**
   * The version of an open file. A file changed less than {@link RACY_MS} ago is waited
   * for first, so that any later write gives it a new mtime or ctime; a file that changes
   * while it is hashed is hashed again. A file whose times are in the future gets a version
   * without identity, which every read checks by hashing.
   */
  private async versionOf(
    key: string,
    file: string,
    handle: FileHandle,
    first: BigIntStats,
  ): Promise<{ size: number; version: string }> {
    let info = first;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const age = ageMs(info);
      if (age < RACY_MS && age >= 0) {
        await sleep(RACY_MS - age);
        info = await handle.stat({ bigint: true });
      }
      const identity = identityOf(info);
      const cached = this.hashes.get(file);
      if (cached?.identity === identity)
        return { size: Number(info.size), version: `${cached.hash}.${identity}` };
      const hash = await sha256Of(handle, Number(info.size));
      const after = await handle.stat({ bigint: true });
      if (identityOf(after) !== identity) {
        info = after;
        continue;
      }
      if (ageMs(after) < 0) return { size: Number(info.size), version: hash };
      this.hashes.set(file, { identity, hash });
      return { size: Number(info.size), version: `${hash}.${identity}` };
    }
    throw new InputError(`${key} kept changing while its version was taken`);
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    // Write then rename, so a reader never sees half an object (as with S3 PUT).
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(temp, body);
    await rename(temp, file);
  }

  /** Streams an object into a temporary file, renamed over the key by `finish`. */
  async openWrite(key: string): Promise<ObjectWrite> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    return openFsObjectWrite(file);
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
