import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** A SageMaker endpoint the work function calls (embedding or scoring). */
export interface InvokableEndpoint {
  readonly endpointName: string;
  /** ARN of the endpoint, built from its name so callers do not wait for the endpoint to exist. */
  readonly endpointArn: string;
  /**
   * The inference component that hosts the model (instance endpoints, issue 14); workers
   * name it in every call. Undefined for a serverless endpoint, which hosts its model directly.
   */
  readonly inferenceComponentName?: string;
  /** ARN of that inference component. */
  readonly inferenceComponentArn?: string;
  /** Lets `grantee` call InvokeEndpoint on this endpoint and nothing else. */
  grantInvoke(grantee: iam.IGrantable): iam.Grant;
}

/** `arn:<partition>:sagemaker:<region>:<account>:endpoint/<name>`; SageMaker lower-cases names in ARNs. */
export function endpointArnOf(scope: IConstruct, endpointName: string): string {
  return Stack.of(scope).formatArn({
    service: 'sagemaker',
    resource: 'endpoint',
    resourceName: endpointName.toLowerCase(),
  });
}

/**
 * `sagemaker:InvokeEndpoint` on exactly one endpoint ARN and, for a model hosted as an
 * inference component, that component's ARN: a call that names `InferenceComponentName` is
 * authorized against both (the Service Authorization Reference lists InvokeEndpoint's
 * resource types as `endpoint`, required, and `inference-component`).
 */
export function grantInvokeEndpoint(
  grantee: iam.IGrantable,
  endpointArn: string,
  inferenceComponentArn?: string,
): iam.Grant {
  return iam.Grant.addToPrincipal({
    grantee,
    actions: ['sagemaker:InvokeEndpoint'],
    resourceArns: inferenceComponentArn === undefined ? [endpointArn] : [endpointArn, inferenceComponentArn],
  });
}
