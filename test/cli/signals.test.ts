import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/sluice.js', import.meta.url));
const ROOT = path.dirname(path.dirname(BIN));
// The environment of a plain shell, not of `npm test` (whose npm_* variables would make
// every child watch its parent).
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));

/** Whether a process is gone (exited and reaped, or a zombie nobody has reaped yet). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting until ${what}`);
}

/** The first stdout line matching `pattern`, as its match. */
function lineMatching(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const match = pattern.exec(text);
      if (match) {
        child.stdout!.off('data', onData);
        resolve(match);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code} before printing ${pattern}`)));
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Whether something accepts connections on the URL's port. */
function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The child processes of `pid` (Linux: /proc/PID/task/PID/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

describe('bin/sluice.js and signals', { timeout: 120_000 }, () => {
  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)(
    'serve-model killed by its PID with %s closes the server and exits 0',
    async (signal) => {
      const child = spawn(process.execPath, [BIN, 'serve-model', '--port', '0'], { cwd: ROOT, env: ENV });
      const [, url] = await lineMatching(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
      expect(await accepts(url!)).toBe(true);
      child.kill(signal);
      expect(await exited(child)).toEqual({ code: 0, signal: null });
      expect(await accepts(url!)).toBe(false);
    },
  );

  it('serve-model started through a go-between like npx stops when the go-between is killed by PID', async () => {
    // What `npx sluice serve-model` runs: npm starts `sh -c`, which starts node. Killing
    // npm ends the shell; without a watch the server is left running with no parent.
    const shell = spawn(
      'sh',
      ['-c', `"${process.execPath}" "${BIN}" serve-model --port 0 & echo "pid $!"; wait`],
      { cwd: ROOT, env: { ...ENV, npm_command: 'exec' } },
    );
    const [, pidText, url] = await lineMatching(
      shell,
      /pid (\d+)[\s\S]*listening on (http:\/\/127\.0\.0\.1:\d+)/,
    );
    const server = Number(pidText);
    expect(gone(server)).toBe(false);
    shell.kill('SIGTERM');
    await exited(shell);
    await until(`process ${server} is gone`, () => gone(server));
    expect(await accepts(url!)).toBe(false);
  });

  describe('run (a child process with bounded heaps)', () => {
    let work: string;
    let input: string;
    let endpoint: Server;
    let endpointUrl: string;

    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), 'sluice-signals-'));
      input = path.join(work, 'in.jsonl');
      await writeFile(input, '{"id":"a","text":"a document that waits for its embedding"}\n');
      // An endpoint that takes requests and never answers: the run is still going when killed.
      endpoint = createServer(() => {});
      await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
      endpointUrl = `http://127.0.0.1:${(endpoint.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      endpoint.closeAllConnections();
      await new Promise((resolve) => endpoint.close(resolve));
      await rm(work, { recursive: true, force: true });
    });

    /** Starts `sluice run` until its endpoint call hangs; returns the wrapper and the run's process. */
    async function startRun(home: string): Promise<{ wrapper: ChildProcess; run: number }> {
      const calls = new Promise((resolve) => endpoint.once('request', resolve));
      const wrapper = spawn(
        process.execPath,
        [
          BIN,
          'run',
          input,
          '--pipeline',
          'docs',
          '--home',
          path.join(work, home),
          '--endpoint-url',
          endpointUrl,
        ],
        { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      await calls;
      const [run] = childrenOf(wrapper.pid!);
      expect(run).toBeDefined();
      return { wrapper, run: run! };
    }

    it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)(
      'forwards %s to the run and dies of it',
      async (signal) => {
        const { wrapper, run } = await startRun(`home-${signal}`);
        wrapper.kill(signal);
        expect(await exited(wrapper)).toEqual({ code: null, signal });
        await until(`run process ${run} is gone`, () => gone(run));
      },
    );

    it('the run stops when its wrapper is killed outright (SIGKILL)', async () => {
      const { wrapper, run } = await startRun('home-kill');
      wrapper.kill('SIGKILL');
      await exited(wrapper);
      await until(`run process ${run} is gone`, () => gone(run));
    });
  });
});
