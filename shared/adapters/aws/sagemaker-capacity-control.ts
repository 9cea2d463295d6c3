import {
  DescribeInferenceComponentCommand,
  type SageMakerClient,
  UpdateInferenceComponentRuntimeConfigCommand,
} from '@aws-sdk/client-sagemaker';
import { CapacityControlError } from '../../capacity/errors.ts';
import type { CapacityControl, ComponentCopies, SetCopiesOutcome } from '../../ports/capacity-control.ts';
import { awsErrorName, httpStatusOf, isAwsError, isNetworkError } from './aws-error.ts';

export interface SageMakerCapacityControlOptions {
  /**
   * The SageMaker control-plane client, created once per process (deployed: the SDK's
   * standard retries cover ThrottlingException; locally: `endpoint` is the model server,
   * which emulates these two calls).
   */
  readonly client: SageMakerClient;
}

/** SageMaker's words for an inference component it does not know (ValidationException). */
const NOT_FOUND = /could not find|not found|does not exist/i;
/**
 * AWS's words for a request whose values break the API's constraints (the service-wide
 * `ValidationException` form: "1 validation error detected: Value '-1' at
 * 'desiredRuntimeConfig.copyCount' failed to satisfy constraint: ..."): a bad value, which no
 * later try fixes, not a busy component.
 */
const BAD_VALUE = /validation errors? detected|failed to satisfy constraint/i;

/**
 * (secondary adapter) CapacityControl over the SageMaker control plane:
 * `DescribeInferenceComponent` (RuntimeConfig.DesiredCopyCount / CurrentCopyCount,
 * InferenceComponentStatus) and `UpdateInferenceComponentRuntimeConfig`
 * (DesiredRuntimeConfig.CopyCount), as the API reference documents them
 * (docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateInferenceComponentRuntimeConfig.html).
 *
 * The update is unconditional: its request is the component name and
 * `DesiredRuntimeConfig.CopyCount`, with no expected count or version, so the last set
 * wins. The core checks every set after it lands (`raiseCopiesToLeases`).
 *
 * Failure modes:
 * - the update of a component that is not `InService` (an earlier change still under way)
 *   is refused with a `ValidationException`, as SageMaker's update calls refuse changes to
 *   a resource in progress; that is no fault, so it comes back as `applied: false` (busy),
 *   and the next sweep (one a minute) asks again;
 * - a `ValidationException` naming a component it cannot find, or a value the API's
 *   constraints refuse ("validation error detected ... failed to satisfy constraint"),
 *   `AccessDeniedException` and `ResourceLimitExceeded` (no instance quota left) are errors
 *   no retry fixes;
 * - `ThrottlingException`, 5xx and network errors are retried by the SDK (standard mode);
 *   past its attempts they are `CapacityControlError` with `retryable: true`.
 */
export class SageMakerCapacityControl implements CapacityControl {
  private readonly client: SageMakerClient;

  constructor(options: SageMakerCapacityControlOptions) {
    this.client = options.client;
  }

  async describe(componentName: string): Promise<ComponentCopies> {
    try {
      const out = await this.client.send(
        new DescribeInferenceComponentCommand({ InferenceComponentName: componentName }),
      );
      return {
        desiredCopies: out.RuntimeConfig?.DesiredCopyCount ?? 0,
        currentCopies: out.RuntimeConfig?.CurrentCopyCount ?? 0,
        status: out.InferenceComponentStatus ?? 'Unknown',
      };
    } catch (error) {
      throw controlError(componentName, 'describe', error);
    }
  }

  async setCopies(componentName: string, copies: number): Promise<SetCopiesOutcome> {
    try {
      await this.client.send(
        new UpdateInferenceComponentRuntimeConfigCommand({
          InferenceComponentName: componentName,
          DesiredRuntimeConfig: { CopyCount: copies },
        }),
      );
      return { applied: true };
    } catch (error) {
      if (isAwsError(error, 'ValidationException') && !isNotFound(error) && !BAD_VALUE.test(messageOf(error)))
        return { applied: false, reason: messageOf(error).split('\n')[0] || 'ValidationException' };
      throw controlError(componentName, `set ${copies} copies of`, error);
    }
  }
}

function isNotFound(error: unknown): boolean {
  return isAwsError(error, 'ResourceNotFound') || NOT_FOUND.test(messageOf(error));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function controlError(component: string, action: string, error: unknown): CapacityControlError {
  const name = awsErrorName(error) ?? 'Error';
  const status = httpStatusOf(error);
  const retryable =
    isNetworkError(error) ||
    isAwsError(error, 'ThrottlingException', 'Throttling', 'ServiceUnavailable', 'InternalFailure') ||
    (status !== undefined && status >= 500);
  const hint = isAwsError(error, 'AccessDeniedException')
    ? ': the function role needs sagemaker:DescribeInferenceComponent and sagemaker:UpdateInferenceComponentRuntimeConfig on it'
    : isNotFound(error)
      ? ': deploy the stack so the endpoint has its inference component'
      : '';
  return new CapacityControlError(
    component,
    `cannot ${action} inference component ${component} (${name}: ${messageOf(error).split('\n')[0]})${hint}`,
    retryable,
    { cause: error },
  );
}
