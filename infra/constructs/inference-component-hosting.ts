import { Duration, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import type { Construct, IConstruct, IDependable } from 'constructs';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';

/** The production variant every Sluice endpoint has; inference components name it. */
export const VARIANT_NAME = 'AllTraffic';

/**
 * Application Auto Scaling's service-linked role for SageMaker endpoints and inference
 * components. It exists once an account has used Application Auto Scaling with SageMaker;
 * otherwise create it once (docs/infra.md, Deploy):
 * `aws iam create-service-linked-role --aws-service-name sagemaker.application-autoscaling.amazonaws.com`.
 */
export const SAGEMAKER_AUTOSCALING_ROLE = 'AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint';

/** Application Auto Scaling's dimension for an inference component's copies. */
export const COPY_COUNT_DIMENSION = 'sagemaker:inference-component:DesiredCopyCount';

/**
 * How long the scale-out-from-zero policy waits before it may add another copy. A copy
 * takes minutes to start (instance, image, model), and workers keep calling while it does,
 * so the alarm stays in ALARM; with a cooldown that covers a start, the policy adds one copy
 * per cold start rather than one per minute up to `maxCopies`.
 */
export const SCALE_OUT_FROM_ZERO_COOLDOWN = Duration.minutes(5);

/** What one copy of the model reserves on an instance (`ComputeResourceRequirements`). */
export interface CopyRequirements {
  /** GPUs per copy (`NumberOfAcceleratorDevicesRequired`); omit on CPU instances. */
  readonly accelerators?: number;
  /** CPU cores per copy (`NumberOfCpuCoresRequired`); omit on GPU instances. */
  readonly cpuCores?: number;
  /** Host memory reserved per copy (`MinMemoryRequiredInMb`). */
  readonly minMemoryMiB: number;
}

/**
 * Host memory a copy reserves, on GPU and CPU instances alike. SageMaker schedules copies
 * on the memory it leaves to components, which is much less than the instance's: on an
 * ml.g5.xlarge (16 GiB) a 1,024 MB reservation is placed and a 4,096 MB one is refused with
 * "There is not enough hardware resources on the instances" (reported from ml.g5.xlarge in
 * us-east-1, 2026). The reservation is a placement request, not a limit: TEI and the
 * XGBoost container use what they need above it. One copy per instance is what Sluice
 * places (one GPU per copy; `MaxInstanceCount` = `maxCopies`), so a larger figure buys
 * nothing and risks the refusal.
 */
export const COPY_MIN_MEMORY_MIB = 1024;

export interface InferenceComponentHostingProps {
  /** SageMaker endpoint name (already the stack's deployed name). */
  readonly endpointName: string;
  /** `inferenceComponentNameOf(endpointName)` (shared/capacity/names.ts), which workers and the sweeper derive too. */
  readonly componentName: string;
  readonly instanceType: string;
  readonly capacity: CapacityConfig;
  /** The SageMaker model the component runs (its container and model data). */
  readonly model: sagemaker.CfnModel;
  /** Execution role: with inference components it goes on the endpoint config, not only the model. */
  readonly role: iam.IRole;
  readonly copy: CopyRequirements;
  /** @default - SageMaker's default */
  readonly startupHealthCheckTimeoutSeconds?: number;
  /** Created before the endpoint (its log group). */
  readonly endpointDependsOn?: readonly IDependable[];
}

/** The resources {@link addInferenceComponentHosting} adds. */
export interface InferenceComponentHosting {
  readonly endpointConfig: sagemaker.CfnEndpointConfig;
  readonly endpoint: sagemaker.CfnEndpoint;
  readonly component: sagemaker.CfnInferenceComponent;
  readonly componentName: string;
  /** `arn:<partition>:sagemaker:<region>:<account>:inference-component/<name in lower case>` */
  readonly componentArn: string;
  readonly scalableTarget: appscaling.CfnScalableTarget;
  readonly scaleOutFromZero: appscaling.CfnScalingPolicy;
  readonly noCapacityAlarm: cloudwatch.Alarm;
}

/**
 * Adds to `scope` (children `EndpointConfig`, `Endpoint`, `InferenceComponent`,
 * `CopyScaling`, `ScaleOutFromZero`, `NoCapacityAlarm`) a model hosted as a SageMaker
 * inference component on an endpoint whose managed instance scaling allows 0 instances
 * (docs/infra.md, "Run-scoped capacity"):
 * - the endpoint config carries the execution role and one variant with no model, its
 *   instance type, `ManagedInstanceScaling {ENABLED, MinInstanceCount 0, MaxInstanceCount
 *   maxCopies}` and least-outstanding-requests routing; SageMaker releases instances that
 *   hold no copy, so 0 copies is 0 instances;
 * - the component is created with 1 copy in run-scoped mode (the deploy then proves the
 *   model starts; the capacity sweeper takes it to 0 after the cooldown) and `minCopies`
 *   in always-on mode;
 * - Application Auto Scaling's scalable target on `DesiredCopyCount` (min 0, or `minCopies`
 *   always-on; max `maxCopies`), and the step policy on `NoCapacityInvocationFailures` that
 *   AWS documents to scale out from zero ("Scale an endpoint to zero instances", SageMaker
 *   developer guide): a call that finds no copy adds one, so a run whose capacity request
 *   was lost still gets capacity. Plan and the sweeper set the copies themselves
 *   (UpdateInferenceComponentRuntimeConfig); no target-tracking policy competes with them.
 *
 * The scalable target names Application Auto Scaling's SageMaker service-linked role
 * ({@link SAGEMAKER_AUTOSCALING_ROLE}), which may update inference components.
 */
export function addInferenceComponentHosting(
  scope: Construct,
  props: InferenceComponentHostingProps,
): InferenceComponentHosting {
  const { capacity } = props;
  const alwaysOn = capacity.mode === 'always-on';
  // deploymentSettings refuses minCopies > maxCopies in one line before this is reached.
  const floor = alwaysOn ? capacity.minCopies : 0;
  const initialCopies = alwaysOn ? floor : 1;

  const { endpointConfig, endpoint } = addScaleToZeroEndpoint(scope, props, initialCopies);
  const component = addComponent(scope, props, endpoint, initialCopies);
  const { scalableTarget, scaleOutFromZero } = addCopyScaling(scope, props, component, floor);
  const noCapacityAlarm = addNoCapacityAlarm(scope, props, scaleOutFromZero);
  return {
    endpointConfig,
    endpoint,
    component,
    componentName: props.componentName,
    componentArn: inferenceComponentArnOf(scope, props.componentName),
    scalableTarget,
    scaleOutFromZero,
    noCapacityAlarm,
  };
}

/**
 * The endpoint config (execution role, one variant with no model and managed instance
 * scaling down to 0 instances) and its endpoint.
 */
function addScaleToZeroEndpoint(
  scope: Construct,
  props: InferenceComponentHostingProps,
  initialCopies: number,
): { endpointConfig: sagemaker.CfnEndpointConfig; endpoint: sagemaker.CfnEndpoint } {
  // No KmsKeyId: GPU instances (ml.g5) and the NVMe CPU types a config may name have
  // instance storage encrypted by the hardware, and SageMaker rejects a KmsKeyId for them.
  const endpointConfig = new sagemaker.CfnEndpointConfig(scope, 'EndpointConfig', {
    executionRoleArn: props.role.roleArn,
    productionVariants: [
      {
        variantName: VARIANT_NAME,
        instanceType: props.instanceType,
        // At least one instance to create the endpoint on; SageMaker releases it once no
        // copy is placed on it (MinInstanceCount 0).
        initialInstanceCount: Math.max(1, initialCopies),
        managedInstanceScaling: {
          status: 'ENABLED',
          minInstanceCount: 0,
          maxInstanceCount: props.capacity.maxCopies,
        },
        routingConfig: { routingStrategy: 'LEAST_OUTSTANDING_REQUESTS' },
      },
    ],
  });
  // SageMaker checks the role when it creates the endpoint config's endpoint.
  endpointConfig.node.addDependency(props.role);

  const endpoint = new sagemaker.CfnEndpoint(scope, 'Endpoint', {
    endpointName: props.endpointName,
    endpointConfigName: endpointConfig.attrEndpointConfigName,
  });
  for (const dependency of props.endpointDependsOn ?? []) endpoint.node.addDependency(dependency);
  return { endpointConfig, endpoint };
}

/** The inference component: the model, what each copy reserves, and its first copies. */
function addComponent(
  scope: Construct,
  props: InferenceComponentHostingProps,
  endpoint: sagemaker.CfnEndpoint,
  initialCopies: number,
): sagemaker.CfnInferenceComponent {
  return new sagemaker.CfnInferenceComponent(scope, 'InferenceComponent', {
    inferenceComponentName: props.componentName,
    endpointName: endpoint.attrEndpointName,
    variantName: VARIANT_NAME,
    specification: {
      modelName: props.model.attrModelName,
      computeResourceRequirements: {
        minMemoryRequiredInMb: props.copy.minMemoryMiB,
        ...(props.copy.accelerators === undefined
          ? {}
          : { numberOfAcceleratorDevicesRequired: props.copy.accelerators }),
        ...(props.copy.cpuCores === undefined ? {} : { numberOfCpuCoresRequired: props.copy.cpuCores }),
      },
      ...(props.startupHealthCheckTimeoutSeconds === undefined
        ? {}
        : {
            startupParameters: {
              containerStartupHealthCheckTimeoutInSeconds: props.startupHealthCheckTimeoutSeconds,
            },
          }),
    },
    runtimeConfig: { copyCount: initialCopies },
  });
}

/** Application Auto Scaling's target on the component's copies and the scale-out-from-zero step policy. */
function addCopyScaling(
  scope: Construct,
  props: InferenceComponentHostingProps,
  component: sagemaker.CfnInferenceComponent,
  floor: number,
): { scalableTarget: appscaling.CfnScalableTarget; scaleOutFromZero: appscaling.CfnScalingPolicy } {
  const scalableTarget = new appscaling.CfnScalableTarget(scope, 'CopyScaling', {
    // Application Auto Scaling's service-linked role for SageMaker, which may describe and
    // update inference components. (CloudFormation's schema requires a RoleARN; aws-cdk-lib's
    // ScalableTarget would create a role with no permissions instead.)
    roleArn: Stack.of(scope).formatArn({
      service: 'iam',
      region: '',
      resource: 'role',
      resourceName: `aws-service-role/sagemaker.application-autoscaling.amazonaws.com/${SAGEMAKER_AUTOSCALING_ROLE}`,
    }),
    serviceNamespace: 'sagemaker',
    resourceId: `inference-component/${props.componentName}`,
    scalableDimension: COPY_COUNT_DIMENSION,
    minCapacity: floor,
    maxCapacity: props.capacity.maxCopies,
  });
  // The component must exist to be registered (and is deregistered before it is deleted).
  scalableTarget.addDependency(component);

  const scaleOutFromZero = new appscaling.CfnScalingPolicy(scope, 'ScaleOutFromZero', {
    policyName: `${props.componentName}-scale-out-from-zero`,
    policyType: 'StepScaling',
    scalingTargetId: scalableTarget.ref,
    stepScalingPolicyConfiguration: {
      adjustmentType: 'ChangeInCapacity',
      metricAggregationType: 'Maximum',
      cooldown: SCALE_OUT_FROM_ZERO_COOLDOWN.toSeconds(),
      stepAdjustments: [{ metricIntervalLowerBound: 0, scalingAdjustment: 1 }],
    },
  });
  return { scalableTarget, scaleOutFromZero };
}

/**
 * SageMaker publishes NoCapacityInvocationFailures when a call reaches an endpoint with no
 * copy to serve it. One such call in a minute is enough to start a copy (AWS's example
 * uses > 1, which would leave a single lost call unanswered).
 */
function addNoCapacityAlarm(
  scope: Construct,
  props: InferenceComponentHostingProps,
  scaleOutFromZero: appscaling.CfnScalingPolicy,
): cloudwatch.Alarm {
  const noCapacityAlarm = new cloudwatch.Alarm(scope, 'NoCapacityAlarm', {
    alarmDescription: `Calls reached ${props.endpointName} while ${props.componentName} had no copy: adds one (scale out from zero)`,
    metric: new cloudwatch.Metric({
      namespace: 'AWS/SageMaker',
      metricName: 'NoCapacityInvocationFailures',
      dimensionsMap: { InferenceComponentName: props.componentName },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(1),
    }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  noCapacityAlarm.addAlarmAction({ bind: () => ({ alarmActionArn: scaleOutFromZero.ref }) });
  return noCapacityAlarm;
}

/** `arn:<partition>:sagemaker:<region>:<account>:inference-component/<name>`; SageMaker lower-cases names in ARNs. */
export function inferenceComponentArnOf(scope: IConstruct, componentName: string): string {
  return Stack.of(scope).formatArn({
    service: 'sagemaker',
    resource: 'inference-component',
    resourceName: componentName.toLowerCase(),
  });
}
