import 'aws-sdk-client-mock-vitest/extend';
import {
  InternalFailure,
  InvokeEndpointCommand,
  ModelError as SageMakerModelError,
  SageMakerRuntimeClient,
  SageMakerRuntimeServiceException,
  ValidationError,
} from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SageMakerEmbeddingEndpoint,
  type SageMakerEmbeddingEndpointOptions,
} from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { EndpointThrottled, EndpointUnavailable, ModelError } from '../../shared/errors/errors.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';
import { blobBody } from '../support/sdk-bodies.ts';

const sagemaker = mockClient(SageMakerRuntimeClient);
const meta = (httpStatusCode: number) => ({ httpStatusCode });

const vectors = (count: number, dimension = 4) =>
  Array.from({ length: count }, (_, i) => Array.from({ length: dimension }, (_, j) => (i + 1) / (j + 2)));
const ok = (body: unknown) => ({
  Body: blobBody(JSON.stringify(body)) as never,
  ContentType: 'application/json',
});

const throttling = () =>
  new SageMakerRuntimeServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    message: 'Rate exceeded',
    $metadata: meta(400),
  });
const internalFailure = () =>
  new InternalFailure({ message: 'An internal failure occurred', $metadata: meta(500) });
const containerError = (status: number, message: string) =>
  new SageMakerModelError({
    message: `Received client error (${status}) from primary with message "${message}"`,
    OriginalStatusCode: status,
    OriginalMessage: message,
    $metadata: meta(424),
  });

function makeEndpoint(overrides: Partial<SageMakerEmbeddingEndpointOptions> = {}) {
  const delays: number[] = [];
  const endpoint = new SageMakerEmbeddingEndpoint({
    client: new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 }),
    endpointName: 'sluice-embed',
    maxRetries: 3,
    timeoutMs: 1000,
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
  const stats: CallStats = { endpointCalls: 0, throttled: 0, retries: 0 };
  return { endpoint, stats, delays };
}

