import { mkdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.ts';
import { LocalChunkIndex } from '../shared/adapters/local/local-chunk-index.ts';
import { LocalRunStore } from '../shared/adapters/local/local-run-store.ts';
import { LocalSegmentStatsStore } from '../shared/adapters/local/local-segment-stats-store.ts';
import { UsageError } from './usage.ts';

/** The local home folder: `bucket/` mirrors the S3 bucket, `state/` holds run state. */
export interface LocalHome {
  readonly dir: string;
  readonly bucketDir: string;
  readonly store: FsObjectStore;
  readonly runs: LocalRunStore;
  readonly chunkIndex: LocalChunkIndex;
  readonly segmentStats: LocalSegmentStatsStore;
}

export const DEFAULT_HOME = '.sluice';

/**
 * Where a home keeps earlier contents of the bucket's seeded files (models, statistics,
 * lookup tables) by content hash, so a run planned on one still reads it after it was
 * replaced (cli/seed-bundle.ts), as from a versioned bucket.
 */
export function versionsDirOf(bucketDir: string): string {
  return path.join(path.dirname(bucketDir), 'state', 'versions');
}

export function openHome(dir: string = DEFAULT_HOME): LocalHome {
  const abs = path.resolve(dir);
  const bucketDir = path.join(abs, 'bucket');
  return {
    dir: abs,
    bucketDir,
    store: new FsObjectStore(bucketDir, versionsDirOf(bucketDir)),
    runs: new LocalRunStore(path.join(abs, 'state', 'runs')),
    chunkIndex: new LocalChunkIndex(path.join(abs, 'state', 'chunk-index')),
    segmentStats: new LocalSegmentStatsStore(path.join(abs, 'state', 'segments')),
  };
}

/**
 * The home a command was given, checked before any work so that a bad `--home` is one
 * line and exit 2: it must be a folder (or not exist yet), and for commands that write
 * (`run`, `redrive`) one this process can create and write in.
 */
export async function openCheckedHome(dir: string | undefined, access: 'read' | 'write'): Promise<LocalHome> {
  const home = openHome(dir);
  const given = dir ?? DEFAULT_HOME;
  let isFolder: boolean | undefined;
  try {
    isFolder = (await stat(home.dir)).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new UsageError(`--home ${given} cannot be used (${code}): give a folder`);
  }
  if (isFolder === false) throw new UsageError(`--home ${given} is a file, not a folder: give a folder`);
  if (access === 'write') {
    const state = path.join(home.dir, 'state');
    const probe = path.join(state, `.write-probe-${process.pid}`);
    try {
      await mkdir(state, { recursive: true });
      await writeFile(probe, '');
      await unlink(probe);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new UsageError(`--home ${given} is not writable (${code}): give a folder sluice can write to`);
    }
  }
  return home;
}
