import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface EmbeddingEndpointProps {
  /** SageMaker endpoint name; the work function calls it by this name (`endpoint.name`). */
  readonly endpointName: string;
  /** Text Embeddings Inference image in ECR (context `sluice:teiImageUri`). */
  readonly imageUri: string;
  /** GPU instance type, e.g. `ml.g5.xlarge`. */
  readonly instanceType: string;
  /** Hugging Face model id TEI loads (`HF_MODEL_ID`): the pipeline's `endpoint.model`. */
  readonly hfModelId: string;
  /** TEI `MAX_BATCH_TOKENS`, so the server accepts the batches the client builds. */
  readonly maxBatchTokens: number;
  /** TEI `MAX_CLIENT_BATCH_SIZE`, so the server accepts the batches the client builds. */
  readonly maxClientBatchSize: number;
  /** @default 1 */
  readonly instanceCount?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/** Registry account, region and repository of an ECR image URI. */
export interface EcrImage {
  readonly account: string;
  readonly region: string;
  readonly repository: string;
}

/**
 * Splits `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag|@digest]`.
 * SageMaker hosting pulls only from ECR, and the execution role is granted the one
 * repository, so anything else is a configuration error.
 */
export function parseEcrImageUri(uri: string): EcrImage {
  const match =
    /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@\s]+)(?::[^@\s]+)?(?:@sha256:[a-f0-9]{64})?$/.exec(
      uri,
    );
  if (!match) {
    throw new Error(
      `sluice:teiImageUri "${uri}" is not an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>)`,
    );
  }
  return { account: match[1]!, region: match[2]!, repository: match[3]! };
}

/**
 * A Text Embeddings Inference (TEI) model on a SageMaker real-time endpoint: model,
 * endpoint config and endpoint, plus an execution role that can pull only the TEI
 * image repository and write only the endpoint's own log group.
 */
export class EmbeddingEndpoint extends Construct {
  readonly endpointName: string;
  /** ARN of the endpoint, built from its name so callers do not wait for the endpoint to exist. */
  readonly endpointArn: string;
  readonly role: iam.Role;
  readonly model: sagemaker.CfnModel;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;

  constructor(scope: Construct, id: string, props: EmbeddingEndpointProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const image = parseEcrImageUri(props.imageUri);
    this.endpointName = props.endpointName;
    // SageMaker lower-cases endpoint names in ARNs.
    this.endpointArn = stack.formatArn({
      service: 'sagemaker',
      resource: 'endpoint',
      resourceName: props.endpointName.toLowerCase(),
    });

    // SageMaker writes container logs here; creating it ourselves sets the retention
    // and spares the role logs:CreateLogGroup.
    const logGroup = new logs.LogGroup(this, 'LogGroup', {
      logGroupName: `/aws/sagemaker/Endpoints/${props.endpointName}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.role = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: `SageMaker execution role of the ${props.endpointName} embedding endpoint`,
    });
    const repositoryArn = stack.formatArn({
      service: 'ecr',
      account: image.account,
      region: image.region,
      resource: 'repository',
      resourceName: image.repository,
    });
    iam.Grant.addToPrincipal({
      grantee: this.role,
      actions: ['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer'],
      resourceArns: [repositoryArn],
    });
    // ecr:GetAuthorizationToken has no resource-level permissions: AWS only accepts "*".
    iam.Grant.addToPrincipal({
      grantee: this.role,
      actions: ['ecr:GetAuthorizationToken'],
      resourceArns: ['*'],
    });
    logGroup.grantWrite(this.role);
    iam.Grant.addToPrincipal({
      grantee: this.role,
      actions: ['logs:DescribeLogStreams'],
      resourceArns: [logGroup.logGroupArn],
    });
    // cloudwatch:PutMetricData has no resource-level permissions either; the namespace
    // condition keeps the role to SageMaker's own endpoint metrics.
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringLike: { 'cloudwatch:namespace': ['/aws/sagemaker/*', 'aws/sagemaker/*'] } },
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.role,
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

    this.model = new sagemaker.CfnModel(this, 'Model', {
      executionRoleArn: this.role.roleArn,
      primaryContainer: {
        image: props.imageUri,
        environment: {
          HF_MODEL_ID: props.hfModelId,
          MAX_BATCH_TOKENS: String(props.maxBatchTokens),
          MAX_CLIENT_BATCH_SIZE: String(props.maxClientBatchSize),
        },
      },
    });
    // SageMaker checks the role can pull the image when it creates the model.
    this.model.node.addDependency(this.role);

    // No KmsKeyId: GPU instances such as ml.g5 have local NVMe instance storage, which is
    // encrypted by the instance hardware, and SageMaker rejects a KmsKeyId for them.
    this.endpointConfig = new sagemaker.CfnEndpointConfig(this, 'EndpointConfig', {
      productionVariants: [
        {
          variantName: 'AllTraffic',
          modelName: this.model.attrModelName,
          instanceType: props.instanceType,
          initialInstanceCount: props.instanceCount ?? 1,
          initialVariantWeight: 1,
          // TEI downloads the model from the Hugging Face Hub at start-up.
          containerStartupHealthCheckTimeoutInSeconds: 600,
        },
      ],
    });

    this.endpoint = new sagemaker.CfnEndpoint(this, 'Endpoint', {
      endpointName: props.endpointName,
      endpointConfigName: this.endpointConfig.attrEndpointConfigName,
    });
    this.endpoint.node.addDependency(logGroup);
  }

  /** Lets `grantee` call InvokeEndpoint on this endpoint and nothing else. */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['sagemaker:InvokeEndpoint'],
      resourceArns: [this.endpointArn],
    });
  }
}
