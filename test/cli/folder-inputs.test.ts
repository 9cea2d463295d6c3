import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

const PIPELINE = {
  name: 'folders',
  kind: 'embed',
  endpoint: { name: 'folders-embed', dimension: 16, maxRetries: 0, timeoutMs: 10_000 },
  incremental: { enabled: false },
};

const two = (prefix: string) =>
  jsonl([
    { id: `${prefix}-1`, text: `${prefix} one` },
    { id: `${prefix}-2`, text: `${prefix} two` },
  ]);

describe('sluice run over a folder', () => {
  let work: string;
  let pipelines: string;
  let server: ModelServer;
  let hasFifo = false;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-folders-'));
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, 'folders.json'), JSON.stringify(PIPELINE));
    server = await startModelServer({ backend: new HashEmbedder(16) });

    const data = path.join(work, 'data');
    const outside = path.join(work, 'outside');
    await mkdir(path.join(data, 'sub'), { recursive: true });
    await mkdir(path.join(data, '.git'), { recursive: true });
    await mkdir(path.join(outside, 'shared'), { recursive: true });
    await writeFile(path.join(data, 'a.jsonl'), two('a'));
    await writeFile(path.join(data, 'sub', 'b.jsonl'), two('b'));
    await writeFile(path.join(data, '.hidden.jsonl'), two('hidden'));
    await writeFile(path.join(data, '..x.jsonl'), two('dotdot'));
    await writeFile(path.join(data, '.git', 'config.jsonl'), two('git'));
    await writeFile(path.join(data, 'back\\slash.jsonl'), two('backslash'));
    await writeFile(path.join(outside, 'c.jsonl'), two('c'));
    await writeFile(path.join(outside, 'shared', 'd.jsonl'), two('d'));
    await symlink(path.join(outside, 'c.jsonl'), path.join(data, 'linked.jsonl'));
    await symlink(path.join(outside, 'shared'), path.join(data, 'linked-dir'));
    await symlink(data, path.join(data, 'sub', 'loop'));
    await symlink(path.join(work, 'gone.jsonl'), path.join(data, 'broken.jsonl'));
    try {
      execFileSync('mkfifo', [path.join(data, 'pipe.jsonl')]);
      hasFifo = true;
    } catch {
      // no mkfifo here: the FIFO case is left out of this run
    }
  });
  afterAll(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  const run = (home: string, ...paths: string[]) =>
    sluice(
      'run',
      ...paths,
      '--pipeline',
      'folders',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--endpoint-url',
      server.url,
      '--threads',
      '0',
      '--json',
    );

  it('reads every regular file, follows symlinks, and reports each entry it skips with the reason', async () => {
    const result = await run(path.join(work, 'home'), path.join(work, 'data'));
    expect(result.code, result.err.join('\n')).toBe(0);
    const summary = result.json();
    // a, sub/b, linked.jsonl (a link to a file), linked-dir/d.jsonl (a link to a folder).
    expect(summary.counts).toMatchObject({ records: 8, rejected: 0 });
    const data = path.join(work, 'data');
    const entries = summary.skippedInputs.entries as { path: string; reason: string }[];
    const reasons = Object.fromEntries(entries.map((e) => [path.relative(data, e.path), e.reason]));
    expect(reasons).toEqual({
      '.hidden.jsonl': 'hidden: its name starts with "."',
      '..x.jsonl': 'hidden: its name starts with "."',
      '.git': 'hidden: its name starts with "."',
      'back\\slash.jsonl': 'its name has a backslash, which an object key of the local bucket cannot hold',
      'broken.jsonl': 'broken symbolic link: its target is gone',
      [path.join('sub', 'loop')]: `symbolic link loop: leads back to ${data}`,
      ...(hasFifo ? { 'pipe.jsonl': 'a FIFO, not a regular file' } : {}),
    });
    expect(summary.skippedInputs.count).toBe(entries.length);
    expect(summary.skippedInputs.byReason).toMatchObject({
      hidden: 3,
      'broken symbolic link': 1,
      'symbolic link loop': 1,
    });
    for (const entry of entries) expect(result.err).toContain(`skipped ${entry.path}: ${entry.reason}`);
    expect(result.err.some((l) => l.includes('4 input files'))).toBe(true);
  });

  it('says how many entries it skipped, and why, in its human output', async () => {
    const result = await sluice(
      'run',
      path.join(work, 'data'),
      '--pipeline',
      'folders',
      '--pipelines',
      pipelines,
      '--home',
      path.join(work, 'home-text'),
      '--endpoint-url',
      server.url,
      '--threads',
      '0',
    );
    expect(result.code).toBe(0);
    const line = result.out.find((l) => l.startsWith('skipped '));
    expect(line).toMatch(/^skipped \d+ folder entries, not read: 3 hidden; .*1 broken symbolic link/);
  });

  it('refuses a folder with nothing to read, and a named file the bucket cannot hold, in one line (exit 2)', async () => {
    const hiddenOnly = path.join(work, 'hidden-only');
    await mkdir(hiddenOnly);
    await writeFile(path.join(hiddenOnly, '.x.jsonl'), two('x'));
    const empty = await run(path.join(work, 'home-empty'), hiddenOnly);
    expect(empty.code).toBe(2);
    expect(empty.out).toEqual([]);
    expect(empty.err).toEqual([
      `sluice run: input folder has no files to read: ${hiddenOnly} (1 skipped, e.g. ${path.join(hiddenOnly, '.x.jsonl')}: hidden: its name starts with ".")`,
    ]);
    const named = await run(path.join(work, 'home-named'), path.join(work, 'data', 'back\\slash.jsonl'));
    expect(named.code).toBe(2);
    expect(named.err).toHaveLength(1);
    expect(named.err[0]).toContain('its name has a backslash');
  });
});
