import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { SCALE_OUT_FROM_ZERO_COOLDOWN } from '../../infra/constructs/inference-component-hosting.ts';
import { scoringEndpointSpecs } from '../../infra/deployment-settings.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { inferenceComponentNameOf } from '../../shared/capacity/names.ts';
import {
  type EmbedPipelineConfig,
  parsePipelineConfig,
  type ScorePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  bundledPipelines,
  loadCreditRiskPipeline,
  loadDocsPipeline,
} from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

let docs: EmbedPipelineConfig;
let creditRisk: ScorePipelineConfig;

/** credit-risk with `model` changes laid over it, validated as the app validates it. */
const creditRiskWith = (model: Record<string, unknown>): ScorePipelineConfig => {
  const config = parsePipelineConfig({ ...creditRisk, model: { ...creditRisk.model, ...model } });
  if (config.kind !== 'score') throw new Error('not a score pipeline');
  return config;
};

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);

/** Every resource a role may use `action` on, over all its policies. */
function resourcesAllowed(template: Template, role: IConstruct, action: string): Cfn[] {
  const roleId = idOf(role);
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p: Cfn) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
    .flatMap((p: Cfn) => p.Properties.PolicyDocument.Statement)
    .filter((s: Cfn) => [s.Action].flat().includes(action))
    .flatMap((s: Cfn) => [s.Resource].flat());
}

