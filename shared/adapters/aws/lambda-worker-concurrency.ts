import {
  GetEventSourceMappingCommand,
  type LambdaClient,
  UpdateEventSourceMappingCommand,
} from '@aws-sdk/client-lambda';
import { WorkerConcurrencyError } from '../../capacity/errors.ts';
import type { SetWorkersOutcome, WorkerConcurrency } from '../../capacity/worker-concurrency.ts';
import { awsErrorName, httpStatusOf, isAwsError, isNetworkError } from './aws-error.ts';

export interface LambdaWorkerConcurrencyOptions {
  /** The Lambda client, created once per process (the SDK's standard retries cover throttling). */
  readonly client: LambdaClient;
  /** UUID of the work queue's event source mapping (`SLUICE_WORK_EVENT_SOURCE_ID`). */
  readonly eventSourceId: string;
}

/**
 * (secondary adapter) WorkerConcurrency over the work queue's SQS event source mapping:
 * reads and sets `ScalingConfig.MaximumConcurrency` (2 to 1,000) with
 * `GetEventSourceMapping` and `UpdateEventSourceMapping` on that one mapping, the only
 * Lambda calls the role allows (`lambda:GetEventSourceMapping`, `lambda:UpdateEventSourceMapping`
 * on `arn:<partition>:lambda:<region>:<account>:event-source-mapping:<UUID>`).
 *
 * The update is unconditional: `UpdateEventSourceMapping` takes no revision id or expected
 * value (Lambda's `RevisionId` guards functions, aliases and policies; a mapping has none),
 * so the last set wins. The core checks every set after it lands (`raiseWorkers`).
 *
 * Failure modes:
 * - `ResourceInUseException` (the mapping is `Creating` or `Updating`: an earlier change,
 *   or a deploy, still under way) and `ResourceConflictException` ("another operation is in
 *   progress") are no fault: `applied: false` (busy); a raise waits it out for a few seconds
 *   and sets again (`raiseWorkers`, `busy-retry.ts`), then leaves it to the next sweep;
 * - `ResourceNotFoundException` and `AccessDeniedException` are errors no retry fixes;
 * - `TooManyRequestsException`, `ServiceException` (5xx) and network errors are retried by
 *   the SDK; past its attempts they are `WorkerConcurrencyError` with `retryable: true`.
 */
export class LambdaWorkerConcurrency implements WorkerConcurrency {
  private readonly client: LambdaClient;
  private readonly eventSourceId: string;

  constructor(options: LambdaWorkerConcurrencyOptions) {
    this.client = options.client;
    this.eventSourceId = options.eventSourceId;
  }

  async current(): Promise<number | undefined> {
    try {
      const out = await this.client.send(new GetEventSourceMappingCommand({ UUID: this.eventSourceId }));
      return out.ScalingConfig?.MaximumConcurrency;
    } catch (error) {
      throw this.failure('read the limit of', error);
    }
  }

  async set(maximum: number): Promise<SetWorkersOutcome> {
    try {
      await this.client.send(
        new UpdateEventSourceMappingCommand({
          UUID: this.eventSourceId,
          ScalingConfig: { MaximumConcurrency: maximum },
        }),
      );
      return { applied: true };
    } catch (error) {
      if (isAwsError(error, 'ResourceInUseException', 'ResourceConflictException'))
        return { applied: false, reason: firstLine(error) || (awsErrorName(error) ?? 'busy') };
      throw this.failure(`set ${maximum} workers on`, error);
    }
  }

  private failure(action: string, error: unknown): WorkerConcurrencyError {
    const name = awsErrorName(error) ?? 'Error';
    const status = httpStatusOf(error);
    const retryable =
      isNetworkError(error) ||
      isAwsError(error, 'TooManyRequestsException', 'ThrottlingException', 'ServiceException') ||
      (status !== undefined && status >= 500);
    const hint = isAwsError(error, 'AccessDeniedException')
      ? ': the function role needs lambda:GetEventSourceMapping and lambda:UpdateEventSourceMapping on it'
      : isAwsError(error, 'ResourceNotFoundException')
        ? ': SLUICE_WORK_EVENT_SOURCE_ID names no mapping; deploy the stack again'
        : '';
    return new WorkerConcurrencyError(
      `cannot ${action} the work event source ${this.eventSourceId} (${name}: ${firstLine(error)})${hint}`,
      retryable,
      { cause: error },
    );
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
