import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';
import { addEndpointExecutionRole } from './endpoint-execution-role.ts';
import {
  addInferenceComponentHosting,
  COPY_MIN_MEMORY_MIB,
  type InferenceComponentHosting,
} from './inference-component-hosting.ts';
import { endpointArnOf, grantInvokeEndpoint, type InvokableEndpoint } from './invokable-endpoint.ts';

export interface EmbeddingEndpointProps {
  /** SageMaker endpoint name; the work function calls it by this name (`endpoint.name`). */
  readonly endpointName: string;
  /**
   * The inference component that hosts TEI: `inferenceComponentNameOf(endpointName)`
   * (shared/capacity/names.ts), the name the workers and the capacity sweeper derive.
   */
  readonly componentName: string;
  /** Run-scoped capacity (`endpoint.capacity`): copies between 0 (or `minCopies`) and `maxCopies`. */
  readonly capacity: CapacityConfig;
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
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A Text Embeddings Inference (TEI) model hosted as a SageMaker inference component (one
 * GPU per copy) on a real-time endpoint that scales to 0 instances between runs
 * (`addInferenceComponentHosting`), plus an execution role that can pull only the TEI
 * image repository and write only the endpoint's own log group.
 */
export class EmbeddingEndpoint extends Construct implements InvokableEndpoint {
  readonly endpointName: string;
  readonly endpointArn: string;
  readonly inferenceComponentName: string;
  readonly inferenceComponentArn: string;
  readonly role: iam.Role;
  readonly model: sagemaker.CfnModel;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;
  /** The inference component, its scalable target and its scale-out-from-zero policy and alarm. */
  readonly hosting: InferenceComponentHosting;

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

    this.hosting = addInferenceComponentHosting(this, {
      endpointName: props.endpointName,
      componentName: props.componentName,
      instanceType: props.instanceType,
      capacity: props.capacity,
      model: this.model,
      role: this.role,
      // One GPU per copy: TEI serves one model per GPU.
      copy: { accelerators: 1, minMemoryMiB: COPY_MIN_MEMORY_MIB },
      // TEI downloads the model from the Hugging Face Hub at start-up.
      startupHealthCheckTimeoutSeconds: 600,
      endpointDependsOn: [logGroup],
    });
    this.endpointConfig = this.hosting.endpointConfig;
    this.endpoint = this.hosting.endpoint;
    this.inferenceComponentName = this.hosting.componentName;
    this.inferenceComponentArn = this.hosting.componentArn;
  }

  /** Lets `grantee` call InvokeEndpoint on this endpoint and its inference component, nothing else. */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeEndpoint(grantee, this.endpointArn, this.inferenceComponentArn);
  }
}