/** Every action a role's policies allow, sorted. */
function actionsAllowed(template: Template, role: IConstruct): string[] {
  const roleId = idOf(role);
  return [
    ...new Set(
      Object.values(template.findResources('AWS::IAM::Policy'))
        .filter((p: Cfn) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
        .flatMap((p: Cfn) => p.Properties.PolicyDocument.Statement)
        .flatMap((s: Cfn) => [s.Action].flat() as string[]),
    ),
  ].sort();
}

const componentArn = (name: string) => ({
  'Fn::Join': [
    '',
    ['arn:', { Ref: 'AWS::Partition' }, `:sagemaker:us-east-1:123456789012:inference-component/${name}`],
  ],
});

beforeAll(async () => {
  docs = await loadDocsPipeline();
  creditRisk = await loadCreditRiskPipeline();
});

describe('run-scoped capacity (docs: embed, credit-risk: hosting instance)', () => {
  let stack: SluiceStack;
  let template: Template;
  beforeAll(() => {
    stack = buildStack({ pipelines: [docs, creditRisk] }).stack;
    template = Template.fromStack(stack);
  });

  it('hosts TEI as an inference component named from the endpoint, one GPU per copy, created with one copy', () => {
    const [embedding] = stack.endpoints;
    expect(embedding!.inferenceComponentName).toBe(inferenceComponentNameOf('sluice-docs-embed'));
    template.hasResourceProperties('AWS::SageMaker::InferenceComponent', {
      InferenceComponentName: 'sluice-docs-embed-model',
      EndpointName: { 'Fn::GetAtt': [idOf(embedding!.endpoint), 'EndpointName'] },
      VariantName: 'AllTraffic',
      Specification: {
        ModelName: { 'Fn::GetAtt': [idOf(embedding!.model), 'ModelName'] },
        ComputeResourceRequirements: { NumberOfAcceleratorDevicesRequired: 1, MinMemoryRequiredInMb: 1024 },
        StartupParameters: { ContainerStartupHealthCheckTimeoutInSeconds: 600 },
      },
      // Run-scoped: the deploy starts one copy (proving the model loads); the sweeper takes it to 0.
      RuntimeConfig: { CopyCount: 1 },
    });
    template.resourceCountIs('AWS::SageMaker::InferenceComponent', 2);
  });

  it('gives each endpoint config the execution role and a model-less variant that may scale to 0 instances', () => {
    for (const endpoint of [...stack.endpoints, ...stack.scoringEndpoints]) {
      const config = template.toJSON().Resources[idOf(endpoint.endpointConfig)].Properties;
      expect(config.ExecutionRoleArn).toEqual({ 'Fn::GetAtt': [idOf(endpoint.role), 'Arn'] });
      expect(config.ProductionVariants).toEqual([
        {
          VariantName: 'AllTraffic',
          InstanceType: endpoint === stack.endpoints[0] ? 'ml.g5.xlarge' : 'ml.m5.large',
          InitialInstanceCount: 1,
          ManagedInstanceScaling: { Status: 'ENABLED', MinInstanceCount: 0, MaxInstanceCount: 4 },
          RoutingConfig: { RoutingStrategy: 'LEAST_OUTSTANDING_REQUESTS' },
        },
      ]);
    }
  });

  it('registers each component as a scalable target on its copies, from 0 to capacity.maxCopies', () => {
    for (const name of ['sluice-docs-embed-model', 'sluice-credit-risk-model']) {
      template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
        ServiceNamespace: 'sagemaker',
        ResourceId: `inference-component/${name}`,
        ScalableDimension: 'sagemaker:inference-component:DesiredCopyCount',
        MinCapacity: 0,
        MaxCapacity: docs.endpoint.capacity.maxCopies,
        // Application Auto Scaling's SageMaker service-linked role, not a role without permissions.
        RoleARN: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':iam::123456789012:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint',
            ],
          ],
        },
      });
    }
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 2);
    // Registered after the component exists, deregistered before it is deleted.
    const [embedding] = stack.endpoints;
    expect(template.toJSON().Resources[idOf(embedding!.hosting.scalableTarget)].DependsOn).toContain(
      idOf(embedding!.hosting.component),
    );
  });

  it('scales out from zero on NoCapacityInvocationFailures with a step policy, as AWS documents', () => {
    const [embedding] = stack.endpoints;
    const { scalableTarget, scaleOutFromZero, noCapacityAlarm } = embedding!.hosting;
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'StepScaling',
      ScalingTargetId: { Ref: idOf(scalableTarget) },
      StepScalingPolicyConfiguration: {
        AdjustmentType: 'ChangeInCapacity',
        MetricAggregationType: 'Maximum',
        Cooldown: SCALE_OUT_FROM_ZERO_COOLDOWN.toSeconds(),
        StepAdjustments: [{ MetricIntervalLowerBound: 0, ScalingAdjustment: 1 }],
      },
    });
    expect(template.toJSON().Resources[idOf(noCapacityAlarm)].Properties).toEqual(
      expect.objectContaining({
        Namespace: 'AWS/SageMaker',
        MetricName: 'NoCapacityInvocationFailures',
        Dimensions: [{ Name: 'InferenceComponentName', Value: 'sluice-docs-embed-model' }],
        Statistic: 'Sum',
        Period: 60,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        AlarmActions: [{ Ref: idOf(scaleOutFromZero) }],
      }),
    );
    // No target-tracking policy competes with the copies plan and the sweeper set.
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalingPolicy', 2);
  });

  it('runs the capacity sweeper every minute from EventBridge Scheduler', () => {
    const sweeper = stack.capacitySweeper!;
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Target: {
        Arn: { 'Fn::GetAtt': [idOf(sweeper.function.function), 'Arn'] },
        RoleArn: { 'Fn::GetAtt': [idOf(sweeper.schedulerRole), 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
      },
    });
    expect(actionsAllowed(template, sweeper.schedulerRole)).toEqual(['lambda:InvokeFunction']);
    // Same configuration as every function: the pipelines file and the shared environment.
    expect(bundledPipelines(sweeper.function)).toEqual(bundledPipelines(stack.functions.plan));
  });

  it("lets the sweeper describe and update exactly the stack's components, and read and write leases in the runs table", () => {
    const sweeper = stack.capacitySweeper!;
    const arns = [componentArn('sluice-docs-embed-model'), componentArn('sluice-credit-risk-model')];
    for (const action of [
      'sagemaker:DescribeInferenceComponent',
      'sagemaker:UpdateInferenceComponentRuntimeConfig',
    ]) {
      expect(resourcesAllowed(template, sweeper.function.role, action)).toEqual(arns);
    }
    const tableArn = { 'Fn::GetAtt': [idOf(stack.runsTable.table), 'Arn'] };
    for (const action of [
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
    ]) {
      expect(resourcesAllowed(template, sweeper.function.role, action), action).toEqual([tableArn]);
    }
    expect(actionsAllowed(template, sweeper.function.role)).toEqual([
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
      'lambda:GetEventSourceMapping',
      'lambda:UpdateEventSourceMapping',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sagemaker:DescribeInferenceComponent',
      'sagemaker:UpdateInferenceComponentRuntimeConfig',
    ]);
  });

  it("lets plan and the sweeper read and set exactly the work queue's event source mapping, whose id only they carry", () => {
    const mappings = template.findResources('AWS::Lambda::EventSourceMapping', {
      Properties: { FunctionName: { Ref: idOf(stack.functions.work.function) } },
    });
    const [mappingId, ...others] = Object.keys(mappings);
    expect(others).toEqual([]);
    // Deployed at the stack's largest workers.maxConcurrency; plan and the sweeper move it from there.
    expect(mappings[mappingId!]!.Properties.ScalingConfig).toEqual({ MaximumConcurrency: 8 });
    const mappingArn = {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':lambda:us-east-1:123456789012:event-source-mapping:',
          { Ref: mappingId },
        ],
      ],
    };
    const { plan, work, finalize, deadLetter } = stack.functions;
    const sweeper = stack.capacitySweeper!.function;
    for (const action of ['lambda:GetEventSourceMapping', 'lambda:UpdateEventSourceMapping']) {
      for (const fn of [plan, sweeper])
        expect(resourcesAllowed(template, fn.role, action), action).toEqual([mappingArn]);
      for (const fn of [work, finalize, deadLetter])
        expect(resourcesAllowed(template, fn.role, action)).toEqual([]);
    }
    const environmentOf = (fn: IConstruct) =>
      template.toJSON().Resources[idOf(fn)].Properties.Environment.Variables as Record<string, unknown>;
    for (const fn of [plan.function, sweeper.function])
      expect(environmentOf(fn).SLUICE_WORK_EVENT_SOURCE_ID).toEqual({ Ref: mappingId });
    // The work function's own mapping depends on it: its id there would be a cycle.
    for (const fn of [work.function, finalize.function, deadLetter.function])
      expect(environmentOf(fn).SLUICE_WORK_EVENT_SOURCE_ID).toBeUndefined();
  });

  it('lets plan and finalize set copies (a run asks for capacity, finalize scales in at release) and no other function', () => {
    const arns = [componentArn('sluice-docs-embed-model'), componentArn('sluice-credit-risk-model')];
    const { plan, work, finalize, deadLetter } = stack.functions;
    for (const action of [
      'sagemaker:DescribeInferenceComponent',
      'sagemaker:UpdateInferenceComponentRuntimeConfig',
    ]) {
      for (const fn of [plan, finalize]) expect(resourcesAllowed(template, fn.role, action)).toEqual(arns);
      for (const fn of [work, deadLetter]) expect(resourcesAllowed(template, fn.role, action)).toEqual([]);
    }
  });

  it('alarms into the alarm topic when capacity is up with no run for 3 minutes, and when the sweeper fails', () => {
    const topic = { Ref: idOf(stack.alarms.topic) };
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Sluice',
      MetricName: 'CapacityWithoutRun',
      Dimensions: [{ Name: 'service', Value: 'sluice' }],
      Statistic: 'Sum',
      Period: 60,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
      AlarmActions: [topic],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: idOf(stack.capacitySweeper!.function.function) } }],
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      AlarmActions: [topic],
    });
  });
});

