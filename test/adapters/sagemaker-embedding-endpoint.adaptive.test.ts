import 'aws-sdk-client-mock-vitest/extend';
import {
  InvokeEndpointCommand,
  type InvokeEndpointCommandInput,
  ModelError as SageMakerModelError,
  SageMakerRuntimeClient,
  SageMakerRuntimeServiceException,
} from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SageMakerEmbeddingEndpoint,
  type SageMakerEmbeddingEndpointOptions,
} from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { AdaptiveLimiter } from '../../shared/endpoint/adaptive-limiter.ts';
import { MAX_INVOKE_PAYLOAD_BYTES } from '../../shared/endpoint/payload-limit.ts';
import { ModelError } from '../../shared/errors/errors.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';
import { blobBody } from '../support/sdk-bodies.ts';

const sagemaker = mockClient(SageMakerRuntimeClient);

const throttling = () =>
  new SageMakerRuntimeServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    message: 'Rate exceeded',
    $metadata: { httpStatusCode: 400 },
  });
const refused = () =>
  new SageMakerModelError({
    message: 'Received client error (400) from primary with message "bad input"',
    OriginalStatusCode: 400,
    OriginalMessage: 'bad input',
    $metadata: { httpStatusCode: 424 },
  });

const inputsOf = (input: InvokeEndpointCommandInput): string[] =>
  (JSON.parse(new TextDecoder().decode(input.Body as Uint8Array)) as { inputs: string[] }).inputs;

/** Answers each input with `[its leading number, 1]`, so tests can check order. */
const echoNumbers = (input: InvokeEndpointCommandInput) => ({
  Body: blobBody(JSON.stringify(inputsOf(input).map((text) => [Number.parseInt(text, 10), 1]))) as never,
});

const newStats = (): CallStats => ({ endpointCalls: 0, throttled: 0, retries: 0 });

function makeEndpoint(overrides: Partial<SageMakerEmbeddingEndpointOptions> = {}) {
  return new SageMakerEmbeddingEndpoint({
    client: new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 }),
    endpointName: 'sluice-embed',
    maxRetries: 3,
    timeoutMs: 1000,
    sleep: async () => {},
    random: () => 0.5,
    ...overrides,
  });
}

describe('SageMakerEmbeddingEndpoint with an adaptive limiter', () => {
  afterEach(() => {
    sagemaker.reset();
  });

  it('sends every attempt through the limiter, and a throttle halves its limit', async () => {
    sagemaker.on(InvokeEndpointCommand).rejectsOnce(throttling()).callsFake(echoNumbers);
    const limiter = new AdaptiveLimiter({ initialLimit: 4, maxLimit: 8 });
    const stats = newStats();

    expect(await makeEndpoint({ limiter }).embed(['1 a', '2 b'], stats)).toEqual([
      [1, 1],
      [2, 1],
    ]);

    expect(stats).toEqual({ endpointCalls: 2, throttled: 1, retries: 1 });
    // 4 -> 2 on the throttle; the successful retry then starts the climb back (fast recovery).
    expect(limiter.stats()).toMatchObject({
      lowestLimit: 2,
      limit: 3,
      throttles: 1,
      succeeded: 1,
      backoffs: 1,
      inFlight: 0,
    });
  });

  it('feeds a container 429 or 503 (relayed as ModelError) to the limiter as throttling', async () => {
    const overloaded = (status: number) =>
      new SageMakerModelError({
        message: 'overloaded',
        OriginalStatusCode: status,
        $metadata: { httpStatusCode: 424 },
      });
    sagemaker
      .on(InvokeEndpointCommand)
      .rejectsOnce(overloaded(429))
      .rejectsOnce(overloaded(503))
      .callsFake(echoNumbers);
    const limiter = new AdaptiveLimiter({ initialLimit: 2, maxLimit: 2 });

    await makeEndpoint({ limiter }).embed(['1'], newStats());

    expect(limiter.stats()).toMatchObject({ throttles: 2, limit: 1 });
  });

  it('holds no slot while it sleeps between attempts', async () => {
    sagemaker.on(InvokeEndpointCommand).rejectsOnce(throttling()).callsFake(echoNumbers);
    const limiter = new AdaptiveLimiter({ initialLimit: 2, maxLimit: 2 });
    const inFlightWhileSleeping: number[] = [];
    const endpoint = makeEndpoint({
      limiter,
      sleep: async () => {
        inFlightWhileSleeping.push(limiter.stats().inFlight);
      },
    });

    await endpoint.embed(['1'], newStats());

    expect(inFlightWhileSleeping).toEqual([0]);
  });

  it('counts an attempt timeout as overload for the limiter, not as a throttle in the run stats', async () => {
    let call = 0;
    sagemaker.on(InvokeEndpointCommand).callsFake((input: InvokeEndpointCommandInput) => {
      call += 1;
      return call === 1 ? new Promise(() => {}) : echoNumbers(input);
    });
    const limiter = new AdaptiveLimiter({ initialLimit: 4, maxLimit: 4 });
    const stats = newStats();

    await makeEndpoint({ limiter, timeoutMs: 20 }).embed(['7'], stats);

    expect(stats).toEqual({ endpointCalls: 2, throttled: 0, retries: 1 });
    expect(limiter.stats()).toMatchObject({ throttles: 1, backoffs: 1, lowestLimit: 2 });
  });

  it('leaves the limit alone when the model refuses a batch', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(refused());
    const limiter = new AdaptiveLimiter({ initialLimit: 4, maxLimit: 4 });

    await expect(makeEndpoint({ limiter }).embed(['1'], newStats())).rejects.toBeInstanceOf(ModelError);

    expect(limiter.stats()).toMatchObject({ limit: 4, otherFailures: 1, throttles: 0, inFlight: 0 });
  });

  it('keeps the attempts of all concurrent batches within the limit', async () => {
    let inFlight = 0;
    let peak = 0;
    sagemaker.on(InvokeEndpointCommand).callsFake(async (input: InvokeEndpointCommandInput) => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight -= 1;
      return echoNumbers(input);
    });
    const limiter = new AdaptiveLimiter({ initialLimit: 3, maxLimit: 3 });
    const endpoint = makeEndpoint({ limiter });
    const stats = newStats();

    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => endpoint.embed([`${i}`], stats)));

    expect(results.map((r) => r[0]![0])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(peak).toBe(3);
    expect(stats.endpointCalls).toBe(20);
  });
});

