import { createHash } from 'node:crypto';
import {
  copyFile,
  link,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import type { FsObjectStore } from '../shared/adapters/local/fs-object-store.ts';
import { UsageError } from './usage.ts';

export interface StagedInput {
  readonly file: string;
  readonly key: string;
  /** For a folder's files: the key prefix the whole folder is staged under. */
  readonly folder?: string;
}

/** A folder entry that is not read, and why: reported, never dropped silently. */
export interface SkippedInput {
  readonly path: string;
  readonly reason: string;
}

/** Why a name cannot be an object key of the local bucket (as `FsObjectStore` refuses it), or undefined. */
function unstorableName(name: string): string | undefined {
  if (name.includes('\\'))
    return 'its name has a backslash, which an object key of the local bucket cannot hold';
  if (name.includes('\u0000')) return 'its name has a NUL character';
  return undefined;
}

const KIND_OF = (info: {
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}) =>
  info.isFIFO()
    ? 'a FIFO'
    : info.isSocket()
      ? 'a socket'
      : info.isCharacterDevice() || info.isBlockDevice()
        ? 'a device'
        : 'not a regular file';

/**
 * The files of a folder, recursively, in name order. One rule for every entry: hidden
 * ones (a name starting with `.`, as `..x.jsonl`, and every entry of a hidden folder) are
 * skipped, as `ls` and S3 sync tools skip them; symbolic links are followed (to a file:
 * read under the link's name; to a folder: walked), except a link back into a folder
 * being walked (a loop) or one whose target is gone; FIFOs, sockets, devices and names
 * the bucket cannot hold as keys are skipped. Every skip is recorded with its reason.
 */
async function listFiles(
  dir: string,
  ancestors: ReadonlySet<string>,
  skipped: SkippedInput[],
): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith('.')) {
      skipped.push({ path: full, reason: 'hidden: its name starts with "."' });
      continue;
    }
    const unstorable = unstorableName(entry.name);
    if (unstorable !== undefined) {
      skipped.push({ path: full, reason: unstorable });
      continue;
    }
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(full);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      skipped.push({
        path: full,
        reason:
          code === 'ELOOP'
            ? 'symbolic link loop'
            : entry.isSymbolicLink()
              ? 'broken symbolic link: its target is gone'
              : `unreadable (${code ?? 'error'})`,
      });
      continue;
    }
    if (info.isDirectory()) {
      const real = await realpath(full);
      if (ancestors.has(real)) {
        skipped.push({ path: full, reason: `symbolic link loop: leads back to ${real}` });
        continue;
      }
      out.push(...(await listFiles(full, new Set([...ancestors, real]), skipped)));
    } else if (info.isFile()) out.push(full);
    else skipped.push({ path: full, reason: `${KIND_OF(info)}, not a regular file` });
  }
  return out;
}

/** A claim on a folder prefix: the folder (its real path) whose files are staged under it. */
interface FolderClaim {
  readonly name: string;
  readonly folder: string;
}

/**
 * Which `incoming/<pipeline>/<name>/` prefix each input folder is staged under. The
 * prefix is what a run mirrors (deletes what the folder no longer has), so two folders
 * must never share one: the first folder of a name takes the plain name, another folder
 * of the same name `<name>-<8 hex of its real path's sha256>`. A folder keeps its prefix
 * however it is given (relative, trailing slash, a symbolic link): claims are by real
 * path. A home's claims are files under `<home>/state/staged-folders/<pipeline>/`,
 * created exclusively, so two runs cannot take one prefix; without a home (an estimate)
 * they last one call. A prefix staged by a version that kept no claims goes to the first
 * folder of that name given after the upgrade, as that version would have done; one
 * whose folder is gone (moved, deleted) goes to the next folder of its name, so a moved
 * folder keeps mirroring its files.
 */
export class FolderPrefixes {
  private claims: Map<string, FolderClaim> | undefined;
  /** Lines for the run's log: a prefix a folder was given other than its plain name, a prefix taken over. */
  readonly notes: string[] = [];

  constructor(
    private readonly pipeline: string,
    private readonly home?: { readonly dir: string; readonly store: FsObjectStore },
  ) {}

  private get claimsDir(): string | undefined {
    return this.home && path.join(this.home.dir, 'state', 'staged-folders', this.pipeline);
  }

  /**
   * Claims compare names as a case-insensitive, Unicode-normalizing file system does
   * (macOS): there `Data/` and `data/` are one folder of the bucket, so one prefix.
   */
  private static idOf(name: string): string {
    return createHash('sha256').update(name.normalize('NFC').toLowerCase()).digest('hex').slice(0, 32);
  }

