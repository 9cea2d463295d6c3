import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';
import { addEndpointExecutionRole } from './endpoint-execution-role.ts';
import {
  addInferenceComponentHosting,
  type CopyRequirements,
  type InferenceComponentHosting,
} from './inference-component-hosting.ts';
import { endpointArnOf, grantInvokeEndpoint, type InvokableEndpoint } from './invokable-endpoint.ts';

export interface ContainerModelEndpointProps {
  /** SageMaker endpoint name (already the stack's deployed name); the workers call it by this name. */
  readonly endpointName: string;
  /** `inferenceComponentNameOf(endpointName)` (shared/capacity/names.ts), the name the workers and the sweeper derive. */
  readonly componentName: string;
  /** Run-scoped capacity: copies between 0 (or `minCopies`) and `maxCopies`. */
  readonly capacity: CapacityConfig;
  /** GPU instance type, e.g. `ml.g5.xlarge`. */
  readonly instanceType: string;
  /** The serving container in ECR, in the stack's region; the execution role may pull only its repository. */
  readonly imageUri: string;
  /** Where the image URI came from (a context key), for the error when it is not in ECR. */
  readonly imageSource: string;
  /** What the endpoint serves, for the role description, e.g. `embedding`. */
  readonly purpose: string;
  /** The container's environment: the model it loads and the limits it serves with. */
  readonly environment: Readonly<Record<string, string>>;
  /** What one copy reserves on an instance. */
  readonly copy: CopyRequirements;
  /** How long SageMaker waits for a copy's container to pass its health check. */
  readonly startupHealthCheckTimeoutSeconds: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A model that is all container (an image and its environment, no model data: the
 * container downloads the weights itself) hosted as a SageMaker inference component on a
 * real-time endpoint that scales to 0 instances between runs (`addInferenceComponentHosting`),
 * with an execution role that can pull only the image repository and write only the
 * endpoint's own log group (`addEndpointExecutionRole`). The embedding (TEI) and LLM (TGI)
 * endpoints differ only in their image, environment and copy size, which they pass here.
 *
 * Children, under the subclass's own id: `LogGroup`, `ExecutionRole`, `Model` and the
 * hosting's endpoint config, endpoint, component and scaling.
 */
export abstract class ContainerModelEndpoint extends Construct implements InvokableEndpoint {
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

  protected constructor(scope: Construct, id: string, props: ContainerModelEndpointProps) {
    super(scope, id);
    this.endpointName = props.endpointName;
    this.endpointArn = endpointArnOf(this, props.endpointName);

    const { role, logGroup } = addEndpointExecutionRole(this, {
      endpointName: props.endpointName,
      imageUri: props.imageUri,
      imageSource: props.imageSource,
      purpose: props.purpose,
      logRetention: props.logRetention,
    });
    this.role = role;

    this.model = new sagemaker.CfnModel(this, 'Model', {
      executionRoleArn: this.role.roleArn,
      primaryContainer: { image: props.imageUri, environment: { ...props.environment } },
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
      copy: props.copy,
      startupHealthCheckTimeoutSeconds: props.startupHealthCheckTimeoutSeconds,
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
