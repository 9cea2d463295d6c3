import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** A temporary folder that lives as long as the calling test file or `describe`. */
export interface ScratchFolder {
  /** The folder's path; it exists once `beforeAll` has run. */
  readonly dir: string;
}

/**
 * Makes a folder `<tmpdir>/<prefix>XXXXXX` in `beforeAll` and removes it with all it holds in
 * `afterAll`. Read `dir` inside tests and hooks only.
 */
export function useScratchFolder(prefix: string): ScratchFolder {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return {
    get dir() {
      if (dir === undefined) throw new Error(`no scratch folder ${prefix}: read it inside tests or hooks`);
      return dir;
    },
  };
}
