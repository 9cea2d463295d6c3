import path from 'node:path';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.ts';
import { LocalChunkIndex } from '../shared/adapters/local/local-chunk-index.ts';
import { LocalRunStore } from '../shared/adapters/local/local-run-store.ts';
import { LocalSegmentStatsStore } from '../shared/adapters/local/local-segment-stats-store.ts';

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

export function openHome(dir: string = DEFAULT_HOME): LocalHome {
  const abs = path.resolve(dir);
  const bucketDir = path.join(abs, 'bucket');
  return {
    dir: abs,
    bucketDir,
    store: new FsObjectStore(bucketDir),
    runs: new LocalRunStore(path.join(abs, 'state', 'runs')),
    chunkIndex: new LocalChunkIndex(path.join(abs, 'state', 'chunk-index')),
    segmentStats: new LocalSegmentStatsStore(path.join(abs, 'state', 'segments')),
  };
}
