import 'aws-sdk-client-mock-vitest/extend';
import {
  DescribeInferenceComponentCommand,
  ResourceLimitExceeded,
  SageMakerClient,
  UpdateInferenceComponentRuntimeConfigCommand,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { SageMakerCapacityControl } from '../../shared/adapters/aws/sagemaker-capacity-control.ts';
import { CapacityControlError } from '../../shared/capacity/errors.ts';

const sagemaker = mockClient(SageMakerClient);
const COMPONENT = 'sluice-embed-model';

const control = () => new SageMakerCapacityControl({ client: new SageMakerClient({ region: 'us-east-1' }) });

/** An error as the SDK raises it for an unmodelled SageMaker error code. */
function awsError(name: string, message: string, status = 400): Error {
  return Object.assign(new Error(message), {
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });
}

describe('SageMakerCapacityControl', () => {
  afterEach(() => {
    sagemaker.reset();
  });

  describe('describe', () => {
    it('reads desired and current copies and the status of the component', async () => {
      sagemaker.on(DescribeInferenceComponentCommand).resolves({
        InferenceComponentName: COMPONENT,
        InferenceComponentStatus: 'Updating',
        RuntimeConfig: { DesiredCopyCount: 2, CurrentCopyCount: 1 },
      });
      expect(await control().describe(COMPONENT)).toEqual({
        desiredCopies: 2,
        currentCopies: 1,
        status: 'Updating',
      });
      expect(sagemaker).toHaveReceivedCommandWith(DescribeInferenceComponentCommand, {
        InferenceComponentName: COMPONENT,
      });
    });

    it('reads a component scaled to zero (no runtime counts) as 0 copies', async () => {
      sagemaker.on(DescribeInferenceComponentCommand).resolves({ InferenceComponentStatus: 'InService' });
      expect(await control().describe(COMPONENT)).toEqual({
        desiredCopies: 0,
        currentCopies: 0,
        status: 'InService',
      });
    });

    it('says what to do about a component SageMaker cannot find (no retry helps)', async () => {
      sagemaker
        .on(DescribeInferenceComponentCommand)
        .rejects(awsError('ValidationException', `Could not find inference component "${COMPONENT}".`));
      const error = await control()
        .describe(COMPONENT)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CapacityControlError);
      expect(error).toMatchObject({ component: COMPONENT, retryable: false });
      expect((error as Error).message).toMatch(/deploy the stack/);
    });

    it('names the missing permissions on AccessDeniedException', async () => {
      sagemaker
        .on(DescribeInferenceComponentCommand)
        .rejects(awsError('AccessDeniedException', 'not authorized'));
      await expect(control().describe(COMPONENT)).rejects.toThrow(/sagemaker:DescribeInferenceComponent/);
    });

    it('marks throttling past the SDK retries, 5xx and network errors retryable', async () => {
      for (const error of [
        awsError('ThrottlingException', 'Rate exceeded'),
        awsError('InternalFailure', 'oops', 500),
        Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      ]) {
        sagemaker.reset();
        sagemaker.on(DescribeInferenceComponentCommand).rejects(error);
        await expect(control().describe(COMPONENT)).rejects.toMatchObject({
          name: 'CapacityControlError',
          retryable: true,
        });
      }
    });
  });

  describe('setCopies', () => {
    it('asks for the copy count', async () => {
      sagemaker.on(UpdateInferenceComponentRuntimeConfigCommand).resolves({ InferenceComponentArn: 'arn:x' });
      expect(await control().setCopies(COMPONENT, 3)).toEqual({ applied: true });
      expect(sagemaker).toHaveReceivedCommandWith(UpdateInferenceComponentRuntimeConfigCommand, {
        InferenceComponentName: COMPONENT,
        DesiredRuntimeConfig: { CopyCount: 3 },
      });
    });

    it('leaves a component whose earlier change is under way to the next sweep, without failing', async () => {
      const busy = 'Cannot update inference component while it is in Updating status.';
      sagemaker
        .on(UpdateInferenceComponentRuntimeConfigCommand)
        .rejects(awsError('ValidationException', busy));
      expect(await control().setCopies(COMPONENT, 0)).toEqual({ applied: false, reason: busy });
    });

    it('fails, not retryable, for a value the API refuses (a bad value, not a busy component)', async () => {
      const message =
        "1 validation error detected: Value '-1' at 'desiredRuntimeConfig.copyCount' failed to satisfy constraint: Member must have value greater than or equal to 0";
      sagemaker
        .on(UpdateInferenceComponentRuntimeConfigCommand)
        .rejects(awsError('ValidationException', message));
      const error = await control()
        .setCopies(COMPONENT, -1)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CapacityControlError);
      expect(error).toMatchObject({ retryable: false });
      expect((error as Error).message).toBe(
        `cannot set -1 copies of inference component ${COMPONENT} (ValidationException: ${message})`,
      );
    });

    it('fails for a component that does not exist', async () => {
      sagemaker
        .on(UpdateInferenceComponentRuntimeConfigCommand)
        .rejects(awsError('ValidationException', 'Inference component sluice-embed-model does not exist'));
      await expect(control().setCopies(COMPONENT, 1)).rejects.toMatchObject({
        name: 'CapacityControlError',
        retryable: false,
      });
    });

    it('fails, not retryable, when the account has no instances left (ResourceLimitExceeded)', async () => {
      sagemaker
        .on(UpdateInferenceComponentRuntimeConfigCommand)
        .rejects(new ResourceLimitExceeded({ message: 'quota for ml.g5.xlarge reached', $metadata: {} }));
      const error = await control()
        .setCopies(COMPONENT, 4)
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'CapacityControlError', retryable: false });
      expect((error as Error).message).toMatch(
        /set 4 copies of inference component sluice-embed-model \(ResourceLimitExceeded/,
      );
    });

    it('fails retryable when throttled past the SDK retries', async () => {
      sagemaker
        .on(UpdateInferenceComponentRuntimeConfigCommand)
        .rejects(awsError('ThrottlingException', 'Rate exceeded'));
      await expect(control().setCopies(COMPONENT, 1)).rejects.toMatchObject({ retryable: true });
    });
  });
});
