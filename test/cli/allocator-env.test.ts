import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'sluice.js');

// A module preloaded through NODE_OPTIONS into both processes: the child that `run` starts
// (SLUICE_HEAP_SET=1) reports the allocator setting it got, then exits before the CLI loads.
const dir = mkdtempSync(path.join(tmpdir(), 'sluice-allocator-env-'));
const probe = path.join(dir, 'report-allocator.mjs');
writeFileSync(
  probe,
  `if (process.env.SLUICE_HEAP_SET === '1') {
  process.stdout.write('arena-max=' + (process.env.MALLOC_ARENA_MAX ?? 'unset') + '\\n');
  process.exit(0);
}
`,
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function childArenaMax(extraEnv: Record<string, string>): string {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  delete env.SLUICE_HEAP_SET;
  if (!('MALLOC_ARENA_MAX' in extraEnv)) delete env.MALLOC_ARENA_MAX;
  env.NODE_OPTIONS = `--import ${pathToFileURL(probe).href}`;
  const result = spawnSync(process.execPath, [BIN, 'run', '--help'], { cwd: ROOT, env, encoding: 'utf8' });
  expect(result.status).toBe(0);
  return /arena-max=(\S+)/.exec(result.stdout)?.[1] ?? 'no child';
}

describe('sluice run process environment', () => {
  it('starts the run process with two malloc arenas', () => {
    expect(childArenaMax({})).toBe('2');
  });

  it('keeps an arena count the user set', () => {
    expect(childArenaMax({ MALLOC_ARENA_MAX: '8' })).toBe('8');
  });
});