describe('always-on capacity', () => {
  it('keeps capacity.minCopies: the scalable target floor and the copies the component is created with', () => {
    const alwaysOn = parsePipelineConfig({
      ...docs,
      endpoint: { ...docs.endpoint, capacity: { mode: 'always-on', minCopies: 2, maxCopies: 3 } },
    });
    const template = Template.fromStack(buildStack({ pipelines: [alwaysOn] }).stack);
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 2,
      MaxCapacity: 3,
    });
    template.hasResourceProperties('AWS::SageMaker::InferenceComponent', { RuntimeConfig: { CopyCount: 2 } });
    template.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [
        Match.objectLike({
          InitialInstanceCount: 2,
          ManagedInstanceScaling: { Status: 'ENABLED', MinInstanceCount: 0, MaxInstanceCount: 3 },
        }),
      ],
    });
  });

  it('fails synth in one line when minCopies is more than maxCopies', () => {
    const impossible = parsePipelineConfig({
      ...docs,
      endpoint: { ...docs.endpoint, capacity: { mode: 'always-on', minCopies: 5, maxCopies: 2 } },
    });
    expect(() => buildStack({ pipelines: [impossible] })).toThrow(
      /^pipeline docs: endpoint.capacity.minCopies 5 is more than endpoint.capacity.maxCopies 2: always-on keeps minCopies up, so raise maxCopies or lower minCopies$/,
    );
  });
});

