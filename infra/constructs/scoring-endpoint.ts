import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct, type IDependable } from 'constructs';
import type { CapacityConfig, ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { addEndpointExecutionRole } from './endpoint-execution-role.ts';
import {
  addInferenceComponentHosting,
  COPY_MIN_MEMORY_MIB,
  type InferenceComponentHosting,
  VARIANT_NAME,
} from './inference-component-hosting.ts';
import { endpointArnOf, grantInvokeEndpoint, type InvokableEndpoint } from './invokable-endpoint.ts';

export interface ScoringEndpointProps {
  /** SageMaker endpoint name; the work function calls it by this name (`model.endpointName`). */
  readonly endpointName: string;
  /** SageMaker's built-in XGBoost image in ECR, in the stack's region (`stackImageUri` with `XGBOOST_IMAGES`). */
  readonly imageUri: string;
  /**
   * `instance`: an inference component on `instanceType`, run-scoped by `capacity`;
   * `serverless`: SageMaker Serverless Inference sized by `serverless` (no instance type).
   */
  readonly hosting: 'instance' | 'serverless';
  /** CPU instance type, e.g. `ml.m5.large` (`model.instanceType`); hosting `instance` only. */
  readonly instanceType: string;
  /** `inferenceComponentNameOf(endpointName)`; hosting `instance` only. */
  readonly componentName: string;
  /** Run-scoped capacity (`model.capacity`); hosting `instance` only. */
  readonly capacity: CapacityConfig;
  /** Memory and concurrency (`model.serverless`); hosting `serverless` only. */
  readonly serverless: ScorePipelineConfig['model']['serverless'];
  /** The data bucket that holds the model archive. */
  readonly bucket: s3.IBucket;
  /** Key of the `model.tar.gz` in `bucket` (with `xgboost-model` inside; see docs/infra.md). */
  readonly modelDataKey: string;
  /**
   * What puts the archive into the bucket during the deployment (`ModelFiles`): the
   * SageMaker model is created after it, since CreateModel checks the archive exists.
   * @default - none: the archive must already be in the bucket
   */
  readonly modelDataUpload?: IDependable;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * An XGBoost model served by SageMaker's built-in XGBoost container (`text/csv` rows
 * without a header in, one prediction per row out), hosted by `model.hosting`: `instance`,
 * an inference component (one CPU core per copy) on an endpoint that scales to 0 instances
 * between runs (`addInferenceComponentHosting`); `serverless`, a Serverless Inference
 * endpoint (memory and max concurrency, billed per request and duration, 0 when idle).
 * Either way an execution role that may read only the one model archive, pull only the
 * XGBoost image repository and write only the endpoint's own log group.
 * (Hosting `in-worker` deploys none of this: the work function evaluates the JSON model.)
 */
export class ScoringEndpoint extends Construct implements InvokableEndpoint {
  readonly endpointName: string;
  readonly endpointArn: string;
  readonly hostingKind: 'instance' | 'serverless';
  /** The inference component (hosting `instance`); undefined for serverless. */
  readonly inferenceComponentName?: string;
  readonly inferenceComponentArn?: string;
  /** `s3://<bucket>/<modelDataKey>` */
  readonly modelDataUrl: string;
  readonly role: iam.Role;
  readonly model: sagemaker.CfnModel;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;
  /** The inference component and its scaling (hosting `instance`); undefined for serverless. */
  readonly hosting: InferenceComponentHosting | undefined;

  constructor(scope: Construct, id: string, props: ScoringEndpointProps) {
    super(scope, id);
    this.endpointName = props.endpointName;
    this.endpointArn = endpointArnOf(this, props.endpointName);
    this.modelDataUrl = `s3://${props.bucket.bucketName}/${props.modelDataKey}`;

    const { role, logGroup } = addEndpointExecutionRole(this, {
      endpointName: props.endpointName,
      imageUri: props.imageUri,
      imageSource: 'sluice:xgboostImageUri',
      purpose: 'scoring',
      logRetention: props.logRetention,
    });
    this.role = role;
    // The one object SageMaker downloads when it creates the model and starts instances;
    // s3:GetObject on its exact ARN, not the helpers' GetObject*/List* groups on a prefix.
    iam.Grant.addToPrincipal({
      grantee: this.role,
      actions: ['s3:GetObject'],
      resourceArns: [props.bucket.arnForObjects(props.modelDataKey)],
    });
    props.bucket.encryptionKey?.grantDecrypt(this.role);

    this.model = new sagemaker.CfnModel(this, 'Model', {
      executionRoleArn: this.role.roleArn,
      primaryContainer: { image: props.imageUri, modelDataUrl: this.modelDataUrl },
    });
    // SageMaker checks that the role can pull the image and read the model data when it
    // creates the model, so the role's policy must exist first.
    this.model.node.addDependency(this.role);
    if (props.modelDataUpload) this.model.node.addDependency(props.modelDataUpload);

    this.hostingKind = props.hosting;
    if (props.hosting === 'instance') {
      this.hosting = addInferenceComponentHosting(this, {
        endpointName: props.endpointName,
        componentName: props.componentName,
        instanceType: props.instanceType,
        capacity: props.capacity,
        model: this.model,
        role: this.role,
        // The XGBoost container scores a request on one core; copies scale out by instance.
        copy: { cpuCores: 1, minMemoryMiB: COPY_MIN_MEMORY_MIB },
        endpointDependsOn: [logGroup],
      });
      this.endpointConfig = this.hosting.endpointConfig;
      this.endpoint = this.hosting.endpoint;
      this.inferenceComponentName = this.hosting.componentName;
      this.inferenceComponentArn = this.hosting.componentArn;
      return;
    }
    this.hosting = undefined;
    // Serverless Inference: no instance type, count or KmsKeyId (SageMaker rejects them with
    // ServerlessConfig); memory and concurrency within what the API accepts (1,024 to 6,144 MB
    // in 1 GB steps, 1 to 200 concurrent calls), which the config schema enforces.
    this.endpointConfig = new sagemaker.CfnEndpointConfig(this, 'EndpointConfig', {
      productionVariants: [
        {
          variantName: VARIANT_NAME,
          modelName: this.model.attrModelName,
          serverlessConfig: {
            memorySizeInMb: props.serverless.memoryMiB,
            maxConcurrency: props.serverless.maxConcurrency,
          },
        },
      ],
    });
    this.endpoint = new sagemaker.CfnEndpoint(this, 'Endpoint', {
      endpointName: props.endpointName,
      endpointConfigName: this.endpointConfig.attrEndpointConfigName,
    });
    this.endpoint.node.addDependency(logGroup);
  }

  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeEndpoint(grantee, this.endpointArn, this.inferenceComponentArn);
  }
}
