import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import { buildStack, loadCreditRiskPipeline, loadDocsPipeline } from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;

let stack: SluiceStack;
let resources: Record<string, Cfn>;

// The default deployment with the default removal policies, as `cdk deploy` creates it.
beforeAll(async () => {
  stack = buildStack({
    pipelines: [await loadDocsPipeline(), await loadCreditRiskPipeline()],
    dataRemovalPolicy: undefined,
  }).stack;
  resources = Template.fromStack(stack).toJSON().Resources;
}, 180_000);

describe('deleting the stack (docs/infra.md, Teardown)', () => {
  it('keeps exactly the resources the teardown lists: both buckets, the runs table, the function log groups and the alarm key', () => {
    const retained = Object.entries(resources)
      .filter(([, resource]) => resource.DeletionPolicy === 'Retain')
      .map(([id, resource]) => `${resource.Type} ${id.replace(/[0-9A-F]{8}$/, '')}`)
      .sort();
    expect(retained).toEqual([
      'AWS::DynamoDB::Table RunsTable',
      'AWS::KMS::Key AlarmsTopicKey',
      // What the sweeper scaled and when: the audit of what capacity cost.
      'AWS::Logs::LogGroup CapacitySweeperLogGroup',
      'AWS::Logs::LogGroup FunctionsDeadLetterLogGroup',
      'AWS::Logs::LogGroup FunctionsFinalizeLogGroup',
      'AWS::Logs::LogGroup FunctionsPlanLogGroup',
      'AWS::Logs::LogGroup FunctionsWorkLogGroup',
      'AWS::S3::Bucket StorageAccessLogsBucket',
      'AWS::S3::Bucket StorageDataBucket',
    ]);
  });

  it('deletes the SageMaker models, endpoint configs, endpoints, inference components and their scaling, which cost money or hold nothing', () => {
    for (const type of [
      'AWS::SageMaker::Model',
      'AWS::SageMaker::EndpointConfig',
      'AWS::SageMaker::Endpoint',
      'AWS::SageMaker::InferenceComponent',
      'AWS::ApplicationAutoScaling::ScalableTarget',
      'AWS::ApplicationAutoScaling::ScalingPolicy',
      'AWS::Scheduler::Schedule',
      'AWS::SQS::Queue',
      'AWS::Glue::Database',
      'AWS::Athena::WorkGroup',
    ]) {
      const ofType = Object.values(resources).filter((resource: Cfn) => resource.Type === type);
      expect(ofType.length, type).toBeGreaterThan(0);
      for (const resource of ofType) expect(resource.DeletionPolicy ?? 'Delete', type).toBe('Delete');
    }
  });

  it('leaves the uploaded model files in the (kept) data bucket', () => {
    const upload = Object.values(resources).find(
      (resource: Cfn) => resource.Type === 'Custom::CDKBucketDeployment',
    );
    expect(upload.Properties.RetainOnDelete).toBe(true);
  });
});
