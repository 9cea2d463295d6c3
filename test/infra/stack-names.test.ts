import { App, RemovalPolicy } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { SLUICE_SERVICE_NAME } from '../../infra/constructs/sluice-function.ts';
import { readContext } from '../../infra/context.ts';
import { DEFAULT_STACK_NAME, deploymentNames } from '../../infra/deployment-names.ts';
import { SluiceStack } from '../../infra/sluice-stack.ts';
import {
  type EmbedPipelineConfig,
  endpointNameOf,
  type ScorePipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  bundledPipelines,
  FIXTURE_ENTRIES,
  loadCreditRiskPipeline,
  loadDocsPipeline,
  publishedEmf,
} from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;
type Resources = Record<string, { Type: string; Properties?: Cfn }>;

/** What AWS accepts: Glue (and Athena DDL) database names, Athena workgroup names. */
const GLUE_DATABASE = /^[a-z0-9_]{1,255}$/;
const ATHENA_WORKGROUP = /^[a-zA-Z0-9._-]{1,128}$/;

describe('deploymentNames', () => {
  it('keeps the names every existing deployment has for the default stack, Sluice', () => {
    expect(DEFAULT_STACK_NAME).toBe('Sluice');
    const names = deploymentNames('Sluice');
    expect(names).toMatchObject({
      stackName: 'Sluice',
      id: 'sluice',
      glueDatabase: 'sluice',
      workGroup: 'sluice',
      serviceName: 'sluice',
    });
    expect(names.serviceName).toBe(SLUICE_SERVICE_NAME);
    expect(names.endpointName('sluice-docs-embed')).toBe('sluice-docs-embed');
  });

  it('derives every name of another stack from its name in lower case', () => {
    expect(deploymentNames('SluiceDev')).toMatchObject({
      glueDatabase: 'sluicedev',
      workGroup: 'sluicedev',
      serviceName: 'sluicedev',
    });
    expect(deploymentNames('SluiceDev').endpointName('sluice-docs-embed')).toBe(
      'sluicedev-sluice-docs-embed',
    );
    // Glue database names have no hyphen: it becomes an underscore there, and only there.
    const hyphenated = deploymentNames('Sluice-Dev-2');
    expect(hyphenated).toMatchObject({
      glueDatabase: 'sluice_dev_2',
      workGroup: 'sluice-dev-2',
      serviceName: 'sluice-dev-2',
    });
    expect(hyphenated.endpointName('sluice-credit-risk')).toBe('sluice-dev-2-sluice-credit-risk');
  });

  it('gives names AWS accepts for any stack name it accepts', () => {
    for (const stackName of ['Sluice', 'SluiceDev', 'sluice-prod-eu', 'A', 'X1-2-3', 'S'.repeat(128)]) {
      const names = deploymentNames(stackName);
      expect(names.glueDatabase).toMatch(GLUE_DATABASE);
      expect(names.workGroup).toMatch(ATHENA_WORKGROUP);
    }
  });

  it('refuses a stack name it cannot derive valid names from, in one line naming the context key', () => {
    for (const bad of [
      '',
      'Sluice_Dev',
      'Sluice.Dev',
      '1Sluice',
      '-Sluice',
      'Sluice-',
      'Sluice--Dev',
      'S'.repeat(129),
    ]) {
      expect(() => deploymentNames(bad), bad).toThrow(
        /^stack name .* \(context sluice:stackName\), e\.g\. SluiceDev$/,
      );
    }
  });

  it('refuses an endpoint name the stack name makes longer than SageMaker allows', () => {
    const names = deploymentNames(`Sluice${'x'.repeat(40)}`);
    expect(() => names.endpointName('sluice-docs-embed')).toThrow(
      /^stack Sluicex+ deploys endpoint sluice-docs-embed as sluicex+-sluice-docs-embed \(64 characters\), which SageMaker refuses .*sluice:stackName/,
    );
    expect(deploymentNames(`Sluice${'x'.repeat(39)}`).endpointName('sluice-docs-embed')).toHaveLength(63);
  });

  it('checks context sluice:stackName when the app reads its context', () => {
    const contextOf = (stackName: string) =>
      readContext(new App({ context: { 'sluice:stackName': stackName } }).node);
    expect(contextOf('SluiceDev').stackName).toBe('SluiceDev');
    expect(() => contextOf('Sluice_Dev')).toThrow(/^stack name "Sluice_Dev" .*context sluice:stackName/);
  });
});