describe('SageMakerEmbeddingEndpoint', () => {
  afterEach(() => {
    sagemaker.reset();
  });

  it('sends the inputs as a TEI JSON request and returns one vector per input', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(ok(vectors(2)));
    const { endpoint, stats } = makeEndpoint();

    const result = await endpoint.embed(['first chunk', 'second chunk'], stats);

    expect(result).toEqual(vectors(2));
    expect(sagemaker).toHaveReceivedCommandWith(InvokeEndpointCommand, {
      EndpointName: 'sluice-embed',
      ContentType: 'application/json',
      Accept: 'application/json',
    });
    const body = sagemaker.commandCalls(InvokeEndpointCommand)[0]!.args[0].input.Body as Uint8Array;
    expect(JSON.parse(new TextDecoder().decode(body))).toEqual({
      inputs: ['first chunk', 'second chunk'],
      truncate: true,
    });
    expect(stats).toEqual({ endpointCalls: 1, throttled: 0, retries: 0 });
  });

  it('makes no call for an empty batch', async () => {
    const { endpoint, stats } = makeEndpoint();
    expect(await endpoint.embed([], stats)).toEqual([]);
    expect(sagemaker).not.toHaveReceivedAnyCommand();
  });

  it('retries throttling with exponential backoff and full jitter, counting every attempt', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .rejectsOnce(throttling())
      .rejectsOnce(throttling())
      .resolves(ok(vectors(1)));
    const { endpoint, stats, delays } = makeEndpoint({ baseDelayMs: 100 });

    expect(await endpoint.embed(['a'], stats)).toEqual(vectors(1));

    expect(stats).toEqual({ endpointCalls: 3, throttled: 2, retries: 2 });
    expect(delays).toEqual([50, 100]); // 0.5 * 100 * 2^0, 0.5 * 100 * 2^1
  });

  it('caps the backoff at maxDelayMs before applying jitter', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(throttling());
    const { endpoint, stats, delays } = makeEndpoint({
      maxRetries: 5,
      baseDelayMs: 100,
      maxDelayMs: 300,
      random: () => 0.999,
    });

    await expect(endpoint.embed(['a'], stats)).rejects.toBeInstanceOf(EndpointThrottled);
    expect(delays.map(Math.round)).toEqual([100, 200, 300, 300, 300]);
  });

  it('throws EndpointThrottled with the last error as cause when throttling outlasts the retries', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(throttling());
    const { endpoint, stats } = makeEndpoint({ maxRetries: 2 });

    const error = await endpoint.embed(['a'], stats).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(EndpointThrottled);
    expect(error).toMatchObject({ name: 'EndpointThrottled', cause: { name: 'ThrottlingException' } });
    expect(stats).toEqual({ endpointCalls: 3, throttled: 3, retries: 2 });
  });

  it('retries 5xx failures and throws EndpointUnavailable once the retries are spent', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(internalFailure());
    const { endpoint, stats } = makeEndpoint({ maxRetries: 2 });

    const error = await endpoint.embed(['a'], stats).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(EndpointUnavailable);
    expect((error as Error).message).toContain('endpoint sluice-embed failed 3 attempts');
    expect((error as Error).cause).toBeInstanceOf(InternalFailure);
    expect(sagemaker).toHaveReceivedCommandTimes(InvokeEndpointCommand, 3);
    expect(stats).toEqual({ endpointCalls: 3, throttled: 0, retries: 2 });
  });

  it('retries a container that answers 503 (overloaded) as throttling', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .rejectsOnce(containerError(503, 'Model is overloaded'))
      .resolves(ok(vectors(1)));
    const { endpoint, stats } = makeEndpoint();

    expect(await endpoint.embed(['a'], stats)).toEqual(vectors(1));
    expect(stats).toEqual({ endpointCalls: 2, throttled: 1, retries: 1 });
  });

  it('does not retry a request the model refuses (container 4xx) and says why', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .rejects(containerError(400, 'Input validation error: inputs cannot be empty'));
    const { endpoint, stats } = makeEndpoint();

    const error = await endpoint.embed([''], stats).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({ name: 'ModelError', originalStatus: 400 });
    expect((error as Error).message).toContain('inputs cannot be empty');
    expect((error as Error).cause).toBeInstanceOf(SageMakerModelError);
    expect(stats).toEqual({ endpointCalls: 1, throttled: 0, retries: 0 });
  });

  it('does not retry a request SageMaker itself rejects (validation)', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .rejects(new ValidationError({ message: 'Endpoint sluice-embed not found', $metadata: meta(400) }));
    const { endpoint, stats } = makeEndpoint();

    await expect(endpoint.embed(['a'], stats)).rejects.toBeInstanceOf(ValidationError);
    expect(sagemaker).toHaveReceivedCommandTimes(InvokeEndpointCommand, 1);
  });

  it.each([
    ['the wrong number of vectors', vectors(1)],
    ['vectors of different lengths', [[0.1, 0.2], [0.3]]],
    ['something that is not a list', { error: 'oops' }],
    ['non-numeric values', [['a', 'b']]],
    [
      'a null inside the second vector',
      [
        [0.1, 0.2],
        [0.3, null],
      ],
    ],
  ])('retries a malformed response: %s', async (_, malformed) => {
    sagemaker
      .on(InvokeEndpointCommand)
      .resolvesOnce(ok(malformed))
      .resolves(ok(vectors(2)));
    const { endpoint, stats } = makeEndpoint();

    expect(await endpoint.embed(['a', 'b'], stats)).toEqual(vectors(2));
    expect(stats).toEqual({ endpointCalls: 2, throttled: 0, retries: 1 });
  });

  it('reports a response that stays malformed as EndpointUnavailable', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves({ Body: blobBody('<html>502</html>') as never });
    const { endpoint, stats } = makeEndpoint({ maxRetries: 1 });

    await expect(endpoint.embed(['a'], stats)).rejects.toThrow(EndpointUnavailable);
  });

  it('abandons an attempt that outlives timeoutMs and retries it; calls pass no options, so the cached middleware serves them', async () => {
    const optionsSeen: unknown[] = [];
    let call = 0;
    sagemaker.on(InvokeEndpointCommand).callsFake(() => {
      call += 1;
      // The first attempt hangs; the second answers.
      return call === 1 ? new Promise(() => {}) : ok(vectors(1));
    });
    const client = new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 });
    const send = client.send.bind(client);
    client.send = ((command: never, ...rest: unknown[]) => {
      optionsSeen.push(...rest);
      return send(command);
    }) as typeof client.send;
    const { endpoint, stats } = makeEndpoint({ client, timeoutMs: 20 });

    expect(await endpoint.embed(['a'], stats)).toEqual(vectors(1));

    expect(stats).toEqual({ endpointCalls: 2, throttled: 0, retries: 1 });
    expect(optionsSeen).toEqual([]);
  });

  it('gives up on an endpoint that never answers with EndpointUnavailable naming the timeout', async () => {
    sagemaker.on(InvokeEndpointCommand).callsFake(() => new Promise(() => {}));
    const { endpoint, stats } = makeEndpoint({ timeoutMs: 10, maxRetries: 1 });

    const error = await endpoint.embed(['a'], stats).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(EndpointUnavailable);
    expect((error as Error).message).toContain('no response within 10 ms');
    expect((error as Error).cause).toMatchObject({ name: 'TimeoutError' });
  });

  it('retries a dropped connection', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .rejectsOnce(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .resolves(ok(vectors(1)));
    const { endpoint, stats } = makeEndpoint();

    expect(await endpoint.embed(['a'], stats)).toEqual(vectors(1));
    expect(stats.retries).toBe(1);
  });
});
