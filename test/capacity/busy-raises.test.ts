import 'aws-sdk-client-mock-vitest/extend';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  GetEventSourceMappingCommand,
  InvalidParameterValueException,
  LambdaClient,
  ResourceInUseException,
  ResourceNotFoundException,
  TooManyRequestsException,
  UpdateEventSourceMappingCommand,
} from '@aws-sdk/client-lambda';
import {
  DescribeInferenceComponentCommand,
  SageMakerClient,
  UpdateInferenceComponentRuntimeConfigCommand,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LambdaWorkerConcurrency } from '../../shared/adapters/aws/lambda-worker-concurrency.ts';
import { SageMakerCapacityControl } from '../../shared/adapters/aws/sagemaker-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { type BusyRetryPolicy, DEFAULT_BUSY_RETRY } from '../../shared/capacity/busy-retry.ts';
import { pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { acquireRunCapacity, scaleInAtRelease } from '../../shared/capacity/run-capacity.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import { sweepWorkers, type WorkerScaling, workerScalingOf } from '../../shared/capacity/workers.ts';
import { pipelineConfig } from '../core/factories.ts';
import { aRunWithUnits, aSummary } from '../support/run-fixtures.ts';

const lambda = mockClient(LambdaClient);
const sagemaker = mockClient(SageMakerClient);
const UUID = '6d9bce8e-836b-461a-b1e9-da6b9ad6f4b2';

const T0 = Date.parse('2026-12-07T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

// Two workers per copy; a run of N x 60 units of work asks for N copies.
const docs = pipelineConfig({
  endpoint: {
    name: 'embed',
    dimension: 16,
    capacity: { maxCopies: 8, workersPerCopy: 2, workPerSecondPerCopy: 1, targetRunSeconds: 60 },
  },
  workers: { maxConcurrency: 64 },
});
const embed = pipelineCapacityOf(docs)!;
const COMPONENT = embed.componentName;

const meta = (status: number) => ({ $metadata: { httpStatusCode: status } });
/** What Lambda answers an update while the mapping is still Updating. */
const mappingBusy = () =>
  new ResourceInUseException({
    message: 'The operation cannot be performed at this time. The resource is currently in use.',
    ...meta(400),
  });
/** An error as the SDK raises it for an unmodelled error code (AccessDeniedException, SageMaker's ValidationException). */
const awsError = (name: string, message: string, status = 400) =>
  Object.assign(new Error(message), { name, $fault: 'client', ...meta(status) });
const componentBusy = 'Cannot update inference component while it is in Updating status.';

/**
 * The work queue's event source mapping, as Lambda holds it: the next `refusals` updates are
 * refused as busy (`onRefusal` runs as each is), then `failure` (if any) is thrown, then
 * updates apply.
 */
const mapping: { limit: number; refusals: number; failure?: Error; onRefusal?: () => void } = {
  limit: 2,
  refusals: 0,
};
/**
 * The inference component as SageMaker holds it: an update is refused unless it is InService;
 * an applied one leaves it Updating (`onUpdate` runs as it lands).
 */
const component: { status: string; desired: number; current: number; onUpdate?: () => Promise<void> } = {
  status: 'InService',
  desired: 0,
  current: 0,
};

/** Waits recorded on a clock that only they advance: no test sleeps. */
function recordedWaits(): { waits: number[]; policy: BusyRetryPolicy } {
  const waits: number[] = [];
  let clock = 0;
  const policy: BusyRetryPolicy = {
    ...DEFAULT_BUSY_RETRY,
    sleep: async (ms) => {
      waits.push(ms);
      clock += ms;
    },
    now: () => clock,
    random: () => 0.5,
  };
  return { waits, policy };
}

const updatesOfMapping = () =>
  lambda
    .commandCalls(UpdateEventSourceMappingCommand)
    .map((c) => c.args[0].input.ScalingConfig?.MaximumConcurrency);
const updatesOfComponent = () =>
  sagemaker
    .commandCalls(UpdateInferenceComponentRuntimeConfigCommand)
    .map((c) => c.args[0].input.DesiredRuntimeConfig?.CopyCount);

describe('a refused capacity update (busy) in plan, finalize and the sweeper (issue 14)', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let runs: LocalRunStore;
  let waits: number[];
  let scaling: WorkerScaling;
  const control = new SageMakerCapacityControl({ client: new SageMakerClient({ region: 'us-east-1' }) });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-busy-raises-'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
    Object.assign(mapping, { limit: 2, refusals: 0, failure: undefined, onRefusal: undefined });
    Object.assign(component, { status: 'InService', desired: 0, current: 0, onUpdate: undefined });
    lambda.on(GetEventSourceMappingCommand, { UUID }).callsFake(() => ({
      UUID,
      State: 'Enabled',
      ScalingConfig: { MaximumConcurrency: mapping.limit },
    }));
    lambda.on(UpdateEventSourceMappingCommand).callsFake((input) => {
      if (mapping.refusals > 0) {
        mapping.refusals -= 1;
        mapping.onRefusal?.();
        throw mappingBusy();
      }
      if (mapping.failure) throw mapping.failure;
      mapping.limit = input.ScalingConfig?.MaximumConcurrency ?? mapping.limit;
      return { UUID, State: 'Updating' };
    });
    sagemaker.on(DescribeInferenceComponentCommand).callsFake(() => ({
      InferenceComponentName: COMPONENT,
      InferenceComponentStatus: component.status,
      RuntimeConfig: { DesiredCopyCount: component.desired, CurrentCopyCount: component.current },
    }));
    sagemaker.on(UpdateInferenceComponentRuntimeConfigCommand).callsFake(async (input) => {
      if (component.status !== 'InService') throw awsError('ValidationException', componentBusy);
      component.desired = input.DesiredRuntimeConfig?.CopyCount ?? component.desired;
      component.status = 'Updating';
      await component.onUpdate?.();
      return {
        InferenceComponentArn: `arn:aws:sagemaker:us-east-1:123456789012:inference-component/${COMPONENT}`,
      };
    });
    const recorded = recordedWaits();
    waits = recorded.waits;
    const concurrency = new LambdaWorkerConcurrency({
      client: new LambdaClient({ region: 'us-east-1' }),
      eventSourceId: UUID,
    });
    scaling = workerScalingOf(concurrency, [docs], [embed], recorded.policy);
  });

  afterEach(async () => {
    lambda.reset();
    sagemaker.reset();
    await rm(dir, { recursive: true, force: true });
  });

  /** A running run (what plan stores before it takes its lease). */
  async function aRunningRun(startedAt = 0): Promise<string> {
    const { run, units } = aRunWithUnits(2, { startedAt: iso(startedAt) });
    await runs.createRun(run, units);
    return run.runId;
  }

  /** Plan's capacity step for a run of `copies` copies, with the workers following them. */
  const plan = async (runId: string, copies: number, seconds = 0) =>
    acquireRunCapacity({ leases, control, workers: scaling }, embed, runId, copies * 60, at(seconds));

  /** One pass of the capacity sweeper: the components, then the work event source. */
  async function sweeper(seconds: number) {
    const components = await sweepCapacity({ leases, control, runs }, [embed], at(seconds));
    const workers = await sweepWorkers({ leases, runs }, scaling, components, at(seconds));
    return { components, workers };
  }

  describe('the work event source (Lambda ResourceInUseException)', () => {
    it('refused twice, then accepted: plan raises the limit itself, with 3 updates and 2 jittered waits', async () => {
      mapping.refusals = 2;
      const acquired = await plan(await aRunningRun(), 3);
      expect(acquired.workers).toEqual({ before: 2, raisedTo: 6, busyWaits: 2 });
      expect(updatesOfMapping()).toEqual([6, 6, 6]);
      expect(mapping.limit).toBe(6);
      // Equal jitter at random 0.5: three quarters of 500 ms, then of 1,000 ms.
      expect(waits).toEqual([375, 750]);
    });

    it('after a wait, reads again and sets nothing when the update under way already raised it', async () => {
      // Another plan's raise to 10 is under way: this one is refused, and finds 10 enough.
      mapping.refusals = 1;
      mapping.onRefusal = () => {
        mapping.limit = 10;
      };
      const acquired = await plan(await aRunningRun(), 3);
      expect(acquired.workers).toEqual({ before: 2, busyWaits: 1 });
      expect(updatesOfMapping()).toEqual([6]);
      expect(mapping.limit).toBe(10);
    });

    it('busy past the budget: deferred with a reason that says so, and the next sweep raises it', async () => {
      mapping.refusals = 100;
      const runId = await aRunningRun();
      const acquired = await plan(runId, 3);
      // 375 + 750 + 1,500 + 3,000 + 3,000 ms waited; one more 3,000 ms wait would pass 10 s.
      expect(waits).toEqual([375, 750, 1500, 3000, 3000]);
      expect(updatesOfMapping()).toEqual([6, 6, 6, 6, 6, 6]);
      expect(acquired.workers).toEqual({
        before: 2,
        busyWaits: 5,
        deferred:
          'the work event source stayed busy through 5 waits (8.6 s): The operation cannot be performed at this time. The resource is currently in use.; the capacity sweeper raises the limit',
      });
      expect(mapping.limit).toBe(2);

      // The mapping's update is done by the next sweep, which sets what the live lease needs.
      mapping.refusals = 0;
      const { workers } = await sweeper(60);
      expect(workers).toMatchObject({
        before: 2,
        workers: 6,
        set: { workers: 6, outcome: { applied: true } },
      });
      expect(workers.error).toBeUndefined();
      expect(mapping.limit).toBe(6);
    });

    it("waits out a busy mapping in the sweeper's raise too (not in its lowering: a late lowering costs nothing)", async () => {
      // No live lease, the limit at 8: the sweep lowers it, refused once, and leaves it to the next sweep.
      mapping.limit = 8;
      mapping.refusals = 1;
      const lowering = (await sweeper(30)).workers;
      expect(lowering).toMatchObject({
        before: 8,
        workers: 2,
        set: { workers: 2, outcome: { applied: false } },
      });
      expect(lowering.busyWaits).toBeUndefined();
      expect(waits).toEqual([]);

      // A live 3-copy lease and the limit at 2: the sweep's raise is refused twice and waited out.
      mapping.limit = 2;
      const runId = await aRunningRun();
      await leases.take({ runId, component: COMPONENT, copies: 3, takenAt: iso(0) });
      mapping.refusals = 2;
      const raising = (await sweeper(60)).workers;
      expect(raising).toMatchObject({
        before: 2,
        workers: 6,
        set: { workers: 6, outcome: { applied: true } },
      });
      expect(raising.busyWaits).toBe(2);
      expect(waits).toEqual([375, 750]);
      expect(updatesOfMapping()).toEqual([2, 6, 6, 6]);
      expect(mapping.limit).toBe(6);
    });

    it.each([
      [
        'AccessDeniedException',
        awsError('AccessDeniedException', 'not authorized to perform lambda:UpdateEventSourceMapping', 403),
        `cannot set 6 workers on the work event source ${UUID} (AccessDeniedException: not authorized to perform lambda:UpdateEventSourceMapping): the function role needs lambda:GetEventSourceMapping and lambda:UpdateEventSourceMapping on it`,
      ],
      [
        'ResourceNotFoundException',
        new ResourceNotFoundException({
          message: 'The resource you requested does not exist.',
          ...meta(404),
        }),
        `cannot set 6 workers on the work event source ${UUID} (ResourceNotFoundException: The resource you requested does not exist.): SLUICE_WORK_EVENT_SOURCE_ID names no mapping; deploy the stack again`,
      ],
      [
        'InvalidParameterValueException (a bad value)',
        new InvalidParameterValueException({
          message: 'MaximumConcurrency must be between 2 and 1000',
          ...meta(400),
        }),
        `cannot set 6 workers on the work event source ${UUID} (InvalidParameterValueException: MaximumConcurrency must be between 2 and 1000)`,
      ],
      [
        'TooManyRequestsException (past the SDK retries)',
        new TooManyRequestsException({
          message: 'Rate exceeded',
          Reason: 'CallerRateLimitExceeded',
          ...meta(429),
        }),
        `cannot set 6 workers on the work event source ${UUID} (TooManyRequestsException: Rate exceeded)`,
      ],
    ])(
      '%s is not retried: after one busy wait, the error ends the raise with its one-line reason',
      async (_, failure, reason) => {
        mapping.refusals = 1;
        mapping.failure = failure;
        const acquired = await plan(await aRunningRun(), 3);
        expect(acquired.workers).toEqual({ before: 2, busyWaits: 1, error: reason });
        expect(updatesOfMapping()).toEqual([6, 6]);
        expect(waits).toEqual([375]);
      },
    );
  });

  describe('the inference component (SageMaker ValidationException while Updating)', () => {
    it('plan does not wait on a component whose instance is launching: deferred, and the next sweep raises it', async () => {
      // An earlier run's copy is coming up from 0 copies: an instance launches, minutes.
      const earlier = await aRunningRun();
      await leases.take({ runId: earlier, component: COMPONENT, copies: 1, takenAt: iso(0) });
      Object.assign(component, { status: 'Updating', desired: 1, current: 0 });
      const runId = await aRunningRun(10);
      const acquired = await plan(runId, 3, 10);
      expect(acquired.deferred).toBe(
        `the inference component is busy with a change that can take minutes (not waited on): ${componentBusy}; the capacity sweeper raises the copies`,
      );
      expect(acquired.error).toBeUndefined();
      expect(updatesOfComponent()).toEqual([4]);
      // The workers follow both leases at once; the copies were not waited for.
      expect(acquired.workers).toEqual({ before: 2, raisedTo: 8 });
      expect(waits).toEqual([]);

      // The instance is up: the next sweep sets the copies both live leases need.
      Object.assign(component, { status: 'InService', current: 1 });
      const { components } = await sweeper(70);
      expect(components[0]).toMatchObject({ copies: 4, set: { copies: 4, outcome: { applied: true } } });
      expect(components[0]?.error).toBeUndefined();
      expect(updatesOfComponent()).toEqual([4, 4]);
      expect(component.desired).toBe(4);
    });

    it("finalize's raise back after its own scale-in is refused (Updating): deferred, not waited on, raised by the sweeper", async () => {
      // A run finalize has just moved and released (no run likely to follow: it scales in).
      const { run, units } = aRunWithUnits(2, { startedAt: iso(0) });
      await runs.createRun(run, units);
      await leases.take({ runId: run.runId, component: COMPONENT, copies: 2, takenAt: iso(0) });
      await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(100) });
      await leases.release(COMPONENT, run.runId, iso(100), 'finalize');
      Object.assign(component, { desired: 2, current: 2 });
      // A plan takes its lease while finalize's scale-in lands, and finds 2 copies enough.
      let planned: string | undefined;
      component.onUpdate = async () => {
        component.onUpdate = undefined;
        planned = await aRunningRun(100);
        await leases.take({ runId: planned, component: COMPONENT, copies: 1, takenAt: iso(100) });
      };
      const scaled = await scaleInAtRelease({ leases, control }, embed);
      expect(scaled).toEqual({
        copies: 0,
        raiseDeferred: `the inference component is busy with a change that can take minutes (not waited on): ${componentBusy}; the capacity sweeper raises the copies`,
      });
      expect(updatesOfComponent()).toEqual([0, 1]);
      expect(waits).toEqual([]);

      component.status = 'InService';
      component.current = 0;
      const [swept] = await sweepCapacity({ leases, control, runs }, [embed], at(160));
      expect(swept).toMatchObject({ liveLeases: [planned], set: { copies: 1, outcome: { applied: true } } });
      expect(component.desired).toBe(1);
    });

    it('a value SageMaker refuses is an error, not a busy component: reported at once, never deferred', async () => {
      sagemaker
        .on(UpdateInferenceComponentRuntimeConfigCommand)
        .rejects(
          awsError(
            'ValidationException',
            "1 validation error detected: Value '9' at 'desiredRuntimeConfig.copyCount' failed to satisfy constraint: Member must have value less than or equal to 8",
          ),
        );
      const acquired = await plan(await aRunningRun(), 3);
      expect(acquired.deferred).toBeUndefined();
      expect(acquired.error).toBe(
        `cannot set 3 copies of inference component ${COMPONENT} (ValidationException: 1 validation error detected: Value '9' at 'desiredRuntimeConfig.copyCount' failed to satisfy constraint: Member must have value less than or equal to 8)`,
      );
      expect(updatesOfComponent()).toEqual([3]);
      expect(waits).toEqual([]);
    });
  });
});
