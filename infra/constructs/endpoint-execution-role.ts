import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';

/** Registry account, region and repository of an ECR image URI. */
export interface EcrImage {
  readonly account: string;
  readonly region: string;
  readonly repository: string;
}

/**
 * Splits `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag|@digest]`.
 * SageMaker hosting pulls only from ECR, and the execution role is granted the one
 * repository, so anything else is a configuration error. `source` names where the URI
 * came from (a context key) in the error.
 */
export function parseEcrImageUri(uri: string, source = 'image URI'): EcrImage {
  const match =
    /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@\s]+)(?::[^@\s]+)?(?:@sha256:[a-f0-9]{64})?$/.exec(
      uri,
    );
  if (!match) {
    throw new Error(
      `${source} "${uri}" is not an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>)`,
    );
  }
  return { account: match[1]!, region: match[2]!, repository: match[3]! };
}

export interface EndpointExecutionRoleProps {
  /** SageMaker endpoint name; its container logs go to `/aws/sagemaker/Endpoints/<name>`. */
  readonly endpointName: string;
  /** The container image the role may pull (and nothing else). */
  readonly imageUri: string;
  /** Where the image URI came from (a context key), for the error when it is not in ECR. */
  readonly imageSource: string;
  /** What the endpoint serves, for the role description, e.g. `embedding`. */
  readonly purpose: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/** The execution role of one SageMaker endpoint and the log group its container writes to. */
export interface EndpointExecutionRole {
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
}

/**
 * Adds, as children `LogGroup` and `ExecutionRole` of `scope`, what every Sluice
 * endpoint needs: the endpoint's own log group (created here so it has a retention and
 * the role needs no logs:CreateLogGroup) and an execution role that may pull only the
 * one image repository, write only that log group and publish only SageMaker metrics.
 * Endpoint constructs add their own model-data grants to the role.
 */
export function addEndpointExecutionRole(
  scope: Construct,
  props: EndpointExecutionRoleProps,
): EndpointExecutionRole {
  const stack = Stack.of(scope);
  const image = parseEcrImageUri(props.imageUri, props.imageSource);

  const logGroup = new logs.LogGroup(scope, 'LogGroup', {
    logGroupName: `/aws/sagemaker/Endpoints/${props.endpointName}`,
    retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });

  const role = new iam.Role(scope, 'ExecutionRole', {
    assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
    description: `SageMaker execution role of the ${props.endpointName} ${props.purpose} endpoint`,
  });
  const repositoryArn = stack.formatArn({
    service: 'ecr',
    account: image.account,
    region: image.region,
    resource: 'repository',
    resourceName: image.repository,
  });
  iam.Grant.addToPrincipal({
    grantee: role,
    actions: ['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer'],
    resourceArns: [repositoryArn],
  });
  // ecr:GetAuthorizationToken has no resource-level permissions: AWS only accepts "*".
  iam.Grant.addToPrincipal({
    grantee: role,
    actions: ['ecr:GetAuthorizationToken'],
    resourceArns: ['*'],
  });
  logGroup.grantWrite(role);
  iam.Grant.addToPrincipal({
    grantee: role,
    actions: ['logs:DescribeLogStreams'],
    resourceArns: [logGroup.logGroupArn],
  });
  // cloudwatch:PutMetricData has no resource-level permissions either; the namespace
  // condition keeps the role to SageMaker's own endpoint metrics.
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringLike: { 'cloudwatch:namespace': ['/aws/sagemaker/*', 'aws/sagemaker/*'] } },
    }),
  );
  NagSuppressions.addResourceSuppressions(
    role,
    [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions, so AWS requires Resource "*"; PutMetricData is limited to SageMaker namespaces by condition.',
        appliesTo: ['Resource::*'],
      },
    ],
    true,
  );
  return { role, logGroup };
}
