import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceFunction } from '../../infra/constructs/sluice-function.ts';
import { DEFAULT_FUNCTION_ENTRIES, type SluiceStack } from '../../infra/sluice-stack.ts';
import {
  buildStack,
  loadCreditRiskPipeline,
  loadDocsPipeline,
  publishedEmf,
} from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let stack: SluiceStack;
let template: Template;

// The default deployment (docs and credit-risk), so there are embedding and scoring
// endpoints the dead-letter function must not reach; with cdk-nag, as infra/app.ts runs it.
beforeAll(async () => {
  stack = buildStack(
    { pipelines: [await loadDocsPipeline(), await loadCreditRiskPipeline()] },
    { nag: true },
  ).stack;
  template = Template.fromStack(stack);
});

const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId(construct.node.defaultChild as never);
const resource = (construct: IConstruct): { Properties: Cfn; Metadata?: Cfn } =>
  template.toJSON().Resources[idOf(construct)];
const getAtt = (construct: IConstruct, attribute: string) => ({ 'Fn::GetAtt': [idOf(construct), attribute] });
const ref = (construct: IConstruct) => ({ Ref: idOf(construct) });
const underArn = (construct: IConstruct, suffix: string) => ({
  'Fn::Join': ['', [getAtt(construct, 'Arn'), suffix]],
});

/** Every (action, resource) pair the function's role is allowed, resources as JSON. */
function grantsOf(fn: SluiceFunction): { action: string; resource: string }[] {
  const statements = resource(fn.role.node.findChild('DefaultPolicy')).Properties.PolicyDocument
    .Statement as Cfn[];
  return statements.flatMap((s) => {
    expect(s.Effect).toBe('Allow');
    return [s.Action]
      .flat()
      .flatMap((action: string) =>
        [s.Resource].flat().map((r: unknown) => ({ action, resource: JSON.stringify(r) })),
      );
  });
}

describe('DeadLetter function', () => {
  it('runs the handler of functions/dead-letter.ts by default', () => {
    expect(DEFAULT_FUNCTION_ENTRIES.deadLetter).toBe('functions/dead-letter.ts');
    const source = readFileSync(path.join(repoRoot, DEFAULT_FUNCTION_ENTRIES.deadLetter), 'utf8');
    expect(source).toMatch(/^export const handler\b/m);
  });

  it('consumes the work dead-letter queue ten messages at a time, reporting partial batch failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(stack.queues.work.deadLetterQueue, 'Arn'),
      FunctionName: ref(stack.functions.deadLetter.function),
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    const consumers = template.findResources('AWS::Lambda::EventSourceMapping', {
      Properties: { EventSourceArn: getAtt(stack.queues.work.deadLetterQueue, 'Arn') },
    });
    expect(Object.keys(consumers)).toHaveLength(1);
  });

  it('is small and short, and the work dead-letter queue hides a message for six times its timeout', () => {
    const props = resource(stack.functions.deadLetter.function).Properties;
    expect(props).toMatchObject({ Timeout: 60, MemorySize: 512, Handler: 'index.handler' });
    expect(resource(stack.queues.work.deadLetterQueue).Properties.VisibilityTimeout).toBe(6 * 60);
  });

  it('gets the same environment as the work function', () => {
    const variables = (fn: SluiceFunction) => resource(fn.function).Properties.Environment.Variables;
    expect(variables(stack.functions.deadLetter)).toEqual(variables(stack.functions.work));
  });

  it('may update the runs table, read and put results/*, send to the finalize queue and consume the work DLQ', () => {
    const grants = grantsOf(stack.functions.deadLetter);
    const allows = (action: string, on: unknown) =>
      grants.some((g) => g.action === action && g.resource === JSON.stringify(on));
    const table = getAtt(stack.runsTable.table, 'Arn');
    const results = underArn(stack.storage.bucket, '/results/*');
    expect(allows('dynamodb:GetItem', table)).toBe(true);
    expect(allows('dynamodb:UpdateItem', table)).toBe(true);
    expect(allows('s3:GetObject', results)).toBe(true);
    // HEAD of a missing part answers 404, not 403, only with s3:ListBucket on the bucket.
    expect(allows('s3:ListBucket', getAtt(stack.storage.bucket, 'Arn'))).toBe(true);
    expect(allows('s3:PutObject', results)).toBe(true);
    expect(allows('sqs:SendMessage', getAtt(stack.queues.finalize.queue, 'Arn'))).toBe(true);
    expect(allows('sqs:DeleteMessage', getAtt(stack.queues.work.deadLetterQueue, 'Arn'))).toBe(true);
  });

  it('may touch no other prefix, queue or endpoint, and delete no object', () => {
    const grants = grantsOf(stack.functions.deadLetter);
    const reachable = new Set(
      [
        getAtt(stack.functions.deadLetter.logGroup, 'Arn'),
        getAtt(stack.queues.work.deadLetterQueue, 'Arn'),
        getAtt(stack.queues.finalize.queue, 'Arn'),
        getAtt(stack.storage.bucket, 'Arn'),
        underArn(stack.storage.bucket, '/results/*'),
        getAtt(stack.runsTable.table, 'Arn'),
      ].map((r) => JSON.stringify(r)),
    );
    for (const { action, resource: on } of grants) expect(reachable, `${action} on ${on}`).toContain(on);
    expect(grants.filter((g) => g.action.startsWith('sagemaker:'))).toEqual([]);
    expect(grants.filter((g) => g.action.startsWith('s3:Delete'))).toEqual([]);
    expect(
      grants.filter((g) => g.action === 'sqs:SendMessage').map((g) => g.resource),
      'sends only to the finalize queue',
    ).toEqual([JSON.stringify(getAtt(stack.queues.finalize.queue, 'Arn'))]);
  });

  it('passes cdk-nag, accepting IAM5 only for results/* on its role', () => {
    const annotations = Annotations.fromStack(stack);
    const nag = Match.stringLikeRegexp('AwsSolutions-.*');
    const findings = [...annotations.findError('*', nag), ...annotations.findWarning('*', nag)];
    expect(findings.filter((f) => f.id.startsWith(`/${stack.stackName}/Functions/DeadLetter/`))).toEqual([]);
    const suppressions = resource(stack.functions.deadLetter.role).Metadata.cdk_nag.rules_to_suppress as {
      id: string;
      applies_to: string[];
    }[];
    expect(suppressions.every((s) => s.id === 'AwsSolutions-IAM5')).toBe(true);
    const bucket = `<${idOf(stack.storage.bucket)}.Arn>`;
    expect(suppressions.flatMap((s) => s.applies_to).sort()).toEqual([`Resource::${bucket}/results/*`]);
  });
});

