import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct, type IDependable } from 'constructs';
import { addEndpointExecutionRole } from './endpoint-execution-role.ts';
import { endpointArnOf, grantInvokeEndpoint, type InvokableEndpoint } from './invokable-endpoint.ts';

export interface ScoringEndpointProps {
  /** SageMaker endpoint name; the work function calls it by this name (`model.endpointName`). */
  readonly endpointName: string;
  /** SageMaker's built-in XGBoost image in ECR, in the stack's region (`stackImageUri` with `XGBOOST_IMAGES`). */
  readonly imageUri: string;
  /** CPU instance type, e.g. `ml.m5.large` (`model.instanceType`). */
  readonly instanceType: string;
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
  /** @default 1 */
  readonly instanceCount?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * An XGBoost model on a SageMaker real-time endpoint, served by SageMaker's built-in
 * XGBoost container (`text/csv` rows without a header in, one prediction per row out):
 * model, endpoint config and endpoint, plus an execution role that may read only the
 * one model archive, pull only the XGBoost image repository and write only the
 * endpoint's own log group.
 */
export class ScoringEndpoint extends Construct implements InvokableEndpoint {
  readonly endpointName: string;
  readonly endpointArn: string;
  /** `s3://<bucket>/<modelDataKey>` */
  readonly modelDataUrl: string;
  readonly role: iam.Role;
  readonly model: sagemaker.CfnModel;
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;

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

    // No KmsKeyId: the storage volume holds only a copy of the model archive, which sits
    // encrypted in the data bucket, and SageMaker rejects a KmsKeyId for instance types
    // with local NVMe storage (ml.m5d, ml.c5d, ...), which model.instanceType may name.
    this.endpointConfig = new sagemaker.CfnEndpointConfig(this, 'EndpointConfig', {
      productionVariants: [
        {
          variantName: 'AllTraffic',
          modelName: this.model.attrModelName,
          instanceType: props.instanceType,
          initialInstanceCount: props.instanceCount ?? 1,
          initialVariantWeight: 1,
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
    return grantInvokeEndpoint(grantee, this.endpointArn);
  }
}
