import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FsObjectStore } from '../shared/adapters/local/fs-object-store.ts';
import { UsageError } from './usage.ts';

export interface StagedInput {
  readonly file: string;
  readonly key: string;
  /** For a folder's files: the key prefix the whole folder is staged under. */
  readonly folder?: string;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out.sort();
}

/**
 * Maps local paths to `incoming/<pipeline>/...` keys: a file by its name, a folder's
 * files by the folder name and their path inside it. Missing paths, empty folders and
 * two inputs that would share a key are usage errors (exit 2), found before any work.
 */
export async function resolveInputs(paths: readonly string[], pipeline: string): Promise<StagedInput[]> {
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
      const files = await listFiles(given);
      if (files.length === 0) throw new UsageError(`input folder has no files: ${given}`);
      const folder = `incoming/${pipeline}/${path.basename(path.resolve(given))}/`;
      for (const file of files) {
        const rel = path.relative(given, file).split(path.sep).join('/');
        staged.push({ file, key: `${folder}${rel}`, folder });
      }
    } else if (info.isFile()) {
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