describe('two stacks in one account and region', () => {
  let docs: EmbedPipelineConfig;
  let creditRisk: ScorePipelineConfig;
  let prod: SluiceStack;
  let dev: SluiceStack;
  let templates: { stack: SluiceStack; resources: Resources; outputs: Cfn }[];

  beforeAll(async () => {
    docs = await loadDocsPipeline();
    creditRisk = await loadCreditRiskPipeline();
    const app = new App();
    const props = {
      env: { account: '123456789012', region: 'us-east-1' },
      pipelines: [docs, creditRisk],
      functionEntries: FIXTURE_ENTRIES,
      dataRemovalPolicy: RemovalPolicy.DESTROY,
    };
    prod = new SluiceStack(app, 'Sluice', props);
    dev = new SluiceStack(app, 'SluiceDev', props);
    templates = [prod, dev].map((stack) => {
      const json = Template.fromStack(stack).toJSON();
      return { stack, resources: json.Resources as Resources, outputs: json.Outputs };
    });
  });

  /**
   * Where each resource type keeps a name that is unique in an account and region, when
   * the template sets one (CloudFormation generates it, from the stack name, otherwise).
   */
  const PHYSICAL_NAME: Readonly<Record<string, (p: Cfn) => unknown>> = {
    'AWS::Glue::Database': (p) => p.DatabaseInput?.Name,
    'AWS::Glue::Table': (p) => `${p.DatabaseName}.${p.TableInput?.Name}`,
    'AWS::Athena::WorkGroup': (p) => p.Name,
    'AWS::SageMaker::Endpoint': (p) => p.EndpointName,
    'AWS::SageMaker::EndpointConfig': (p) => p.EndpointConfigName,
    'AWS::SageMaker::Model': (p) => p.ModelName,
    'AWS::SageMaker::InferenceComponent': (p) => p.InferenceComponentName,
    // Unique per scalable target, whose resource id names the (prefixed) inference component.
    'AWS::ApplicationAutoScaling::ScalingPolicy': (p) => p.PolicyName,
    'AWS::Logs::LogGroup': (p) => p.LogGroupName,
    'AWS::S3::Bucket': (p) => p.BucketName,
    'AWS::SQS::Queue': (p) => p.QueueName,
    'AWS::SNS::Topic': (p) => p.TopicName,
    'AWS::DynamoDB::Table': (p) => p.TableName,
    'AWS::Lambda::Function': (p) => p.FunctionName,
    'AWS::IAM::Role': (p) => p.RoleName,
    'AWS::IAM::ManagedPolicy': (p) => p.ManagedPolicyName,
    'AWS::Scheduler::Schedule': (p) => p.Name && `${p.GroupName ?? 'default'}/${p.Name}`,
    'AWS::KMS::Alias': (p) => p.AliasName,
    'AWS::CloudWatch::Alarm': (p) => p.AlarmName,
  };
  /** Literal names that are not account-wide: an inline policy's (per role), an alarm's metric. */
  const NOT_ACCOUNT_WIDE = new Set(['AWS::IAM::Policy PolicyName', 'AWS::CloudWatch::Alarm MetricName']);

  const physicalNames = (resources: Resources): string[] =>
    Object.values(resources).flatMap(({ Type, Properties }) => {
      const name = PHYSICAL_NAME[Type]?.(Properties ?? {});
      return name === undefined ? [] : [`${Type} ${JSON.stringify(name)}`];
    });

  it('names no account-unique resource the same in both templates', () => {
    const [prodNames, devNames] = templates.map(({ resources }) => physicalNames(resources));
    // The explicit names there are, so the check is not vacuous.
    expect(prodNames).toEqual(
      expect.arrayContaining([
        'AWS::Glue::Database "sluice"',
        'AWS::Athena::WorkGroup "sluice"',
        'AWS::SageMaker::Endpoint "sluice-docs-embed"',
        'AWS::SageMaker::Endpoint "sluice-credit-risk"',
        'AWS::SageMaker::InferenceComponent "sluice-docs-embed-model"',
        'AWS::SageMaker::InferenceComponent "sluice-credit-risk-model"',
        'AWS::Logs::LogGroup "/aws/sagemaker/Endpoints/sluice-docs-embed"',
        'AWS::Logs::LogGroup "/aws/sagemaker/Endpoints/sluice-credit-risk"',
      ]),
    );
    expect(devNames).toEqual(
      expect.arrayContaining([
        'AWS::Glue::Database "sluicedev"',
        'AWS::Athena::WorkGroup "sluicedev"',
        'AWS::SageMaker::Endpoint "sluicedev-sluice-docs-embed"',
        'AWS::SageMaker::Endpoint "sluicedev-sluice-credit-risk"',
        'AWS::SageMaker::InferenceComponent "sluicedev-sluice-docs-embed-model"',
        'AWS::SageMaker::InferenceComponent "sluicedev-sluice-credit-risk-model"',
        'AWS::Logs::LogGroup "/aws/sagemaker/Endpoints/sluicedev-sluice-docs-embed"',
        'AWS::Logs::LogGroup "/aws/sagemaker/Endpoints/sluicedev-sluice-credit-risk"',
      ]),
    );
    expect(devNames!.filter((name) => prodNames!.includes(name))).toEqual([]);
  });

  it('sets no other literal resource name that this test does not compare', () => {
    for (const { resources } of templates) {
      const unchecked = Object.values(resources).flatMap(({ Type, Properties }) =>
        Object.entries(Properties ?? {})
          .filter(([key, value]) => /Name$/.test(key) && typeof value === 'string')
          .map(([key]) => `${Type} ${key}`)
          .filter((typeKey) => !NOT_ACCOUNT_WIDE.has(typeKey) && !(typeKey.split(' ')[0]! in PHYSICAL_NAME)),
      );
      expect(unchecked).toEqual([]);
    }
  });

  it('gives each stack its own Powertools service name, and its alarms select only that service', () => {
    for (const { stack, resources } of templates) {
      const { serviceName } = stack.names;
      const services = Object.values(resources)
        .filter((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables)
        .map((r) => r.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME)
        .filter((name) => name !== undefined);
      // plan, work, finalize, dead-letter and the capacity sweeper.
      expect(services).toEqual([serviceName, serviceName, serviceName, serviceName, serviceName]);

      const metricAlarms = Object.values(resources).filter(
        (r) => r.Type === 'AWS::CloudWatch::Alarm' && r.Properties.Namespace === 'Sluice',
      );
      expect(metricAlarms.map((r) => r.Properties.MetricName).sort()).toEqual(
        ['CapacityWithoutRun', 'DeadLettersUnreadable', 'RunsFailed', 'UnitsDeadLettered'].sort(),
      );
      for (const alarm of metricAlarms) {
        expect(alarm.Properties.Dimensions).toEqual([{ Name: 'service', Value: serviceName }]);
      }
    }
    expect(prod.names.serviceName).toBe('sluice');
    expect(dev.names.serviceName).toBe('sluicedev');
  });

  it("matches each stack's alarms to what its own functions publish, and not to the other's", () => {
    const [prodEmf, devEmf] = [prod, dev].map((stack) => {
      const variables =
        Template.fromStack(stack).toJSON().Resources[
          stack.getLogicalId(stack.functions.finalize.function.node.defaultChild as never)
        ].Properties.Environment.Variables;
      return publishedEmf('finalize', 'RunsFailed', variables);
    });
    const alarmDimensions = (stack: SluiceStack) => {
      const alarm = stack.alarms.failureAlarms.get('RunsFailed')!;
      return Template.fromStack(stack).toJSON().Resources[
        stack.getLogicalId(alarm.node.defaultChild as never)
      ].Properties.Dimensions;
    };
    const emfDimensions = (emf: Cfn) =>
      emf._aws.CloudWatchMetrics[0].Dimensions[0].map((name: string) => ({ Name: name, Value: emf[name] }));
    expect(alarmDimensions(prod)).toEqual(emfDimensions(prodEmf));
    expect(alarmDimensions(dev)).toEqual(emfDimensions(devEmf));
    expect(alarmDimensions(dev)).not.toEqual(emfDimensions(prodEmf));
    expect(alarmDimensions(prod)).not.toEqual(emfDimensions(devEmf));
  });

  it("ships each stack's endpoint names in its pipelines file and lets its work function invoke only its own endpoints", () => {
    expect(bundledPipelines(prod.functions.work)).toEqual([docs, creditRisk]);
    expect(bundledPipelines(dev.functions.work)).toEqual([
      { ...docs, endpoint: { ...docs.endpoint, name: 'sluicedev-sluice-docs-embed' } },
      { ...creditRisk, model: { ...creditRisk.model, endpointName: 'sluicedev-sluice-credit-risk' } },
    ]);
    for (const { stack, resources } of templates) {
      const workPolicy =
        resources[
          stack.getLogicalId(
            stack.functions.work.role.node.findChild('DefaultPolicy').node.defaultChild as never,
          )
        ];
      const invoked = (workPolicy!.Properties.PolicyDocument.Statement as Cfn[])
        .filter((s) => [s.Action].flat().includes('sagemaker:InvokeEndpoint'))
        .flatMap((s) => [...JSON.stringify(s.Resource).matchAll(/endpoint\/([a-z0-9-]+)/g)].map((m) => m[1]))
        .sort();
      expect(invoked).toEqual(stack.pipelines.flatMap((p) => endpointNameOf(p) ?? []).sort());
    }
  });

  it('outputs the Glue database and Athena workgroup each stack created', () => {
    for (const { stack, outputs } of templates) {
      expect(outputs.GlueDatabaseName.Value).toBe(stack.names.glueDatabase);
      expect(outputs.AthenaWorkGroupName.Value).toBe(stack.names.workGroup);
    }
    expect(templates.map(({ outputs }) => outputs.GlueDatabaseName.Value)).toEqual(['sluice', 'sluicedev']);
  });

  it('fails synth with one line when the stack name makes an endpoint name too long', () => {
    expect(() => buildStack({ pipelines: [docs], stackName: `Sluice${'x'.repeat(50)}` })).toThrow(
      /^stack Sluicex+ deploys endpoint sluice-docs-embed as sluicex+-sluice-docs-embed \(\d+ characters\)/,
    );
  });

  it('fails synth with one line for a stack name CloudFormation accepts but the names cannot use', () => {
    expect(() => buildStack({ pipelines: [docs], stackName: 'Sluice--Dev' })).toThrow(
      /^stack name "Sluice--Dev" cannot name Sluice's Glue database/,
    );
  });
});