describe('scoring hosted serverless', () => {
  let stack: SluiceStack;
  let template: Template;
  beforeAll(() => {
    stack = buildStack({
      pipelines: [
        creditRiskWith({ hosting: 'serverless', serverless: { memoryMiB: 3072, maxConcurrency: 10 } }),
      ],
    }).stack;
    template = Template.fromStack(stack);
  });

  it('deploys an endpoint config with ServerlessConfig from model.serverless, and no instance type', () => {
    const [endpoint] = stack.scoringEndpoints;
    expect(template.toJSON().Resources[idOf(endpoint!.endpointConfig)].Properties.ProductionVariants).toEqual(
      [
        {
          VariantName: 'AllTraffic',
          ModelName: { 'Fn::GetAtt': [idOf(endpoint!.model), 'ModelName'] },
          ServerlessConfig: { MemorySizeInMB: 3072, MaxConcurrency: 10 },
        },
      ],
    );
    template.hasResourceProperties('AWS::SageMaker::Endpoint', { EndpointName: 'sluice-credit-risk' });
  });

  it('has no inference component, scaling or sweeper: serverless scales to zero by itself', () => {
    template.resourceCountIs('AWS::SageMaker::InferenceComponent', 0);
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 0);
    template.resourceCountIs('AWS::Scheduler::Schedule', 1); // the pipeline's own
    expect(stack.capacitySweeper).toBeUndefined();
    expect(actionsAllowed(template, stack.functions.plan.role)).not.toContain(
      'sagemaker:UpdateInferenceComponentRuntimeConfig',
    );
  });

  it('lets the work function invoke the endpoint by its ARN alone', () => {
    expect(resourcesAllowed(template, stack.functions.work.role, 'sagemaker:InvokeEndpoint')).toEqual([
      {
        'Fn::Join': [
          '',
          [
            'arn:',
            { Ref: 'AWS::Partition' },
            ':sagemaker:us-east-1:123456789012:endpoint/sluice-credit-risk',
          ],
        ],
      },
    ]);
  });
});

