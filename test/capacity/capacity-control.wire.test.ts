import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerCapacityControl } from '../../shared/adapters/aws/sagemaker-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { inferenceComponentNameOf, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { acquireRunCapacity } from '../../shared/capacity/run-capacity.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import { pipelineConfig } from '../core/factories.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

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

  it("a plan that meets the component Updating (an earlier run's copy warming) defers, and the sweep after the warm-up raises it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-busy-wire-'));
    try {
      const control = new SageMakerCapacityControl({ client });
      const leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
      const runs = new LocalRunStore(path.join(dir, 'runs'));
      const capacity = pipelineCapacityOf(
        pipelineConfig({
          endpoint: {
            name: 'docs-embed',
            dimension: 16,
            capacity: { maxCopies: 4, workPerSecondPerCopy: 1, targetRunSeconds: 60 },
          },
        }),
      )!;
      expect(capacity.componentName).toBe(COMPONENT);
      const start = new Date(clock);
      const planRun = async (copies: number) => {
        const { run, units } = aRunWithUnits(1, { startedAt: new Date(clock).toISOString() });
        await runs.createRun(run, units);
        return acquireRunCapacity({ leases, control }, capacity, run.runId, copies * 60, new Date(clock));
      };

      expect(await planRun(1)).toMatchObject({ raisedTo: 1 });
      clock += 10_000;
      // The first copy is still coming up (Updating): the second plan's raise is refused once and not waited on.
      const second = await planRun(2);
      expect(second.raisedTo).toBeUndefined();
      expect(second.error).toBeUndefined();
      expect(second.deferred).toMatch(
        /^the inference component is busy with a change that can take minutes \(not waited on\): Cannot update inference component while it is being updated \(warming\).*; the capacity sweeper raises the copies$/,
      );
      expect(server.capacity.stats().requests).toEqual([1]);

      clock = start.getTime() + 120_000;
      const [swept] = await sweepCapacity({ leases, control, runs }, [capacity], new Date(clock));
      expect(swept).toMatchObject({ copies: 3, set: { copies: 3, outcome: { applied: true } } });
      expect(await control.describe(COMPONENT)).toMatchObject({ desiredCopies: 3, currentCopies: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails, not retryable, for a copy count the API refuses, even while the component is Updating', async () => {
    const control = new SageMakerCapacityControl({ client });
    // AWS validates the request before it looks at the component: a bad value is never "busy".
    await expect(control.setCopies(COMPONENT, -1)).rejects.toMatchObject({
      name: 'CapacityControlError',
      retryable: false,
      message: `cannot set -1 copies of inference component ${COMPONENT} (ValidationException: 1 validation error detected: Value '-1' at 'desiredRuntimeConfig.copyCount' failed to satisfy constraint: Member must have value greater than or equal to 0)`,
    });
    expect(await control.setCopies(COMPONENT, 2)).toEqual({ applied: true });
    expect(await control.describe(COMPONENT)).toMatchObject({ status: 'Updating' });
    await expect(control.setCopies(COMPONENT, -1)).rejects.toMatchObject({ retryable: false });
    await expect(control.setCopies(COMPONENT, 1.5)).rejects.toMatchObject({
      name: 'CapacityControlError',
      retryable: false,
      message: expect.stringContaining('SerializationException'),
    });
    // While Updating, a good count is still refused as busy: left to the next sweep.
    expect(await control.setCopies(COMPONENT, 3)).toMatchObject({ applied: false });
    expect(server.capacity.stats().requests).toEqual([2]);
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
