import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleDocuments } from '../../events/generate-samples.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

describe('sluice CLI', () => {
  let work: string;
  let home: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-cli-'));
    home = path.join(work, 'home');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('embeds the sample documents and answers SQL over the results', async () => {
    const run = await sluice(
      'run',
      'events/data/docs-sample.jsonl',
      '--pipeline',
      'docs',
      '--home',
      home,
      '--json',
    );
    expect(run.code).toBe(0);
    const summary = run.json();
    expect(summary).toMatchObject({
      pipeline: 'docs',
      status: 'succeeded',
      counts: { records: 300, rejected: 0, units: 1 },
    });
    expect(summary.counts.embedded).toBe(summary.counts.chunks);
    expect(summary.stats.paddedTokens).toBeGreaterThanOrEqual(summary.stats.realTokens);
    expect(run.err.some((l) => l.includes('lexical, not semantic'))).toBe(true);

    const query = await sluice(
      'query',
      `select count(*) as n, count(distinct doc_id) as docs from embeddings where run_id = '${summary.runId}'`,
      '--home',
      home,
      '--json',
    );
    expect(query.json()).toEqual([{ n: summary.counts.embedded, docs: 300 }]);
    const dims = await sluice(
      'query',
      'select distinct len(embedding) as d, model from embeddings',
      '--home',
      home,
      '--json',
    );
    expect(dims.json()).toEqual([{ d: 384, model: 'sluice-hash-embed-v1' }]);
    const runs = await sluice('query', 'select run_id, status, records from runs', '--home', home, '--json');
    expect(runs.json()).toContainEqual({ run_id: summary.runId, status: 'succeeded', records: 300 });

    const status = await sluice('status', summary.runId, '--home', home, '--json');
    expect(status.json().units).toEqual([
      expect.objectContaining({
        unitId: 'u00000',
        sourceKey: 'incoming/docs/docs-sample.jsonl',
        status: 'succeeded',
        attempts: 1,
        records: 300,
        lastError: null,
      }),
    ]);
  });

  it('says how many chunks and documents a re-drop removed', async () => {
    const file = path.join(work, 'shrinking.jsonl');
    const docs = sampleDocuments(40, 7);
    const removedHome = path.join(work, 'removed-home');
    await writeFile(file, jsonl(docs));
    expect((await sluice('run', file, '--pipeline', 'docs', '--home', removedHome)).code).toBe(0);

    await writeFile(file, jsonl(docs.slice(0, 30)));
    const rerun = await sluice('run', file, '--pipeline', 'docs', '--home', removedHome);
    expect(rerun.code).toBe(0);
    const summary = rerun.out.find((l) => l.startsWith('run '))!;
    const removed = /, (\d+) removed, 0 rejected/.exec(summary);
    expect(removed).not.toBeNull();
    expect(rerun.out).toContain(`removed: 10 documents no longer in their source (${removed![1]} chunks)`);
    expect(rerun.out.some((l) => l.startsWith('not compared'))).toBe(false);
  });

  it('says how many source files a folder run found deleted', async () => {
    const folder = path.join(work, 'shrinking-folder');
    const deletedHome = path.join(work, 'deleted-home');
    await mkdir(folder);
    const docs = sampleDocuments(20, 9);
    await writeFile(path.join(folder, 'a.jsonl'), jsonl(docs.slice(0, 10)));
    await writeFile(path.join(folder, 'b.jsonl'), jsonl(docs.slice(10)));
    expect((await sluice('run', folder, '--pipeline', 'docs', '--home', deletedHome)).code).toBe(0);

    await rm(path.join(folder, 'b.jsonl'));
    const rerun = await sluice('run', folder, '--pipeline', 'docs', '--home', deletedHome);
    expect(rerun.code).toBe(0);
    expect(rerun.out.find((l) => l.startsWith('removed: '))).toMatch(
      /^removed: 10 documents no longer in their source \(\d+ chunks\); 1 source files deleted$/,
    );
  });

  it('puts every record of a messy drop in embeddings or rejects exactly once', async () => {
    const dir = path.join(work, 'drop');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const docs = sampleDocuments(40, 3);
    await writeFile(
      path.join(dir, 'my report+1 café.jsonl'),
      jsonl([...docs.slice(0, 20), '{oops', { id: 'nt' }, ...docs.slice(20)]),
    );
    await writeFile(path.join(dir, 'empty.jsonl'), '');
    await writeFile(path.join(dir, 'notes.txt'), 'A plain text note about queues.');
    await writeFile(path.join(dir, 'table.csv'), 'id,text\nc1,"first, row"\nc2\n');
    const run = await sluice('run', dir, '--pipeline', 'docs', '--home', home, '--json');
    expect(run.code).toBe(0);
    const summary = run.json();
    expect(summary.counts).toMatchObject({ records: 40 + 2 + 1 + 1 + 2, rejected: 4 });

    const q = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();
    const embedded = await q(
      `select distinct doc_id, source_key from embeddings where run_id = '${summary.runId}' order by doc_id`,
    );
    expect(embedded.map((r: { doc_id: string }) => r.doc_id).sort()).toEqual(
      [...docs.map((d) => d.id), 'c1', 'incoming/docs/drop/notes.txt'].sort(),
    );
    const rejects = await q(
      `select source_key, line, reason from rejects where run_id = '${summary.runId}' order by source_key, line`,
    );
    expect(rejects).toEqual([
      { source_key: 'incoming/docs/drop/empty.jsonl', line: 0, reason: 'empty file: no records' },
      {
        source_key: 'incoming/docs/drop/my report+1 café.jsonl',
        line: 21,
        reason: expect.stringMatching(/^malformed JSON/),
      },
      {
        source_key: 'incoming/docs/drop/my report+1 café.jsonl',
        line: 22,
        reason: 'missing text field "text"',
      },
      {
        source_key: 'incoming/docs/drop/table.csv',
        line: 3,
        reason: 'CSV row has 1 fields, the header has 2',
      },
    ]);
    const overlap = await q(
      `select count(*) as n from embeddings e join rejects r on e.run_id = r.run_id and e.source_key = r.source_key and e.doc_id = r.source_key || ':' || r.line`,
    );
    expect(overlap).toEqual([{ n: 0 }]);
  });

  it('exits 2 with one line for a missing path, an unknown pipeline or a bad flag', async () => {
    for (const argv of [
      ['run', path.join(work, 'missing.jsonl'), '--pipeline', 'docs', '--home', home],
      ['run', 'events/data/docs-sample.jsonl', '--pipeline', 'nope', '--home', home],
      ['run', 'events/data/docs-sample.jsonl', '--home', home],
      ['run', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--colour'],
      ['query', 'select * from nowhere', '--home', home],
      ['status', 'r-nope', '--home', home],
      ['frobnicate'],
    ]) {
      const result = await sluice(...argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.err, argv.join(' ')).toHaveLength(1);
    }
  });

  it('runs as the npx sluice binary', async () => {
    const { stdout } = await promisify(execFile)('node', [
      'bin/sluice.js',
      'query',
      'select 1 as one',
      '--home',
      home,
      '--json',
    ]);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual([{ one: 1 }]);
  });

  it('runs `run` in a child process with bounded heap flags, passing its output and exit code through', async () => {
    const exec = promisify(execFile);
    const { stdout } = await exec('node', [
      'bin/sluice.js',
      'run',
      'events/data/docs-sample.jsonl',
      '--pipeline',
      'docs',
      '--home',
      path.join(work, 'home-bin'),
      '--json',
    ]);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ status: 'succeeded' });
    const bad = await exec('node', ['bin/sluice.js', 'run', 'x.jsonl', '--pipeline', 'nope']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toMatch(/pipeline "nope" not found/);
  });

  it('runs compiled from a cache keyed by the sources, rebuilding when one changes, or from source on request', async () => {
    const exec = promisify(execFile);
    const cache = 'node_modules/.cache/sluice-cli';
    const status = async (env: Record<string, string> = {}) => {
      const { stdout } = await exec('node', ['bin/sluice.js', 'status', '--home', home, '--json'], {
        env: { ...process.env, ...env },
      });
      return JSON.parse(stdout.trim().split('\n').at(-1)!);
    };
    const compiled = await status();
    const builds = async () => (await readdir(cache)).filter((b) => !b.endsWith('.tmp'));
    const before = await builds();
    expect(before.length).toBeGreaterThan(0);

    // Same content, an mtime no earlier run used: a new fingerprint, so a new build beside the old.
    const source = 'cli/usage.ts';
    const { atime, mtime } = await stat(source);
    try {
      await utimes(source, atime, new Date(Date.now() + 60_000 + Math.floor(Math.random() * 1e6)));
      expect(await status()).toEqual(compiled);
      const added = (await builds()).filter((b) => !before.includes(b));
      expect(added).toHaveLength(1);
      expect(await readdir(path.join(cache, added[0]!))).toEqual(
        expect.arrayContaining(['main.js', 'unit-worker.js']),
      );
    } finally {
      await utimes(source, atime, mtime);
    }
    expect(await status({ SLUICE_FROM_SOURCE: '1' })).toEqual(compiled);
  });
});
