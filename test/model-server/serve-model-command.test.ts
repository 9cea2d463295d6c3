import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseServeModelArgs } from '../../cli/commands/serve-model.ts';
import { main } from '../../cli/main.ts';
import { EchoBackend } from '../../cli/model-server/echo-backend.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { OnnxEmbeddingBackend } from '../../cli/model-server/onnx-backend.ts';
import { UsageError } from '../../cli/usage.ts';
import { writeTinyModelFolder } from '../support/onnx-model.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'sluice-serve-model-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('sluice serve-model flags', () => {
  it('defaults to hash-embed on a free port, with no GPU simulation', async () => {
    const settings = await parseServeModelArgs([]);
    expect(settings.backend).toBeInstanceOf(HashEmbedder);
    expect(settings).toMatchObject({ port: 0, backend: { dimension: 384 } });
    expect(settings.gpu).toBeUndefined();
  });

  it('reads the echo backend and the GPU simulation flags', async () => {
    const settings = await parseServeModelArgs([
      '--backend',
      'echo',
      '--dimension',
      '16',
      '--capacity',
      '8',
      '--queue',
      '2',
      '--latency-ms-fixed',
      '20',
      '--latency-ms-per-token',
      '0.02',
    ]);
    expect(settings.backend).toBeInstanceOf(EchoBackend);
    expect((settings.backend as EchoBackend).dimension).toBe(16);
    expect(settings.gpu).toEqual({ capacity: 8, queue: 2, latencyMsFixed: 20, latencyMsPerToken: 0.02 });
  });

  it('serves an XGBoost JSON model over text/csv, and needs --model for it', async () => {
    const settings = await parseServeModelArgs([
      '--backend',
      'xgboost-json',
      '--model',
      'events/fixtures/xgboost/binary/model.json',
    ]);
    expect(settings.backend.description).toMatch(/xgboost/i);
    await expect(parseServeModelArgs(['--backend', 'xgboost-json'])).rejects.toThrow(
      '--backend xgboost-json needs --model PATH',
    );
    await expect(parseServeModelArgs(['--model', 'x.json'])).rejects.toThrow(
      '--model is for --backend xgboost-json or onnx',
    );
  });

  it('loads an ONNX sentence-transformer folder with --backend onnx --model DIR', async () => {
    const dir = await writeTinyModelFolder(path.join(work, 'tiny'));
    const settings = await parseServeModelArgs(['--backend', 'onnx', '--model', dir]);
    expect(settings.backend).toBeInstanceOf(OnnxEmbeddingBackend);
    expect(settings.backend).toMatchObject({ model: 'sluice-tests/tiny-bert', dimension: 4 });
    await (settings.backend as OnnxEmbeddingBackend).close();
  });

  it('exits 2 with one line when the ONNX folder is bad', async () => {
    const err: string[] = [];
    const code = await main(['serve-model', '--backend', 'onnx', '--model', path.join(work, 'missing')], {
      out: () => {},
      err: (line) => err.push(line),
    });
    expect(code).toBe(2);
    expect(err).toEqual([`sluice serve-model: model folder ${path.join(work, 'missing')}: not a folder`]);
  });

  it('simulates latency alone, without a capacity limit', async () => {
    expect((await parseServeModelArgs(['--latency-ms-fixed', '5'])).gpu).toEqual({ latencyMsFixed: 5 });
  });

  it.each([
    [
      ['--backend', 'tflite'],
      /--backend must be one of hash-embed, echo, xgboost-json, onnx, rules-chat, got "tflite"/,
    ],
    [['--backend', 'onnx'], /--backend onnx needs --model DIR/],
    [['--backend', 'onnx', '--model', '.', '--dimension', '8'], /--dimension is not for --backend onnx/],
    [['--backend', 'onnx', '--model', '.', '--port', 'x'], /--port must be an integer/],
    [['--capacity', '0'], /--capacity must be an integer from 1/],
    [['--capacity', '2.5'], /--capacity must be an integer/],
    [['--latency-ms-per-token', 'fast'], /--latency-ms-per-token must be a number/],
    [['--latency-ms-fixed=-1'], /--latency-ms-fixed must be a number from 0/],
    [['--queue', '4'], /--queue needs --capacity/],
    [['--capacityy', '4'], /capacityy/],
  ])('refuses %j with one line naming the flag', async (args, message) => {
    const error = await parseServeModelArgs(args).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
  });
});

describe('sluice serve-model as a process', () => {
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('prints its loopback address, serves the simulated GPU and stops cleanly on SIGTERM', async () => {
    const proc = spawn(
      process.execPath,
      [
        'bin/sluice.js',
        'serve-model',
        '--backend',
        'echo',
        '--dimension',
        '4',
        '--capacity',
        '3',
        '--latency-ms-fixed',
        '1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    const stderr: string[] = [];
    proc.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    const [line] = (await once(createInterface({ input: proc.stdout! }), 'line')) as [string];
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1];
    expect(url).toBeDefined();

    const answer = await fetch(`${url}/endpoints/any/invocations`, {
      method: 'POST',
      body: '{"inputs":["abc"]}',
    });
    expect(await answer.json()).toEqual([[0.003, 1, 0, 0]]);
    const stats = (await (await fetch(`${url}/stats`)).json()) as Record<string, unknown>;
    expect(stats).toMatchObject({ model: 'sluice-echo-v1', served: 1, gpu: { capacity: 3, admitted: 1 } });

    proc.kill('SIGTERM');
    const [code] = (await once(proc, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(stderr.join('')).toMatch(/simulated GPU: 3 batches at once, queue 0, latency 1 ms/);
  });

  it('serves an ONNX folder from the compiled CLI, which loads onnxruntime-node only for it', async () => {
    const dir = await writeTinyModelFolder(path.join(work, 'tiny-process'));
    const proc = spawn(
      process.execPath,
      ['bin/sluice.js', 'serve-model', '--backend', 'onnx', '--model', dir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child = proc;
    const stderr: string[] = [];
    proc.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    const [line] = (await once(createInterface({ input: proc.stdout! }), 'line')) as [string];
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1];
    const answer = await fetch(`${url}/embed`, { method: 'POST', body: '{"inputs":"the queue"}' });
    const norm = Math.sqrt(2.16);
    expect(await answer.json()).toEqual([
      [0.4 / norm, 1 / norm, 0, 1 / norm].map((x) => Math.round(x * 1e7) / 1e7),
    ]);
    proc.kill('SIGTERM');
    const [code] = (await once(proc, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(stderr.join('')).toMatch(/^onnx: sluice-tests\/tiny-bert from /m);
  });
});