describe('scoring hosted in-worker', () => {
  let stack: SluiceStack;
  let template: Template;
  beforeAll(() => {
    stack = buildStack({ pipelines: [creditRiskWith({ hosting: 'in-worker' })] }).stack;
    template = Template.fromStack(stack);
  });

  it('deploys no SageMaker model, endpoint or scaling at all', () => {
    expect(stack.scoringEndpoints).toEqual([]);
    for (const type of [
      'AWS::SageMaker::Model',
      'AWS::SageMaker::EndpointConfig',
      'AWS::SageMaker::Endpoint',
      'AWS::SageMaker::InferenceComponent',
      'AWS::ApplicationAutoScaling::ScalableTarget',
    ]) {
      template.resourceCountIs(type, 0);
    }
    expect(stack.capacitySweeper).toBeUndefined();
  });

  it('leaves the work event source as deployed: no function may change it, none carries its id', () => {
    const { plan, work, finalize, deadLetter } = stack.functions;
    for (const fn of [plan, work, finalize, deadLetter])
      expect(actionsAllowed(template, fn.role).filter((a) => a.startsWith('lambda:'))).toEqual([]);
    expect(JSON.stringify(template.toJSON())).not.toContain('SLUICE_WORK_EVENT_SOURCE_ID');
  });

  it('gives no function a SageMaker action; work reads the JSON model from models/', () => {
    const { plan, work, finalize, deadLetter } = stack.functions;
    for (const fn of [plan, work, finalize, deadLetter]) {
      expect(actionsAllowed(template, fn.role).filter((a) => a.startsWith('sagemaker:'))).toEqual([]);
    }
    const reads = JSON.stringify(resourcesAllowed(template, work.role, 's3:GetObject'));
    expect(creditRisk.model.modelKey.startsWith('models/')).toBe(true);
    expect(reads).toContain('/models/*');
  });

  it('uploads the JSON model with the model files, not the archive', () => {
    expect(stack.modelFiles?.keys).toContain('models/credit-risk/model.json');
    expect(stack.modelFiles?.keys).not.toContain('models/credit-risk/model.tar.gz');
  });

  it('fails synth in one line for a JSON model outside models/, which work may not read', () => {
    expect(() =>
      buildStack({ pipelines: [creditRiskWith({ hosting: 'in-worker', modelKey: 'other/model.json' })] }),
    ).toThrow(
      /^pipeline credit-risk: model.modelKey "other\/model.json" must be under models\/: with model.hosting in-worker the work function reads the model there$/,
    );
  });
});

describe('endpoints shared by score pipelines', () => {
  it('fail synth in one line when the pipelines host the one endpoint differently', () => {
    const serverless = parsePipelineConfig({
      ...creditRisk,
      name: 'credit-risk-2',
      model: { ...creditRisk.model, hosting: 'serverless' },
    });
    expect(() => scoringEndpointSpecs([creditRisk, serverless])).toThrow(
      /^pipelines credit-risk and credit-risk-2 share endpoint sluice-credit-risk but host it as instance and serverless \(model.hosting\): use one hosting or another model.endpointName$/,
    );
  });
});

describe('regions without inference components in CloudFormation', () => {
  it('refuse a stack that needs one, in one line, and take one whose scoring is in-worker or serverless', () => {
    expect(() =>
      buildStack({ pipelines: [docs], env: { account: '123456789012', region: 'eu-west-3' } }),
    ).toThrow(
      /^region eu-west-3 has no AWS::SageMaker::InferenceComponent in CloudFormation, which embed pipelines and score pipelines with model.hosting instance need \(run-scoped capacity\): deploy to another region, or deploy only score pipelines with model.hosting in-worker or serverless there$/,
    );
    const { stack } = buildStack({
      pipelines: [creditRiskWith({ hosting: 'serverless' })],
      env: { account: '123456789012', region: 'eu-west-3' },
    });
    expect(stack.scoringEndpoints).toHaveLength(1);
  });
});

describe('a stack with another name', () => {
  it('names each inference component from its prefixed endpoint name, which the functions carry', () => {
    const { stack } = buildStack({ pipelines: [docs, creditRisk], stackName: 'SluiceDev' });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SageMaker::InferenceComponent', {
      InferenceComponentName: 'sluicedev-sluice-docs-embed-model',
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ResourceId: 'inference-component/sluicedev-sluice-credit-risk-model',
    });
    const shipped = bundledPipelines(stack.functions.work) as { endpoint?: { name: string } }[];
    const embedName = shipped.find((p) => p.endpoint)!.endpoint!.name;
    expect(inferenceComponentNameOf(embedName)).toBe('sluicedev-sluice-docs-embed-model');
  });
});