describe('Alarms on failure metrics', () => {
  const failureAlarms = [
    { metricName: 'UnitsDeadLettered', step: 'dead-letter', source: () => stack.functions.deadLetter },
    { metricName: 'DeadLettersUnreadable', step: 'dead-letter', source: () => stack.functions.deadLetter },
    { metricName: 'RunsFailed', step: 'finalize', source: () => stack.functions.finalize },
  ] as const;

  it('alarms on any minute in which a unit is dead-lettered or a run fails, and notifies the alarm topic', () => {
    for (const { metricName } of failureAlarms) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'Sluice',
        MetricName: metricName,
        Dimensions: [{ Name: 'service', Value: 'sluice' }],
        Statistic: 'Sum',
        Period: 60,
        EvaluationPeriods: 1,
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [ref(stack.alarms.topic)],
      });
    }
  });

  it('keeps the depth alarm of every dead-letter queue', () => {
    for (const { queue } of stack.queues.deadLetterQueues) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: getAtt(queue, 'QueueName') }],
        AlarmActions: [ref(stack.alarms.topic)],
      });
    }
  });

  it('watches the namespace and dimensions Powertools publishes with, given the deployed environment', () => {
    for (const { metricName, step, source } of failureAlarms) {
      const variables = resource(source().function).Properties.Environment.Variables;
      const emf = publishedEmf(step, metricName, variables);
      const [directive] = emf._aws.CloudWatchMetrics;
      // CloudWatch stores one metric per dimension set; an alarm sees it only with that exact set.
      expect(directive.Dimensions).toHaveLength(1);
      const alarm = resource(stack.alarms.failureAlarms.get(metricName)!).Properties;
      expect(alarm.Namespace).toBe(directive.Namespace);
      expect(directive.Metrics.map((m: { Name: string }) => m.Name)).toEqual([alarm.MetricName]);
      expect(alarm.Dimensions).toEqual(
        directive.Dimensions[0].map((name: string) => ({ Name: name, Value: emf[name] })),
      );
    }
  });
});
