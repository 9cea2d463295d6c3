import 'aws-sdk-client-mock-vitest/extend';
import {
  GetEventSourceMappingCommand,
  LambdaClient,
  ResourceConflictException,
  ResourceInUseException,
  ResourceNotFoundException,
  ServiceException,
  TooManyRequestsException,
  UpdateEventSourceMappingCommand,
} from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { LambdaWorkerConcurrency } from '../../shared/adapters/aws/lambda-worker-concurrency.ts';
import { WorkerConcurrencyError } from '../../shared/capacity/errors.ts';

const lambda = mockClient(LambdaClient);
const UUID = '6d9bce8e-836b-461a-b1e9-da6b9ad6f4b2';

const adapter = () =>
  new LambdaWorkerConcurrency({ client: new LambdaClient({ region: 'us-east-1' }), eventSourceId: UUID });

const metadata = (status: number) => ({ $metadata: { httpStatusCode: status } });

/** Lambda's exceptions as the SDK raises them (AccessDeniedException is not modelled: a plain ServiceException shape). */
const errors = {
  ResourceInUseException: (message: string) => new ResourceInUseException({ message, ...metadata(400) }),
  ResourceConflictException: (message: string) =>
    new ResourceConflictException({ message, ...metadata(409) }),
  ResourceNotFoundException: (message: string) =>
    new ResourceNotFoundException({ message, ...metadata(404) }),
  TooManyRequestsException: (message: string) =>
    new TooManyRequestsException({ message, Reason: 'CallerRateLimitExceeded', ...metadata(429) }),
  ServiceException: (message: string) => new ServiceException({ message, ...metadata(500) }),
  AccessDeniedException: (message: string) =>
    Object.assign(new Error(message), { name: 'AccessDeniedException', $fault: 'client', ...metadata(403) }),
};

describe('LambdaWorkerConcurrency', () => {
  afterEach(() => {
    lambda.reset();
  });

  it('reads ScalingConfig.MaximumConcurrency of the one mapping (GetEventSourceMapping)', async () => {
    lambda
      .on(GetEventSourceMappingCommand, { UUID })
      .resolves({ UUID, State: 'Enabled', ScalingConfig: { MaximumConcurrency: 5 } });
    expect(await adapter().current()).toBe(5);
    expect(lambda).toHaveReceivedCommandTimes(GetEventSourceMappingCommand, 1);
    expect(lambda).toHaveReceivedCommandWith(GetEventSourceMappingCommand, { UUID });
    expect(lambda).not.toHaveReceivedCommand(UpdateEventSourceMappingCommand);
  });

  it('reads no limit as undefined (the mapping scales to the account concurrency)', async () => {
    lambda.on(GetEventSourceMappingCommand).resolves({ UUID, State: 'Enabled' });
    expect(await adapter().current()).toBeUndefined();
  });

  it('sets the limit with UpdateEventSourceMapping ScalingConfig, and nothing else of the mapping', async () => {
    lambda.on(UpdateEventSourceMappingCommand).resolves({ UUID, State: 'Updating' });
    expect(await adapter().set(2)).toEqual({ applied: true });
    expect(lambda.commandCalls(UpdateEventSourceMappingCommand).map((call) => call.args[0].input)).toEqual([
      { UUID, ScalingConfig: { MaximumConcurrency: 2 } },
    ]);
    expect(lambda).not.toHaveReceivedCommand(GetEventSourceMappingCommand);
  });

  it.each(['ResourceInUseException', 'ResourceConflictException'] as const)(
    'a mapping busy with an earlier change or a deploy (%s) is not applied, and no error',
    async (name) => {
      lambda
        .on(UpdateEventSourceMappingCommand)
        .rejects(errors[name]('The operation cannot be performed at this time.\nThe mapping is Updating.'));
      expect(await adapter().set(4)).toEqual({
        applied: false,
        reason: 'The operation cannot be performed at this time.',
      });
    },
  );

  it.each([
    [
      'AccessDeniedException',
      false,
      ': the function role needs lambda:GetEventSourceMapping and lambda:UpdateEventSourceMapping on it',
    ],
    [
      'ResourceNotFoundException',
      false,
      ': SLUICE_WORK_EVENT_SOURCE_ID names no mapping; deploy the stack again',
    ],
    ['TooManyRequestsException', true, ''],
    ['ServiceException', true, ''],
  ] as const)(
    '%s is a WorkerConcurrencyError (retryable: %s) naming the mapping',
    async (name, retryable, hint) => {
      lambda.on(UpdateEventSourceMappingCommand).rejects(errors[name](`${name} message`));
      lambda.on(GetEventSourceMappingCommand).rejects(errors[name](`${name} message`));
      for (const [call, action] of [
        [() => adapter().set(3), 'set 3 workers on'],
        [() => adapter().current(), 'read the limit of'],
      ] as const) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WorkerConcurrencyError);
        expect(error).toMatchObject({ retryable });
        expect((error as Error).message).toBe(
          `cannot ${action} the work event source ${UUID} (${name}: ${name} message)${hint}`,
        );
      }
    },
  );

  it('a network error is retryable', async () => {
    lambda
      .on(GetEventSourceMappingCommand)
      .rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    await expect(adapter().current()).rejects.toMatchObject({ retryable: true });
  });
});
