import { copyFile, mkdir, readdir, realpath, rm, stat } from 'node:fs/promises';
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

/**
 * Maps local paths to `incoming/<pipeline>/...` keys: a file by its name, a folder's
 * files by the folder name and their path inside it (see listFiles for what a folder's
 * walk skips; each skip is pushed to `skipped`). Missing paths, folders with nothing to
 * read, a named file the bucket cannot hold and two inputs that would share a key are
 * usage errors (exit 2), found before any work.
 */
export async function resolveInputs(
  paths: readonly string[],
  pipeline: string,
  skipped: SkippedInput[] = [],
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
      const folder = `incoming/${pipeline}/${folderName}/`;
      for (const file of files) {
        const rel = path.relative(given, file).split(path.sep).join('/');
        staged.push({ file, key: `${folder}${rel}`, folder });
      }
    } else if (info.isFile()) {
      const unstorable = unstorableName(path.basename(given));
      if (unstorable !== undefined)
        throw new UsageError(`input file ${given} cannot be read: ${unstorable}; rename it`);
      staged.push({ file: given, key: `incoming/${pipeline}/${path.basename(given)}` });
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

/** Copies inputs into the local bucket, as an upload to S3 would. */
export async function stageInputs(store: FsObjectStore, inputs: readonly StagedInput[]): Promise<void> {
  for (const input of inputs) {
    const target = store.pathOf(input.key);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(input.file, target);
  }
}

/**
 * A folder is staged as a whole: files an earlier run staged from it that it no longer
 * has are deleted from the local bucket, as deleting them from S3 would, and returned so
 * the run records them as deleted sources (their documents count as removed).
 */
export async function unstageVanished(
  store: FsObjectStore,
  inputs: readonly StagedInput[],
): Promise<string[]> {
  const keys = new Set(inputs.map((input) => input.key));
  const folders = new Set(inputs.flatMap((input) => (input.folder === undefined ? [] : [input.folder])));
  const vanished: string[] = [];
  for (const folder of folders) {
    for await (const object of store.list(folder)) {
      if (keys.has(object.key)) continue;
      await rm(store.pathOf(object.key), { force: true });
      vanished.push(object.key);
    }
  }
  return vanished;
}
