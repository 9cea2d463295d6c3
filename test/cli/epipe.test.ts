import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../shared/domain/types.ts';
import { sluice } from '../support/cli.ts';

const BIN = fileURLToPath(new URL('../../bin/sluice.js', import.meta.url));
const ROOT = path.dirname(path.dirname(BIN));
// The environment of a plain shell, not of `npm test` (whose npm_* variables would make
// the CLI watch its parent).
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Lines the reader took before it closed the pipe. */
  read: string[];
  stderr: string;
}

/**
 * Runs `bin/sluice.js` with its stdout read by a reader that closes the pipe after `lines`
 * lines, as `| head -n LINES` does (0: before the CLI writes anything, so its first write
 * meets the closed pipe).
 */
function pipedInto(lines: number, ...args: string[]): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const read: string[] = [];
    let pending = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    if (lines === 0) child.stdout.destroy();
    else
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (pending + chunk).split('\n');
        pending = parts.pop()!;
        read.push(...parts.slice(0, lines - read.length));
        if (read.length >= lines) child.stdout.destroy();
      });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, read, stderr }));
  });
}

describe('a reader that closes the pipe early', { timeout: 120_000 }, () => {
  let work: string;
  let home: string;
  let user: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-epipe-'));
    home = path.join(work, 'home');
    const pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    const sample = (await readFile('events/data/interactions-sample.csv', 'utf8')).split('\n');
    const input = path.join(work, 'interactions.csv');
    await writeFile(input, `${sample.slice(0, 800).join('\n')}\n`);
    const shipped = JSON.parse(await readFile('pipelines/recommend.json', 'utf8'));
    await writeFile(path.join(pipelines, 'recs.json'), JSON.stringify({ ...shipped, name: 'recs' }));
    const run = await sluice(
      'run',
      input,
      '--pipeline',
      'recs',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--json',
    );
    expect(run.code).toBe(0);
    const summary = run.json<RunSummary>();
    const rows = await sluice(
      'query',
      `select user_id from recommendations where run_id = '${summary.runId}' order by user_id limit 1`,
      '--home',
      home,
      '--json',
    );
    user = rows.json<{ user_id: string }[]>()[0]!.user_id;
  }, 120_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** A clean exit: the command's own code, no signal, nothing about the pipe on stderr. */
  function expectQuiet(ended: Ended): void {
    expect(ended.stderr).not.toMatch(/EPIPE|Error|at .*\.js:\d+/);
    expect(ended.signal).toBeNull();
    expect(ended.code).toBe(0);
  }

  it('sluice recommend | head -4: the lines it read, then a quiet exit 0', async () => {
    const ended = await pipedInto(4, 'recommend', user, '--pipeline', 'recs', '--home', home);
    expect(ended.read[0]).toMatch(new RegExp(`^user ${user}: top \\d+ of run `));
    expect(ended.read).toHaveLength(4);
    expectQuiet(ended);
  });

  it('sluice recommend with its reader gone before the first line', async () => {
    expectQuiet(await pipedInto(0, 'recommend', user, '--pipeline', 'recs', '--home', home));
  });

  it('sluice query | head -4 over more output than the pipe holds (the CLI writes after the close)', async () => {
    const sql = "select i, repeat('x', 60) as pad from range(20000) t(i)";
    const ended = await pipedInto(4, 'query', sql, '--home', home);
    expect(ended.read).toHaveLength(4);
    expectQuiet(ended);
  });

  it('sluice --help and sluice help COMMAND (written by main itself)', async () => {
    expectQuiet(await pipedInto(0, '--help'));
    expectQuiet(await pipedInto(1, 'help', 'serve-model'));
  });
});
