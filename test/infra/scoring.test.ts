import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import type { EmbedPipelineConfig, ScorePipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  bundledPipelines,
  loadCreditRiskPipeline,
  loadDocsPipeline,
  TEST_XGBOOST_IMAGE_URI,
} from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

let docs: EmbedPipelineConfig;
let creditRisk: ScorePipelineConfig;
let stack: SluiceStack;
let template: Template;

beforeAll(async () => {
  docs = await loadDocsPipeline();
  creditRisk = await loadCreditRiskPipeline();
  stack = buildStack({ pipelines: [docs, creditRisk] }).stack;
  template = Template.fromStack(stack);
});

/** Logical id of a construct's CloudFormation resource (or of a Cfn resource itself). */
const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
const getAtt = (construct: IConstruct, attribute: string) => ({ 'Fn::GetAtt': [idOf(construct), attribute] });
const bucketObjects = (suffix: string) => ({
  'Fn::Join': ['', [getAtt(stack.storage.bucket, 'Arn'), suffix]],
});

/** Statements of a role's default policy. */
const statementsOf = (role: IConstruct): Cfn[] =>
  template.toJSON().Resources[idOf(role.node.findChild('DefaultPolicy'))].Properties.PolicyDocument.Statement;
const actionsOf = (statement: Cfn): string[] => [statement.Action].flat();
const resourcesOf = (statement: Cfn): Cfn[] => [statement.Resource].flat();
/** Every resource a role may use `action` on. */
const resourcesAllowed = (role: IConstruct, action: string): Cfn[] =>
  statementsOf(role)
    .filter((s) => actionsOf(s).includes(action))
    .flatMap(resourcesOf);

describe('ScoringEndpoint', () => {
  it("serves the built-in XGBoost image from context with the pipeline's model.tar.gz", () => {
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        Image: TEST_XGBOOST_IMAGE_URI,
        // model.modelKey models/credit-risk/model.json -> model.tar.gz beside it.
        ModelDataUrl: {
          'Fn::Join': [
            '',
            ['s3://', { Ref: idOf(stack.storage.bucket) }, '/models/credit-risk/model.tar.gz'],
          ],
        },
      },
    });
  });

  it('hosts the model (hosting instance) as an inference component on the configured instance type, under the configured endpoint name', () => {
    const [endpoint] = stack.scoringEndpoints;
    expect(stack.scoringEndpoints).toHaveLength(1);
    expect(creditRisk.model.hosting).toBe('instance');
    const variants =
      template.toJSON().Resources[idOf(endpoint!.endpointConfig)].Properties.ProductionVariants;
    expect(variants).toEqual([
      expect.objectContaining({
        InstanceType: creditRisk.model.instanceType,
        ManagedInstanceScaling: { Status: 'ENABLED', MinInstanceCount: 0, MaxInstanceCount: 4 },
      }),
    ]);
    // With inference components the model is named by the component, not the variant.
    expect(variants[0].ModelName).toBeUndefined();
    template.hasResourceProperties('AWS::SageMaker::InferenceComponent', {
      InferenceComponentName: 'sluice-credit-risk-model',
      EndpointName: getAtt(endpoint!.endpoint, 'EndpointName'),
      Specification: {
        ModelName: getAtt(endpoint!.model, 'ModelName'),
        ComputeResourceRequirements: { NumberOfCpuCoresRequired: 1, MinMemoryRequiredInMb: 1024 },
      },
    });
    expect(creditRisk.model.instanceType).toBe('ml.m5.large');
    template.hasResourceProperties('AWS::SageMaker::Endpoint', {
      EndpointName: 'sluice-credit-risk',
      EndpointConfigName: getAtt(endpoint!.endpointConfig, 'EndpointConfigName'),
    });
    template.resourceCountIs('AWS::SageMaker::Endpoint', 2);
  });

  it('lets its execution role read only the one model archive and pull only the XGBoost repository', () => {
    const { role } = stack.scoringEndpoints[0]!;
    const s3Statements = statementsOf(role).filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3Statements.map((s) => [actionsOf(s), resourcesOf(s)])).toEqual([
      [['s3:GetObject'], [bucketObjects('/models/credit-risk/model.tar.gz')]],
    ]);
    const repositories = resourcesAllowed(role, 'ecr:BatchGetImage');
    expect(repositories).toHaveLength(1);
    expect(JSON.stringify(repositories[0])).toMatch(
      /:ecr:us-east-1:683313688378:repository\/sagemaker-xgboost"/,
    );
    expect(JSON.stringify(resourcesAllowed(role, 'logs:PutLogEvents'))).toContain(
      'ScoringsluicecreditriskLogGroup',
    );
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/aws/sagemaker/Endpoints/sluice-credit-risk',
    });
  });
});

