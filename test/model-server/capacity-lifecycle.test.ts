import {
  DescribeInferenceComponentCommand,
  SageMakerClient,
  UpdateInferenceComponentRuntimeConfigCommand,
} from '@aws-sdk/client-sagemaker';
import {
  InvokeEndpointCommand,
  ModelNotReadyException,
  SageMakerRuntimeClient,
  ValidationError,
} from '@aws-sdk/client-sagemaker-runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeModelArgs } from '../../cli/commands/serve-model.ts';
import { type CapacityLifecycle, NO_CAPACITY_MESSAGE } from '../../cli/model-server/capacity-lifecycle.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerCapacityControl } from '../../shared/adapters/aws/sagemaker-capacity-control.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { EndpointWarming } from '../../shared/errors/errors.ts';

const COMPONENT = 'sluice-docs-embed-model';
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** A clock the test moves: warm-ups pass when the test says so, not after real seconds. */
function clock(start = 1_765_076_400_000) {
  let now = start;
  return { now: () => now, advance: (seconds: number) => (now += seconds * 1000) };
}

describe('the local model server simulating endpoint capacity', () => {
  let server: ModelServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(options: ConstructorParameters<typeof CapacityLifecycle>[0]) {
    server = await startModelServer({ backend: new HashEmbedder(8), capacity: options });
    const runtime = new SageMakerRuntimeClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
    });
    const control = new SageMakerClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
    });
    /** Names `component` in the call (null: names none). */
    const invoke = (component: string | null = COMPONENT) =>
      runtime.send(
        new InvokeEndpointCommand({
          EndpointName: 'sluice-docs-embed',
          ContentType: 'application/json',
          Body: new TextEncoder().encode(JSON.stringify({ inputs: ['hello'] })),
          ...(component === null ? {} : { InferenceComponentName: component }),
        }),
      );
    const describe = () =>
      control.send(new DescribeInferenceComponentCommand({ InferenceComponentName: COMPONENT }));
    const setCopies = (copies: number) =>
      control.send(
        new UpdateInferenceComponentRuntimeConfigCommand({
          InferenceComponentName: COMPONENT,
          DesiredRuntimeConfig: { CopyCount: copies },
        }),
      );
    return { runtime, control, invoke, describe, setCopies, server };
  }

  it('serves by default: one copy, InService', async () => {
    const { invoke, describe } = await start({});
    await expect(invoke()).resolves.toMatchObject({ $metadata: { httpStatusCode: 200 } });
    const out = await describe();
    expect(out).toMatchObject({
      InferenceComponentName: COMPONENT,
      InferenceComponentStatus: 'InService',
      EndpointName: 'sluice-docs-embed',
      RuntimeConfig: { DesiredCopyCount: 1, CurrentCopyCount: 1 },
    });
    expect(out.InferenceComponentArn).toMatch(/:inference-component\/sluice-docs-embed-model$/);
  });

  it('walks zero -> warming -> ready -> scaling in -> zero, answering each state as SageMaker does', async () => {
    const time = clock();
    const { invoke, describe, setCopies, server } = await start({
      scaleToZero: true,
      warmupSeconds: 120,
      scaleInSeconds: 10,
      componentName: COMPONENT,
      now: time.now,
    });

    // zero capacity: ValidationError (HTTP 400) with SageMaker's own message
    const cold = await invoke().catch((e: unknown) => e);
    expect(cold).toBeInstanceOf(ValidationError);
    expect((cold as ValidationError).message).toBe(NO_CAPACITY_MESSAGE);
    expect((cold as ValidationError).$metadata.httpStatusCode).toBe(400);
    expect(await describe()).toMatchObject({
      InferenceComponentStatus: 'InService',
      RuntimeConfig: { DesiredCopyCount: 0, CurrentCopyCount: 0 },
    });

    // warming: copies asked for, none serving yet; the same answer, and updates refused
    await expect(setCopies(2)).resolves.toMatchObject({
      InferenceComponentArn: expect.stringContaining(COMPONENT),
    });
    expect(await describe()).toMatchObject({
      InferenceComponentStatus: 'Updating',
      RuntimeConfig: { DesiredCopyCount: 2, CurrentCopyCount: 0 },
    });
    await expect(invoke()).rejects.toBeInstanceOf(ValidationError);
    await expect(setCopies(3)).rejects.toMatchObject({ name: 'ValidationException' });

    // ready once the warm-up has passed
    time.advance(120);
    await expect(invoke()).resolves.toMatchObject({ $metadata: { httpStatusCode: 200 } });
    expect(await describe()).toMatchObject({
      InferenceComponentStatus: 'InService',
      RuntimeConfig: { DesiredCopyCount: 2, CurrentCopyCount: 2 },
    });

    // scaling in: copies go at once, the component reports Updating for a while
    await setCopies(0);
    expect(await describe()).toMatchObject({
      InferenceComponentStatus: 'Updating',
      RuntimeConfig: { DesiredCopyCount: 0, CurrentCopyCount: 0 },
    });
    await expect(invoke()).rejects.toBeInstanceOf(ValidationError);
    time.advance(10);
    expect(await describe()).toMatchObject({ InferenceComponentStatus: 'InService' });
    expect(server.stats().capacity).toMatchObject({ state: 'zero', noCapacity: 3, requests: [2, 0] });
  });

  it('refuses a call that does not name its inference component, and an unknown component', async () => {
    const { invoke, control } = await start({ componentName: COMPONENT });
    await expect(invoke(null)).rejects.toThrow(/Inference Component Name header is required/);
    await expect(invoke('another-model')).rejects.toBeInstanceOf(ValidationError);
    await expect(
      control.send(new DescribeInferenceComponentCommand({ InferenceComponentName: 'another-model' })),
    ).rejects.toMatchObject({
      name: 'ValidationException',
      message: expect.stringMatching(/Could not find/),
    });
  });

  it('brings a copy up on a call that finds none with wake-on-invoke, as the NoCapacityInvocationFailures alarm does', async () => {
    const time = clock();
    const { invoke, describe } = await start({
      scaleToZero: true,
      warmupSeconds: 60,
      wakeOnInvoke: true,
      now: time.now,
    });
    await expect(invoke()).rejects.toBeInstanceOf(ValidationError);
    expect(await describe()).toMatchObject({ RuntimeConfig: { DesiredCopyCount: 1, CurrentCopyCount: 0 } });
    time.advance(60);
    await expect(invoke()).resolves.toMatchObject({ $metadata: { httpStatusCode: 200 } });
  });

  it('answers a cold serverless endpoint with ModelNotReadyException (HTTP 429) until it is warm', async () => {
    const time = clock();
    const { invoke } = await start({ scaleToZero: true, serverless: true, warmupSeconds: 20, now: time.now });
    const cold = await invoke(null).catch((e: unknown) => e);
    expect(cold).toBeInstanceOf(ModelNotReadyException);
    expect((cold as ModelNotReadyException).$metadata.httpStatusCode).toBe(429);
    time.advance(20);
    await expect(invoke(null)).resolves.toMatchObject({ $metadata: { httpStatusCode: 200 } });
  });

  it("reads as warming in Sluice's endpoint client, and the capacity adapter drives it over the real SageMakerClient", async () => {
    const time = clock();
    const { runtime, control } = await start({
      scaleToZero: true,
      warmupSeconds: 30,
      componentName: COMPONENT,
      now: time.now,
    });
    const endpoint = new SageMakerEmbeddingEndpoint({
      client: runtime,
      endpointName: 'sluice-docs-embed',
      inferenceComponentName: COMPONENT,
      maxRetries: 3,
      timeoutMs: 5000,
    });
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };
    await expect(endpoint.embed(['a'], stats)).rejects.toBeInstanceOf(EndpointWarming);
    expect(stats).toEqual({ endpointCalls: 1, throttled: 0, retries: 0 });

    const adapter = new SageMakerCapacityControl({ client: control });
    await expect(adapter.setCopies(COMPONENT, 1)).resolves.toEqual({ applied: true });
    await expect(adapter.describe(COMPONENT)).resolves.toEqual({
      desiredCopies: 1,
      currentCopies: 0,
      status: 'Updating',
    });
    await expect(adapter.setCopies(COMPONENT, 2)).resolves.toMatchObject({ applied: false });
    time.advance(30);
    await expect(endpoint.embed(['a'], stats)).resolves.toHaveLength(1);
  });
});

describe('sluice serve-model capacity flags', () => {
  it('reads --scale-to-zero, --warmup-seconds and the rest into the lifecycle', async () => {
    const settings = await parseServeModelArgs([
      '--scale-to-zero',
      '--warmup-seconds',
      '2',
      '--wake-on-invoke',
      '--component-name',
      COMPONENT,
    ]);
    expect(settings.capacity).toEqual({
      scaleToZero: true,
      warmupSeconds: 2,
      wakeOnInvoke: true,
      componentName: COMPONENT,
    });
  });

  it('leaves the default server serving at once', async () => {
    expect((await parseServeModelArgs([])).capacity).toBeUndefined();
  });

  it('refuses a negative warm-up with a line naming the flag', async () => {
    await expect(parseServeModelArgs(['--warmup-seconds', '-1'])).rejects.toThrow(/--warmup-seconds/);
  });
});
