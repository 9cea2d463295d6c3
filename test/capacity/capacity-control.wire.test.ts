import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerCapacityControl } from '../../shared/adapters/aws/sagemaker-capacity-control.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';

const COMPONENT = inferenceComponentNameOf('docs-embed');

/**
 * The control adapter with the real SageMakerClient against the local model server's
 * emulated control plane (awsJson1_1 over HTTP on 127.0.0.1): every state the sweeper and
 * plan meet, on the wire.
 */
describe('SageMakerCapacityControl against the local model server', () => {
  let server: ModelServer;
  let client: SageMakerClient;
  let clock: number;

  beforeEach(async () => {
    clock = Date.parse('2026-12-07T03:00:00.000Z');
    server = await startModelServer({
      backend: new HashEmbedder(16),
      capacity: {
        scaleToZero: true,
        warmupSeconds: 120,
        scaleInSeconds: 30,
        componentName: COMPONENT,
        now: () => clock,
      },
    });
    client = new SageMakerClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
  });

  afterEach(async () => {
    client.destroy();
    await server.close();
  });

  it('reads zero copies, asks for copies, sees them warm up and serve, then scales in', async () => {
    const control = new SageMakerCapacityControl({ client });
    expect(await control.describe(COMPONENT)).toEqual({
      desiredCopies: 0,
      currentCopies: 0,
      status: 'InService',
    });

    expect(await control.setCopies(COMPONENT, 2)).toEqual({ applied: true });
    expect(await control.describe(COMPONENT)).toEqual({
      desiredCopies: 2,
      currentCopies: 0,
      status: 'Updating',
    });

    // While the copies start, a change is refused: left to the next sweep, not an error.
    const busy = await control.setCopies(COMPONENT, 3);
    expect(busy.applied).toBe(false);

    clock += 120_000;
    expect(await control.describe(COMPONENT)).toEqual({
      desiredCopies: 2,
      currentCopies: 2,
      status: 'InService',
    });

    expect(await control.setCopies(COMPONENT, 0)).toEqual({ applied: true });
    expect(await control.describe(COMPONENT)).toMatchObject({ desiredCopies: 0, currentCopies: 0 });
  });

  it('fails, not retryable, for a component the endpoint does not have', async () => {
    const control = new SageMakerCapacityControl({ client });
    await expect(control.describe('other-model')).rejects.toMatchObject({
      name: 'CapacityControlError',
      retryable: false,
    });
    await expect(control.setCopies('other-model', 1)).rejects.toMatchObject({ retryable: false });
  });
});