describe('Schedules of a score pipeline', () => {
  it('re-scores datasets/customers/ on the cron from pipelines/credit-risk.json', () => {
    // Two pipeline schedules and the capacity sweeper's.
    template.resourceCountIs('AWS::Scheduler::Schedule', 3);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 2 * * ? *)',
      ScheduleExpressionTimezone: 'UTC',
      Target: {
        Arn: getAtt(stack.queues.ingest.queue, 'Arn'),
        Input:
          '{"kind":"scheduled-run","pipeline":"credit-risk","prefix":"datasets/customers/","scheduledTime":"<aws.scheduler.scheduled-time>","schedule":"<aws.scheduler.schedule-arn>"}',
        RetryPolicy: Match.anyValue(),
        RoleArn: Match.anyValue(),
        DeadLetterConfig: { Arn: getAtt(stack.queues.ingest.deadLetterQueue, 'Arn') },
      },
    });
  });
});

describe('QueryLayer with a score pipeline', () => {
  const table = (name: string): Cfn => {
    const found = Object.values(template.findResources('AWS::Glue::Table')).find(
      (t) => t.Properties.TableInput.Name === name,
    );
    if (!found) throw new Error(`no Glue table ${name}`);
    return found.Properties.TableInput;
  };
  const columns = (name: string) =>
    Object.fromEntries(
      table(name).StorageDescriptor.Columns.map((c: { Name: string; Type: string }) => [c.Name, c.Type]),
    );

  it('defines scores and segment_stats beside the other tables', () => {
    const names = Object.values(template.findResources('AWS::Glue::Table')).map(
      (t) => t.Properties.TableInput.Name,
    );
    expect(names.sort()).toEqual([
      'embeddings',
      'embeddings_current',
      'generations',
      'recommendations',
      'rejects',
      'runs',
      'scores',
      'scores_current',
      'segment_stats',
      'sources',
    ]);
  });

  it('projects the pipeline and run_date partitions of scores and segment_stats over every deployed pipeline', () => {
    for (const name of ['scores', 'segment_stats']) {
      const input = table(name);
      expect(input.PartitionKeys.map((k: { Name: string }) => k.Name)).toEqual(['pipeline', 'run_date']);
      expect(input.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.pipeline.type': 'enum',
        'projection.pipeline.values': 'docs,credit-risk',
        'projection.run_date.type': 'date',
        'projection.run_date.format': 'yyyy-MM-dd',
      });
      expect(JSON.stringify(input.Parameters['storage.location.template'])).toContain(
        `/results/${name}/pipeline=\${pipeline}/run_date=\${run_date}/`,
      );
    }
  });

  it('reads the columns the writer puts in scores and segment_stats', () => {
    expect(columns('scores')).toEqual({
      run_id: 'string',
      record_id: 'string',
      score: 'double',
      model: 'string',
      // The version of the model object that scored the row (docs/scoring.md).
      model_version: 'string',
      source_key: 'string',
      line: 'bigint',
      outputs: 'string',
      metadata: 'string',
      reasons: 'string',
    });
    expect(columns('segment_stats')).toMatchObject({
      segment_key: 'string',
      count: 'bigint',
      score_mean: 'double',
      trials: 'bigint',
      positives: 'bigint',
      rate_mle: 'double',
      rate_map: 'double',
      prior_alpha: 'double',
      prior_method: 'string',
    });
  });
});