  private async loadClaims(): Promise<Map<string, FolderClaim>> {
    if (this.claims) return this.claims;
    const claims = new Map<string, FolderClaim>();
    const dir = this.claimsDir;
    let files: string[] = [];
    if (dir !== undefined)
      files = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return [];
        throw error;
      });
    for (const file of files.filter((f) => /^[0-9a-f]{32}\.json$/.test(f))) {
      const claim = JSON.parse(await readFile(path.join(dir!, file), 'utf8')) as FolderClaim;
      claims.set(FolderPrefixes.idOf(claim.name), claim);
    }
    this.claims = claims;
    return claims;
  }

  /**
   * Records a claim; false when another run took the name first. Written whole to a
   * temporary file, then linked (fails if the claim exists) or, to take a claim over,
   * renamed into place: a crash never leaves a torn claim.
   */
  private async claim(claim: FolderClaim, replace: boolean): Promise<boolean> {
    const dir = this.claimsDir;
    if (dir !== undefined) {
      await mkdir(dir, { recursive: true });
      const file = path.join(dir, `${FolderPrefixes.idOf(claim.name)}.json`);
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(claim));
      try {
        if (replace) await rename(tmp, file);
        else await link(tmp, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        this.claims = undefined;
        return false;
      } finally {
        await rm(tmp, { force: true });
      }
    }
    (await this.loadClaims()).set(FolderPrefixes.idOf(claim.name), claim);
    return true;
  }

  /** Whether the bucket holds a single file (not a folder) at `incoming/<pipeline>/<name>`. */
  private async isStagedFile(name: string): Promise<boolean> {
    if (!this.home) return false;
    const info = await stat(this.home.store.pathOf(`incoming/${this.pipeline}/${name}`)).catch(
      () => undefined,
    );
    return info?.isFile() === true;
  }

  /** The key prefix `incoming/<pipeline>/<name>/` of the folder at `real` (its real path), given as `given`. */
  async prefixOf(real: string, given: string): Promise<string> {
    const plain = path.basename(path.resolve(given));
    for (let attempt = 0; attempt < 3; attempt++) {
      const claims = await this.loadClaims();
      const own = [...claims.values()].find((c) => c.folder === real);
      if (own) return `incoming/${this.pipeline}/${own.name}/`;
      const hashed = `${plain}-${createHash('sha256').update(real).digest('hex').slice(0, 8)}`;
      for (const name of [plain, hashed]) {
        const held = claims.get(FolderPrefixes.idOf(name));
        if (held === undefined) {
          if (await this.isStagedFile(name)) continue;
          if (!(await this.claim({ name, folder: real }, false))) break;
        } else {
          if (await exists(held.folder)) continue;
          await this.claim({ name, folder: real }, true);
          this.notes.push(
            `folder ${given} is staged under incoming/${this.pipeline}/${name}/, as ${held.folder} was (gone now)`,
          );
        }
        if (name !== plain)
          this.notes.push(
            `folder ${given} is staged under incoming/${this.pipeline}/${name}/: incoming/${this.pipeline}/${plain}/ is another folder's`,
          );
        return `incoming/${this.pipeline}/${name}/`;
      }
      if (this.claims !== undefined)
        throw new UsageError(
          `input folder ${given} cannot be staged: incoming/${this.pipeline}/${plain}/ and incoming/${this.pipeline}/${hashed}/ hold other inputs; rename it`,
        );
    }
    throw new UsageError(
      `input folder ${given} cannot be staged: other runs keep claiming its prefix; retry`,
    );
  }

  /**
   * Refuses a single file whose key is a folder's prefix (S3 could hold both, a folder of
   * files cannot): one staged in the bucket, or claimed.
   */
  async checkFileKey(key: string, given: string): Promise<void> {
    if (!this.home) return;
    const info = await stat(this.home.store.pathOf(key)).catch(() => undefined);
    const claimed = (await this.loadClaims()).has(FolderPrefixes.idOf(path.posix.basename(key)));
    if (info?.isDirectory() || claimed)
      throw new UsageError(
        `input file ${given} would be stored as ${key}, where a folder is staged; rename it`,
      );
  }
}

/** Whether a path exists; any error other than its absence counts as there (never taken over). */
async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * Maps local paths to `incoming/<pipeline>/...` keys: a file by its name, a folder's
 * files by the folder's prefix ({@link FolderPrefixes}) and their path inside it (see
 * listFiles for what a folder's walk skips; each skip is pushed to `skipped`). Missing
 * paths, folders with nothing to read, a named file the bucket cannot hold and two inputs
 * that would share a key are usage errors (exit 2), found before any work.
 */
