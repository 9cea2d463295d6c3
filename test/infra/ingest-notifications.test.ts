import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { buildStack, loadDocsPipeline } from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

let stack: SluiceStack;
let template: Template;
beforeAll(async () => {
  stack = buildStack({ pipelines: [await loadDocsPipeline()] }).stack;
  template = Template.fromStack(stack);
}, 180_000);

const logicalIdOf = (construct: { node: { defaultChild?: unknown } }) =>
  Stack.of(stack).getLogicalId(construct.node.defaultChild as never);

/** Every statement of every queue policy that lets S3 itself send. */
const statementsForS3 = (): Cfn[] =>
  Object.values(template.findResources('AWS::SQS::QueuePolicy'))
    .flatMap((policy: Cfn) => policy.Properties.PolicyDocument.Statement as Cfn[])
    .filter((statement) => JSON.stringify(statement.Principal).includes('s3.amazonaws.com'));

describe('S3 notifications to the ingest queue', () => {
  it('let S3 send only for the data bucket of this account (aws:SourceArn and aws:SourceAccount)', () => {
    const statements = statementsForS3();
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatchObject({
      Effect: 'Allow',
      Principal: { Service: 's3.amazonaws.com' },
      Resource: { 'Fn::GetAtt': [logicalIdOf(stack.queues.ingest.queue), 'Arn'] },
      Condition: {
        ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalIdOf(stack.storage.bucket), 'Arn'] } },
        StringEquals: { 'aws:SourceAccount': '123456789012' },
      },
    });
  });
});