describe('Functions with a score pipeline', () => {
  it('lets the work function invoke the embedding and the scoring endpoint and their inference components, each by its exact ARN', () => {
    const arns = resourcesAllowed(stack.functions.work.role, 'sagemaker:InvokeEndpoint');
    const [embedding] = stack.endpoints;
    const [scoring] = stack.scoringEndpoints;
    expect(arns).toEqual(
      expect.arrayContaining([
        stack.resolve(embedding!.endpointArn),
        stack.resolve(embedding!.inferenceComponentArn),
        stack.resolve(scoring!.endpointArn),
        stack.resolve(scoring!.inferenceComponentArn),
      ]),
    );
    expect(arns).toHaveLength(4);
    expect(JSON.stringify(arns)).toContain(':sagemaker:us-east-1:123456789012:endpoint/sluice-credit-risk"');
    expect(JSON.stringify(arns)).toContain(
      ':sagemaker:us-east-1:123456789012:inference-component/sluice-credit-risk-model"',
    );
    expect(JSON.stringify(arns)).not.toContain('*');
    for (const fn of [stack.functions.plan, stack.functions.finalize]) {
      expect(resourcesAllowed(fn.role, 'sagemaker:InvokeEndpoint')).toEqual([]);
    }
  });

  it('lets finalize send the units of the scoring run it plans to the work queue', () => {
    expect(resourcesAllowed(stack.functions.finalize.role, 'sqs:SendMessage')).toEqual(
      expect.arrayContaining([
        getAtt(stack.queues.work.queue, 'Arn'),
        getAtt(stack.queues.finalize.queue, 'Arn'),
      ]),
    );
  });

  it('gives each function the object prefixes its scoring steps use, and no more', () => {
    const { plan, work, finalize } = stack.functions;
    const prefixes = (fn: typeof plan, action: string) =>
      resourcesAllowed(fn.role, action)
        .filter((r) => r['Fn::Join'])
        .map((r) => r['Fn::Join'][1][1] as string)
        .sort();
    // plan: decides fit or reuse from the stored statistics.
    expect(prefixes(plan, 's3:GetObject')).toEqual(['/datasets/*', '/incoming/*', '/models/*', '/runs/*']);
    // work: statistics and lookup tables in; fit and segment partials out; the incremental
    // docs pipeline's replaced chunk index entries (runs/docs/ only) read back by a retry.
    expect(prefixes(work, 's3:GetObject')).toEqual([
      '/datasets/*',
      '/incoming/*',
      '/models/*',
      '/results/*',
      '/runs/docs/*',
      '/staging/*',
    ]);
    expect(prefixes(work, 's3:PutObject')).toEqual(['/results/*', '/runs/*']);
    // finalize: writes the fitted statistics at the end of the fit stage and plans the score
    // stage from the fit stage's units, so it reads no input; it reads the model under
    // models/ for the schema check; never deletes anything.
    expect(prefixes(finalize, 's3:GetObject')).toEqual(['/models/*', '/results/*', '/runs/*']);
    expect(prefixes(finalize, 's3:PutObject')).toEqual(['/models/*', '/results/*', '/runs/*']);
    // No function deletes an object: the ObjectStore port has no delete.
    for (const fn of [plan, work, finalize]) expect(prefixes(fn, 's3:DeleteObject*')).toEqual([]);
  });

  it('ships both pipeline configs with every function, leaving only their file name and hash in the environment', () => {
    for (const fn of [stack.functions.plan, stack.functions.work, stack.functions.finalize]) {
      const variables = template.toJSON().Resources[idOf(fn.function)].Properties.Environment.Variables;
      expect(bundledPipelines(fn)).toEqual([docs, creditRisk]);
      expect(variables).toMatchObject({
        SLUICE_PIPELINES_FILE: 'sluice-pipelines.json',
        SLUICE_PIPELINES_SHA256: stack.functions.pipelinesFile.sha256,
      });
      expect(variables).not.toHaveProperty('SLUICE_PIPELINES');
    }
  });
});
