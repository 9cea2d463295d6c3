import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeModelArgs } from '../../cli/commands/serve-model.ts';
import { EchoBackend } from '../../cli/model-server/echo-backend.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { UsageError } from '../../cli/usage.ts';

describe('sluice serve-model flags', () => {
  it('defaults to hash-embed on a free port, with no GPU simulation', () => {
    const settings = parseServeModelArgs([]);
    expect(settings.backend).toBeInstanceOf(HashEmbedder);
    expect(settings).toMatchObject({ port: 0, backend: { dimension: 384 } });
    expect(settings.gpu).toBeUndefined();
  });

  it('reads the echo backend and the GPU simulation flags', () => {
    const settings = parseServeModelArgs([
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

  it('serves an XGBoost JSON model over text/csv, and needs --model for it', () => {
    const settings = parseServeModelArgs([
      '--backend',
      'xgboost-json',
      '--model',
      'events/fixtures/xgboost/binary/model.json',
    ]);
    expect(settings.backend.description).toMatch(/xgboost/i);
    expect(() => parseServeModelArgs(['--backend', 'xgboost-json'])).toThrow(
      '--backend xgboost-json needs --model PATH',
    );
    expect(() => parseServeModelArgs(['--model', 'x.json'])).toThrow('--model is for --backend xgboost-json');
  });

  it('simulates latency alone, without a capacity limit', () => {
    expect(parseServeModelArgs(['--latency-ms-fixed', '5']).gpu).toEqual({ latencyMsFixed: 5 });
  });

  it.each([
    [['--backend', 'onnx'], /--backend must be one of hash-embed, echo, xgboost-json, got "onnx"/],
    [['--capacity', '0'], /--capacity must be an integer from 1/],
    [['--capacity', '2.5'], /--capacity must be an integer/],
    [['--latency-ms-per-token', 'fast'], /--latency-ms-per-token must be a number/],
    [['--latency-ms-fixed=-1'], /--latency-ms-fixed must be a number from 0/],
    [['--queue', '4'], /--queue needs --capacity/],
    [['--capacityy', '4'], /capacityy/],
  ])('refuses %j with one line naming the flag', (args, message) => {
    expect(() => parseServeModelArgs(args)).toThrow(UsageError);
    expect(() => parseServeModelArgs(args)).toThrow(message);
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
});