export async function resolveInputs(
  paths: readonly string[],
  pipeline: string,
  skipped: SkippedInput[] = [],
  prefixes: FolderPrefixes = new FolderPrefixes(pipeline),
): Promise<StagedInput[]> {
  if (paths.length === 0) throw new UsageError('give at least one input PATH (a file or a folder)');
  const staged: StagedInput[] = [];
  for (const given of paths) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(given);
    } catch {
      throw new UsageError(`input path not found: ${given}`);
    }
    if (info.isDirectory()) {
      const folderName = path.basename(path.resolve(given));
      const unstorable = unstorableName(folderName);
      if (unstorable !== undefined)
        throw new UsageError(`input folder ${given} cannot be read: ${unstorable}; rename it`);
      const skippedHere: SkippedInput[] = [];
      const files = await listFiles(given, new Set([await realpath(given)]), skippedHere);
      if (files.length === 0)
        throw new UsageError(
          `input folder has no files to read: ${given}${skippedHere.length > 0 ? ` (${skippedHere.length} skipped, e.g. ${skippedHere[0]!.path}: ${skippedHere[0]!.reason})` : ''}`,
        );
      skipped.push(...skippedHere);
      const folder = await prefixes.prefixOf(await realpath(given), given);
      for (const file of files) {
        const rel = path.relative(given, file).split(path.sep).join('/');
        staged.push({ file, key: `${folder}${rel}`, folder });
      }
    } else if (info.isFile()) {
      const unstorable = unstorableName(path.basename(given));
      if (unstorable !== undefined)
        throw new UsageError(`input file ${given} cannot be read: ${unstorable}; rename it`);
      const key = `incoming/${pipeline}/${path.basename(given)}`;
      await prefixes.checkFileKey(key, given);
      staged.push({ file: given, key });
    } else {
      throw new UsageError(`input path is not a file or folder: ${given}`);
    }
  }
  const seen = new Map<string, string>();
  for (const input of staged) {
    const other = seen.get(input.key);
    if (other !== undefined)
      throw new UsageError(
        `inputs ${other} and ${input.file} would both be stored as ${input.key}; rename one`,
      );
    seen.set(input.key, input.file);
  }
  return staged;
}

/**
 * Copies inputs into the local bucket, as an upload to S3 would. An empty folder where a
 * file goes (one a file replaced, left by a run that stopped between deleting its files
 * and staging) is removed first: S3 has no folders to be in the way.
 */
export async function stageInputs(store: FsObjectStore, inputs: readonly StagedInput[]): Promise<void> {
  for (const input of inputs) {
    const target = store.pathOf(input.key);
    await mkdir(path.dirname(target), { recursive: true });
    try {
      await copyFile(input.file, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
      await rmdir(target).catch(() => {
        throw error;
      });
      await copyFile(input.file, target);
    }
  }
}

/**
 * Keys the mirror deleted from the local bucket whose deletion no finished run has
 * recorded yet (`<home>/state/staged-folders/<pipeline>/pending-deletions.json`). Once a
 * file is gone from the bucket nothing else names it again, so a run that stops between
 * deleting and finalizing (out of disk while staging, Ctrl-C, a failed plan) would leave
 * its documents in the current view for good: each later run names these keys again
 * until one finishes. A deletion named twice removes nothing the second time.
 */
export class PendingDeletions {
  private readonly file: string;

  constructor(homeDir: string, pipeline: string) {
    this.file = path.join(homeDir, 'state', 'staged-folders', pipeline, 'pending-deletions.json');
  }

  async read(): Promise<string[]> {
    try {
      const stored = JSON.parse(await readFile(this.file, 'utf8')) as { keys?: unknown };
      return Array.isArray(stored.keys) ? stored.keys.filter((k): k is string => typeof k === 'string') : [];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  async write(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) {
      await rm(this.file, { force: true });
      return;
    }
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ keys: [...new Set(keys)].sort() }));
    await rename(tmp, this.file);
  }

  /** Drops the keys a finished run recorded (those a later deletion added stay). */
  async recorded(keys: readonly string[]): Promise<void> {
    const done = new Set(keys);
    await this.write((await this.read()).filter((key) => !done.has(key)));
  }
}

/**
 * A folder is staged as a whole: files an earlier run staged from it that it no longer
 * has are deleted from the local bucket, as deleting them from S3 would, and returned so
 * the run records them as deleted sources (their documents count as removed). With
 * `pending`, the deletions earlier runs made and did not record are returned too (those
 * not staged again now), and every returned key is kept there before any is deleted.
 */
export async function unstageVanished(
  store: FsObjectStore,
  inputs: readonly StagedInput[],
  pending?: PendingDeletions,
): Promise<string[]> {
  const keys = new Set(inputs.map((input) => input.key));
  const folders = new Set(inputs.flatMap((input) => (input.folder === undefined ? [] : [input.folder])));
  const vanished: string[] = [];
  for (const folder of folders)
    for await (const object of store.list(folder)) if (!keys.has(object.key)) vanished.push(object.key);
  const earlier = (await pending?.read()) ?? [];
  const removed = [...new Set([...earlier.filter((key) => !keys.has(key)), ...vanished])];
  await pending?.write(removed);
  for (const key of vanished) {
    await rm(store.pathOf(key), { force: true });
    await pruneEmptyFolders(store, key, [...folders].find((folder) => key.startsWith(folder))!);
  }
  return removed;
}

/**
 * Removes the folders of the bucket a deleted key leaves empty, up to its folder's prefix:
 * an S3 prefix exists only while it holds a key, and a file of the same name as one of
 * them could not be staged.
 */
async function pruneEmptyFolders(store: FsObjectStore, key: string, prefix: string): Promise<void> {
  for (let at = key.lastIndexOf('/'); at > prefix.length - 1; at = key.lastIndexOf('/', at - 1)) {
    try {
      await rmdir(store.pathOf(key.slice(0, at)));
    } catch {
      return; // not empty (or gone): the folders above are not empty either
    }
  }
}
