import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sluice } from '../support/cli.ts';

const BIN = fileURLToPath(new URL('../../bin/sluice.js', import.meta.url));

/** Runs bin/sluice.js with stdout and stderr as pipes (not a terminal). */
function runBin(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: path.dirname(path.dirname(BIN)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sluice run progress', { timeout: 120_000 }, () => {
  let work: string;
  let input: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-progress-'));
    input = path.join(work, 'docs.jsonl');
    const docs = Array.from({ length: 40 }, (_, i) => ({
      id: `d${i}`,
      text: `document ${i} about sluices and weirs`,
    }));
    await writeFile(input, `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('ends its stderr with a progress line when stderr is a pipe; --json stdout is one JSON line', async () => {
    const { code, stdout, stderr } = await runBin([
      'run',
      input,
      '--pipeline',
      'docs',
      '--home',
      path.join(work, 'home-bin'),
      '--json',
    ]);
    expect(code, stderr).toBe(0);
    const out = stdout.split('\n').filter((l) => l !== '');
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0]!)).toMatchObject({ status: 'succeeded', counts: { records: 40 } });
    const err = stderr.split('\n');
    expect(err.some((l) => /^run r-\S+: 1 input files -> 1 units/.test(l))).toBe(true);
    // No spinner on a pipe: no cursor movement or carriage returns.
    expect(stderr).not.toContain('\r');
    expect(stderr).not.toContain('\u001b[');
    expect(err.filter((l) => l.startsWith('progress: ')).at(-1)).toMatch(
      /^progress: (\w+: )?1\/1 units, 40 records, [\d.k]+ records\/s, [\d.k]+ tokens\/s, in \d+s$/,
    );
  });

  it('redrive ends with the progress of the units it ran again', async () => {
    // An endpoint that refuses every batch: the run's unit fails each delivery and is dead-lettered.
    const refusing = createServer((_req, res) =>
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"no"}'),
    );
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    const { port } = refusing.address() as { port: number };
    const home = path.join(work, 'home-redrive');
    const failed = await sluice(
      'run',
      input,
      '--pipeline',
      'docs',
      '--home',
      home,
      '--endpoint-url',
      `http://127.0.0.1:${port}`,
      '--json',
    );
    refusing.closeAllConnections();
    await new Promise((resolve) => refusing.close(resolve));
    expect(failed.code).toBe(1);
    expect(failed.err.filter((l) => l.startsWith('progress: ')).at(-1)).toMatch(
      /1\/1 units \(1 failed\), 0 records/,
    );
    const redriven = await sluice('redrive', failed.json<{ runId: string }>().runId, '--home', home);
    expect(redriven.code, redriven.err.join('\n')).toBe(0);
    expect(redriven.err.filter((l) => l.startsWith('progress: ')).at(-1)).toMatch(
      /^progress: (\w+: )?1\/1 units, 40 records/,
    );
  });

  it('in-process, progress goes to the command stderr and not one line per unit', async () => {
    const result = await sluice('run', input, '--pipeline', 'docs', '--home', path.join(work, 'home-io'));
    expect(result.code, result.err.join('\n')).toBe(0);
    expect(result.err.some((l) => /^unit u\d+: /.test(l))).toBe(false);
    expect(result.err.at(-1)).toMatch(/^progress: (\w+: )?1\/1 units, 40 records/);
    expect(result.out[0]).toMatch(/^run r-\S+ succeeded: 40 records/);
  });
});