describe('SageMakerEmbeddingEndpoint payload limit', () => {
  afterEach(() => {
    sagemaker.reset();
  });

  it('splits a batch whose request would pass the limit into halves, keeping the vectors in order', async () => {
    sagemaker.on(InvokeEndpointCommand).callsFake(echoNumbers);
    const inputs = Array.from({ length: 9 }, (_, i) => `${i} ${'x'.repeat(40)}`);
    const stats = newStats();

    const vectors = await makeEndpoint({ maxPayloadBytes: 200 }).embed(inputs, stats);

    expect(vectors.map((v) => v[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const bodies = sagemaker
      .commandCalls(InvokeEndpointCommand)
      .map((c) => c.args[0].input.Body as Uint8Array);
    expect(bodies.every((b) => b.byteLength <= 200)).toBe(true);
    expect(bodies.map((b) => inputsOf({ Body: b } as InvokeEndpointCommandInput).length).sort()).toEqual([
      2, 2, 2, 3,
    ]);
    expect(stats.endpointCalls).toBe(4);
  });

  it("keeps requests under SageMaker's 6 MB by default", async () => {
    sagemaker.on(InvokeEndpointCommand).callsFake(echoNumbers);
    // Four inputs of 2 MB: 8 MB in one request, so two requests of 4 MB.
    const inputs = Array.from({ length: 4 }, (_, i) => `${i} ${'y'.repeat(2_000_000)}`);

    const vectors = await makeEndpoint().embed(inputs, newStats());

    expect(vectors.map((v) => v[0])).toEqual([0, 1, 2, 3]);
    const sizes = sagemaker
      .commandCalls(InvokeEndpointCommand)
      .map((c) => (c.args[0].input.Body as Uint8Array).byteLength);
    expect(sizes).toHaveLength(2);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_INVOKE_PAYLOAD_BYTES);
  });

  it('refuses one input that alone passes the limit as a ModelError (413), without a call', async () => {
    const error = await makeEndpoint({ maxPayloadBytes: 100 })
      .embed(['z'.repeat(200)], newStats())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({ originalStatus: 413 });
    expect((error as Error).message).toMatch(/over the 100-byte payload limit/);
    expect(sagemaker).not.toHaveReceivedAnyCommand();
  });

  it('lets a refusal in one half fail the whole batch as a ModelError, so the caller can bisect it', async () => {
    sagemaker.on(InvokeEndpointCommand).callsFake((input: InvokeEndpointCommandInput) => {
      if (inputsOf(input).some((t) => t.includes('POISON'))) throw refused();
      return echoNumbers(input);
    });
    const inputs = ['0 ok', '1 ok', '2 POISON', '3 ok'].map((t) => t.padEnd(60, '.'));

    await expect(makeEndpoint({ maxPayloadBytes: 200 }).embed(inputs, newStats())).rejects.toBeInstanceOf(
      ModelError,
    );
  });
});
