import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import { addEndpointExecutionRole } from './endpoint-execution-role.ts';
import { endpointArnOf, grantInvokeEndpoint, type InvokableEndpoint } from './invokable-endpoint.ts';

export interface EmbeddingEndpointProps {
  /** SageMaker endpoint name; the work function calls it by this name (`endpoint.name`). */
  readonly endpointName: string;
  /** Text Embeddings Inference image in ECR, in the stack's region (`stackImageUri` with `TEI_IMAGES`). */
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

/**
 * A Text Embeddings Inference (TEI) model on a SageMaker real-time endpoint: model,
 * endpoint config and endpoint, plus an execution role that can pull only the TEI
 * image repository and write only the endpoint's own log group.
 */
export class EmbeddingEndpoint extends Construct implements InvokableEndpoint {
  readonly endpointName: string;
  readonly endpointArn: string;
  readonly role: iam.Role;
  readonly model: sagemaker.CfnModel;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;

  constructor(scope: Construct, id: string, props: EmbeddingEndpointProps) {
    super(scope, id);
    this.endpointName = props.endpointName;
    this.endpointArn = endpointArnOf(this, props.endpointName);

    const { role, logGroup } = addEndpointExecutionRole(this, {
      endpointName: props.endpointName,
      imageUri: props.imageUri,
      imageSource: 'sluice:teiImageUri',
      purpose: 'embedding',
      logRetention: props.logRetention,
    });
    this.role = role;

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
    return grantInvokeEndpoint(grantee, this.endpointArn);
  }
}
