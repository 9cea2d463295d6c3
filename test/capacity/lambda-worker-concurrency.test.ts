import { describe, expect, it } from 'vitest';
import {
  type EventSourceMappingApi,
  LambdaWorkerConcurrency,
} from '../../shared/adapters/aws/lambda-worker-concurrency.ts';
import { WorkerConcurrencyError } from '../../shared/capacity/errors.ts';

const UUID = '6d9bce8e-836b-461a-b1e9-da6b9ad6f4b2';

/** An error as the SDK raises it: the exception's name and the HTTP status. */
function lambdaError(name: string, status: number, message = `${name} message`) {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
}

/** Answers as Lambda's GetEventSourceMapping / UpdateEventSourceMapping would; records the updates. */
function aClient(over: Partial<EventSourceMappingApi> = {}) {
  const updates: unknown[] = [];
  const client: EventSourceMappingApi = {
    getEventSourceMapping: async () => ({ UUID, State: 'Enabled', ScalingConfig: { MaximumConcurrency: 8 } }),
    updateEventSourceMapping: async (input) => {
      updates.push(input);
      return { UUID, State: 'Updating' };
    },
    ...over,
  };
  return { client, updates };
}

describe('LambdaWorkerConcurrency', () => {
  it('reads ScalingConfig.MaximumConcurrency of the one mapping', async () => {
    const asked: unknown[] = [];
    const { client } = aClient({
      getEventSourceMapping: async (input) => {
        asked.push(input);
        return { ScalingConfig: { MaximumConcurrency: 5 } };
      },
    });
    expect(await new LambdaWorkerConcurrency({ client, eventSourceId: UUID }).current()).toBe(5);
    expect(asked).toEqual([{ UUID }]);
  });

  it('reads no limit as undefined (the mapping scales to the account concurrency)', async () => {
    const { client } = aClient({ getEventSourceMapping: async () => ({ State: 'Enabled' }) });
    expect(await new LambdaWorkerConcurrency({ client, eventSourceId: UUID }).current()).toBeUndefined();
  });

  it('sets the limit with UpdateEventSourceMapping ScalingConfig', async () => {
    const { client, updates } = aClient();
    expect(await new LambdaWorkerConcurrency({ client, eventSourceId: UUID }).set(2)).toEqual({
      applied: true,
    });
    expect(updates).toEqual([{ UUID, ScalingConfig: { MaximumConcurrency: 2 } }]);
  });

  it.each([
    ['ResourceInUseException', 400],
    ['ResourceConflictException', 409],
  ])('a mapping busy with an earlier change (%s) is not applied, and no error', async (name, status) => {
    const { client } = aClient({
      updateEventSourceMapping: async () => {
        throw lambdaError(name, status, 'The operation cannot be performed at this time.');
      },
    });
    expect(await new LambdaWorkerConcurrency({ client, eventSourceId: UUID }).set(4)).toEqual({
      applied: false,
      reason: 'The operation cannot be performed at this time.',
    });
  });

  it.each([
    [
      'AccessDeniedException',
      403,
      false,
      'needs lambda:GetEventSourceMapping and lambda:UpdateEventSourceMapping',
    ],
    ['ResourceNotFoundException', 404, false, 'SLUICE_WORK_EVENT_SOURCE_ID names no mapping'],
    ['TooManyRequestsException', 429, true, ''],
    ['ServiceException', 500, true, ''],
  ])(
    '%s is a WorkerConcurrencyError (retryable: %s) naming the mapping',
    async (name, status, retryable, hint) => {
      const { client } = aClient({
        updateEventSourceMapping: async () => {
          throw lambdaError(name, status);
        },
        getEventSourceMapping: async () => {
          throw lambdaError(name, status);
        },
      });
      const adapter = new LambdaWorkerConcurrency({ client, eventSourceId: UUID });
      for (const call of [() => adapter.set(3), () => adapter.current()]) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WorkerConcurrencyError);
        expect(error).toMatchObject({ retryable });
        expect((error as Error).message).toContain(`work event source ${UUID} (${name}:`);
        expect((error as Error).message).toContain(hint);
      }
    },
  );

  it('a network error is retryable', async () => {
    const { client } = aClient({
      getEventSourceMapping: async () => {
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
    });
    await expect(
      new LambdaWorkerConcurrency({ client, eventSourceId: UUID }).current(),
    ).rejects.toMatchObject({
      retryable: true,
    });
  });
});
