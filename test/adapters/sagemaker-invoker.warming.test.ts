import 'aws-sdk-client-mock-vitest/extend';
import {
  InvokeEndpointCommand,
  ModelNotReadyException,
  SageMakerRuntimeClient,
  SageMakerRuntimeServiceException,
  ValidationError,
} from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { PipelineEndpointRegistry } from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { SageMakerScoringEndpoint } from '../../shared/adapters/aws/sagemaker-scoring-endpoint.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { AdaptiveLimiter } from '../../shared/endpoint/adaptive-limiter.ts';
import { EndpointThrottled, EndpointWarming, ModelError } from '../../shared/errors/errors.ts';
import type { CallStats } from '../../shared/ports/embedding-endpoint.ts';
import { blobBody } from '../support/sdk-bodies.ts';

const sagemaker = mockClient(SageMakerRuntimeClient);
const meta = (httpStatusCode: number) => ({ httpStatusCode });

/** SageMaker's answer on an inference component with no copies (docs/capacity.md). */
const NO_CAPACITY =
  'Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress (if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API.';
const noCapacity = () => new ValidationError({ message: NO_CAPACITY, $metadata: meta(400) });
const modelNotReady = () =>
  new ModelNotReadyException({
    message: "Either a serverless endpoint variant's resources are still being provisioned, or ...",
    $metadata: meta(429),
  });
const throttling = () =>
  new SageMakerRuntimeServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    message: 'Rate exceeded',
    $metadata: meta(400),
  });

const vectors = [[0.1, 0.2, 0.3]];
const ok = () => ({ Body: blobBody(JSON.stringify(vectors)) as never, ContentType: 'application/json' });

function embedding(options: { limiter?: AdaptiveLimiter; inferenceComponentName?: string } = {}) {
  const sleeps: number[] = [];
  const endpoint = new SageMakerEmbeddingEndpoint({
    client: new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 }),
    endpointName: 'sluice-docs-embed',
    maxRetries: 3,
    timeoutMs: 1000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
  const stats: CallStats = { endpointCalls: 0, throttled: 0, retries: 0 };
  return { endpoint, stats, sleeps };
}

describe('SageMakerInvoker on a cold endpoint', () => {
  afterEach(() => {
    sagemaker.reset();
  });

  it('reads an inference component with no copies as EndpointWarming, at once, without retrying', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(noCapacity());
    const { endpoint, stats, sleeps } = embedding();

    const error = await endpoint.embed(['a'], stats).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(EndpointWarming);
    expect((error as EndpointWarming).endpointName).toBe('sluice-docs-embed');
    expect((error as Error).message).toContain('has no capacity yet');
    expect(sagemaker).toHaveReceivedCommandTimes(InvokeEndpointCommand, 1);
    expect(stats).toEqual({ endpointCalls: 1, throttled: 0, retries: 0 });
    expect(sleeps).toEqual([]);
  });

  it('reads a serverless endpoint still provisioning (ModelNotReadyException, HTTP 429) as EndpointWarming, not throttling', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(modelNotReady());
    const { endpoint, stats } = embedding();

    await expect(endpoint.embed(['a'], stats)).rejects.toBeInstanceOf(EndpointWarming);
    expect(stats.throttled).toBe(0);
    expect(stats.retries).toBe(0);
  });

  it('does not lower the adaptive limit when the endpoint is warming', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(noCapacity());
    const limiter = new AdaptiveLimiter({ initialLimit: 8, maxLimit: 16 });
    const { endpoint, stats } = embedding({ limiter });

    await Promise.allSettled([1, 2, 3, 4].map(() => endpoint.embed(['a'], stats)));

    expect(limiter.stats().limit).toBe(8);
    expect(limiter.stats().inFlight).toBe(0);
  });

  it('still lowers the limit on throttling, to tell the two apart', async () => {
    sagemaker.on(InvokeEndpointCommand).rejects(throttling());
    const limiter = new AdaptiveLimiter({ initialLimit: 8, maxLimit: 16 });
    const { endpoint, stats } = embedding({ limiter });

    await expect(endpoint.embed(['a'], stats)).rejects.toBeInstanceOf(EndpointThrottled);
    expect(limiter.stats().limit).toBeLessThan(8);
  });

  it('keeps other validation errors fatal: only the no-capacity message means warming', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .rejects(new ValidationError({ message: 'Endpoint sluice-x not found', $metadata: meta(400) }));
    const { endpoint, stats } = embedding();

    const error = await endpoint.embed(['a'], stats).catch((e: unknown) => e);

    expect(error).not.toBeInstanceOf(EndpointWarming);
    expect(error).not.toBeInstanceOf(ModelError);
    expect((error as Error).name).toBe('ValidationError');
  });

  it('serves once capacity is up: warming, then vectors on the next call', async () => {
    sagemaker.on(InvokeEndpointCommand).rejectsOnce(noCapacity()).resolves(ok());
    const { endpoint, stats } = embedding();

    await expect(endpoint.embed(['a'], stats)).rejects.toBeInstanceOf(EndpointWarming);
    await expect(endpoint.embed(['a'], stats)).resolves.toEqual(vectors);
  });

  it('names the inference component on every call when the endpoint hosts one', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(ok());
    const { endpoint, stats } = embedding({ inferenceComponentName: 'sluice-docs-embed-model' });

    await endpoint.embed(['a'], stats);

    expect(sagemaker).toHaveReceivedCommandWith(InvokeEndpointCommand, {
      EndpointName: 'sluice-docs-embed',
      InferenceComponentName: 'sluice-docs-embed-model',
    });
  });

  it('sends no inference component name for an endpoint without one', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves({ Body: blobBody('0.5\n') as never });
    const scoring = new SageMakerScoringEndpoint({
      client: new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 }),
      endpointName: 'sluice-score',
      maxRetries: 0,
      timeoutMs: 1000,
    });

    await scoring.score('1,2\n', { endpointCalls: 0, throttled: 0, retries: 0 });

    const input = sagemaker.commandCalls(InvokeEndpointCommand)[0]!.args[0].input;
    expect(input.InferenceComponentName).toBeUndefined();
  });

  it("names the pipeline's run-scoped inference component through the endpoint registry", async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(ok());
    const config = parsePipelineConfig({
      name: 'docs',
      kind: 'embed',
      endpoint: { name: 'sluice-docs-embed', dimension: 3 },
    });
    const registry = new PipelineEndpointRegistry(
      new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 }),
    );

    await registry
      .endpointsFor(config)
      .endpoint!.embed(['a'], { endpointCalls: 0, throttled: 0, retries: 0 });

    expect(sagemaker).toHaveReceivedCommandWith(InvokeEndpointCommand, {
      EndpointName: 'sluice-docs-embed',
      InferenceComponentName: inferenceComponentNameOf('sluice-docs-embed'),
    });
  });
});
