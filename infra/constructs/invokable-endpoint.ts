import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** A SageMaker endpoint the work function calls (embedding or scoring). */
export interface InvokableEndpoint {
  readonly endpointName: string;
  /** ARN of the endpoint, built from its name so callers do not wait for the endpoint to exist. */
  readonly endpointArn: string;
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

/** `sagemaker:InvokeEndpoint` on exactly one endpoint ARN. */
export function grantInvokeEndpoint(grantee: iam.IGrantable, endpointArn: string): iam.Grant {
  return iam.Grant.addToPrincipal({
    grantee,
    actions: ['sagemaker:InvokeEndpoint'],
    resourceArns: [endpointArn],
  });
}
