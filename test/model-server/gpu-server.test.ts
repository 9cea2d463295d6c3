import { InvokeEndpointCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { EchoBackend } from '../../cli/model-server/echo-backend.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import {
  type ModelServer,
  type ModelServerOptions,
  startModelServer,
} from '../../cli/model-server/server.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { AdaptiveLimiter } from '../../shared/endpoint/adaptive-limiter.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';
import { localClientConfig } from '../support/local-aws.ts';
import { sleepGate, until } from './gates.ts';

const invoke = (inputs: string[]) =>
  new InvokeEndpointCommand({
    EndpointName: 'sluice-embed',
    ContentType: 'application/json',
    Body: JSON.stringify({ inputs }),
  });
const vectorsOf = (body: Uint8Array | undefined) => JSON.parse(new TextDecoder().decode(body)) as number[][];

describe('local model server with a simulated GPU', () => {
  const started: { server: ModelServer; client: SageMakerRuntimeClient }[] = [];

  async function start(
    options: Omit<ModelServerOptions, 'backend'> & { backend?: ModelServerOptions['backend'] },
  ) {
    const server = await startModelServer({ backend: new EchoBackend(4), ...options });
    const client = new SageMakerRuntimeClient({ ...localClientConfig(server.url), maxAttempts: 1 });
    started.push({ server, client });
    return { server, client };
  }

  afterEach(async () => {
    for (const { server, client } of started.splice(0)) {
      client.destroy();
      await server.close();
    }
  });

  it('throttles beyond capacity as SageMaker does, so the real client raises ThrottlingException', async () => {
    const gate = sleepGate();
    const { server, client } = await start({ gpu: { capacity: 1, latencyMsFixed: 50, sleep: gate.sleep } });
    const running = client.send(invoke(['first']));
    await until(() => gate.held === 1, 'the first batch to hold the only slot');

    const error = await client.send(invoke(['second'])).catch((e: unknown) => e);

    expect(error).toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    expect((error as Error).message).toMatch(/Rate exceeded/);
    gate.openAll();
    expect(vectorsOf((await running).Body)).toEqual([[0.005, 1, 0, 0]]);
    expect(server.stats()).toMatchObject({ requests: 2, served: 1, throttled: 1, failed: 0 });
  });

  it('answers a throttle on the wire with HTTP 400, x-amzn-ErrorType ThrottlingException and a JSON message', async () => {
    const gate = sleepGate();
    const { server } = await start({ gpu: { capacity: 1, latencyMsFixed: 50, sleep: gate.sleep } });
    const url = `${server.url}/endpoints/sluice-embed/invocations`;
    const running = fetch(url, { method: 'POST', body: '{"inputs":["a"]}' });
    await until(() => gate.held === 1, 'the first batch to hold the only slot');

    const throttled = await fetch(url, { method: 'POST', body: '{"inputs":["b"]}' });

    expect(throttled.status).toBe(400);
    expect(throttled.headers.get('x-amzn-errortype')).toBe('ThrottlingException:');
    expect(await throttled.json()).toEqual({ message: expect.stringMatching(/Rate exceeded/) });
    gate.openAll();
    expect((await running).status).toBe(200);
  });

  it('lets up to `queue` requests wait for a slot, then throttles', async () => {
    const gate = sleepGate();
    const { server, client } = await start({
      gpu: { capacity: 1, queue: 1, latencyMsFixed: 50, sleep: gate.sleep },
    });
    const first = client.send(invoke(['first']));
    await until(() => gate.held === 1, 'the first batch to run');
    const second = client.send(invoke(['second']));
    await until(() => server.stats().gpu?.waiting === 1, 'the second batch to wait');

    const third = await client.send(invoke(['third'])).catch((e: unknown) => e);

    expect(third).toMatchObject({ name: 'ThrottlingException' });
    gate.openAll();
    await first;
    await until(() => gate.held === 1, 'the waiting batch to take the slot');
    gate.openAll();
    expect(vectorsOf((await second).Body)).toHaveLength(1);
    const gpu = server.stats().gpu!;
    expect(gpu).toMatchObject({ admitted: 2, throttled: 1, peakRunning: 1, peakWaiting: 1, waiting: 0 });
    expect(gpu.queuedMs).toBeGreaterThan(0);
  });

  it('answers a full GPU on the container routes as TEI does: 429, model overloaded', async () => {
    const gate = sleepGate();
    const { server } = await start({ gpu: { capacity: 1, latencyMsFixed: 50, sleep: gate.sleep } });
    const running = fetch(`${server.url}/invocations`, { method: 'POST', body: '{"inputs":["a"]}' });
    await until(() => gate.held === 1, 'the first batch to hold the only slot');

    const throttled = await fetch(`${server.url}/embed`, { method: 'POST', body: '{"inputs":["b"]}' });

    expect(throttled.status).toBe(429);
    expect(await throttled.json()).toEqual({ error: 'Model is overloaded', error_type: 'overloaded' });
    gate.openAll();
    expect((await running).status).toBe(200);
  });

  it('reports requests, throttles and padded tokens served on GET /stats', async () => {
    const { server, client } = await start({ gpu: { capacity: 4, latencyMsPerToken: 0.001 } });
    const inputs = ['a longer sentence about dead-letter queues', 'short'];
    await client.send(invoke(inputs));
    await fetch(`${server.url}/invocations`, { method: 'POST', body: '{"inputs": 5}' });

    const stats = (await (await fetch(`${server.url}/stats`)).json()) as Record<string, unknown>;

    const counter = new EstimatingTokenCounter();
    expect(stats).toMatchObject({
      model: 'sluice-echo-v1',
      requests: 2,
      served: 1,
      throttled: 0,
      failed: 1,
      inputs: 2,
      gpu: {
        capacity: 4,
        queue: 0,
        admitted: 1,
        paddedTokens: Math.max(...inputs.map((t) => counter.count(t))) * 2,
        running: 0,
      },
    });
    expect((stats.gpu as { busyMs: number }).busyMs).toBeGreaterThan(0);
  });

  it('without a simulation, serves every request at once and reports no GPU', async () => {
    const { server, client } = await start({ backend: new HashEmbedder(8) });
    const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => client.send(invoke([`text ${i}`]))));

    expect(outs.every((o) => vectorsOf(o.Body)[0]!.length === 8)).toBe(true);
    const stats = server.stats();
    expect(stats).toMatchObject({ model: 'sluice-hash-embed-v1', requests: 10, served: 10, throttled: 0 });
    expect(stats.gpu).toBeUndefined();
  });

  it('serves the echo backend: [length/1000, 1, 0, ...] per input, the same every time', async () => {
    const { client } = await start({ backend: new EchoBackend(5) });
    const text = 'x'.repeat(250);

    const out = vectorsOf((await client.send(invoke([text, '', text]))).Body);

    expect(out).toEqual([
      [0.25, 1, 0, 0, 0],
      [0, 1, 0, 0, 0],
      [0.25, 1, 0, 0, 0],
    ]);
    expect(new EchoBackend(3).description).toMatch(/not a model/);
  });

  it('receives a batch over 6 MB from the endpoint client as requests within its limit', async () => {
    const { server, client } = await start({});
    const endpoint = new SageMakerEmbeddingEndpoint({
      client,
      endpointName: 'sluice-embed',
      maxRetries: 0,
      timeoutMs: 30_000,
    });
    const inputs = Array.from({ length: 4 }, (_, i) => 'z'.repeat(2_000_000 + i * 1000));
    const stats: CallStats = { endpointCalls: 0, throttled: 0, retries: 0 };

    const vectors = await endpoint.embed(inputs, stats);

    expect(vectors.map((v) => v[0])).toEqual([2000, 2001, 2002, 2003]);
    expect(server.stats()).toMatchObject({ requests: 2, served: 2, failed: 0 });
  });

  it('gets every batch of the adaptive endpoint client through a GPU that throttles, counting each throttle once', async () => {
    const { server, client } = await start({ gpu: { capacity: 2, latencyMsFixed: 20 } });
    const limiter = new AdaptiveLimiter({ initialLimit: 6, maxLimit: 8 });
    const endpoint = new SageMakerEmbeddingEndpoint({
      client,
      endpointName: 'sluice-embed',
      maxRetries: 50,
      timeoutMs: 10_000,
      baseDelayMs: 1,
      maxDelayMs: 20,
      limiter,
    });
    const stats: CallStats = { endpointCalls: 0, throttled: 0, retries: 0 };

    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => endpoint.embed(['y'.repeat(i * 10)], stats)),
    );

    expect(results.map((r) => r[0]![0])).toEqual(Array.from({ length: 24 }, (_, i) => (i * 10) / 1000));
    const served = server.stats();
    expect(served.gpu).toMatchObject({ admitted: 24, peakRunning: 2 });
    expect(stats.throttled).toBeGreaterThan(0);
    expect(served.throttled).toBe(stats.throttled);
    expect(limiter.stats().throttles).toBe(stats.throttled);
    expect(stats.endpointCalls).toBe(24 + stats.throttled);
  });
});
