import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { TABLE_NAMES } from '../../infra/constructs/query-layer.ts';
import { SluiceFunction } from '../../infra/constructs/sluice-function.ts';
import type { SluiceStack } from '../../infra/sluice-stack.ts';
import type { EmbedPipelineConfig as PipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  buildStack,
  bundledPipelines,
  codeAssetOf,
  FIXTURE_ENTRIES,
  loadDocsPipeline,
  TEST_TEI_IMAGE_URI,
} from './sluice-stack-fixture.ts';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON has no static type.
type Cfn = any;
type Resource = { Type: string; Properties: Cfn; Metadata?: Cfn };

let docs: PipelineConfig;
let stack: SluiceStack;
let template: Template;

beforeAll(async () => {
  docs = await loadDocsPipeline();
  stack = buildStack({ pipelines: [docs] }).stack;
  template = Template.fromStack(stack);
});

/** Logical id of a construct's CloudFormation resource in the template. */
const idOf = (construct: IConstruct): string =>
  Stack.of(construct).getLogicalId(construct.node.defaultChild as never);
const resource = (construct: IConstruct): Resource =>
  template.toJSON().Resources[idOf(construct)] as Resource;
const getAtt = (construct: IConstruct, attribute: string) => ({ 'Fn::GetAtt': [idOf(construct), attribute] });
const ref = (construct: IConstruct) => ({ Ref: idOf(construct) });

const newestNodeRuntime = (): string =>
  lambda.Runtime.ALL.map((r) => r.name)
    .filter((name) => /^nodejs\d+\.x$/.test(name))
    .sort((a, b) => Number.parseInt(a.slice(6), 10) - Number.parseInt(b.slice(6), 10))
    .at(-1)!;

describe('Storage', () => {
  it('encrypts the data bucket, versions it and blocks all public access', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LoggingConfiguration: Match.anyValue(),
    });
  });

  it('denies every request to either bucket that does not use TLS', () => {
    for (const bucket of [stack.storage.bucket, stack.storage.accessLogsBucket]) {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: ref(bucket),
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Principal: { AWS: '*' },
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });

  it('writes server access logs of the data bucket to the separate log bucket', () => {
    const dataBucket = resource(stack.storage.bucket);
    expect(dataBucket.Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: ref(stack.storage.accessLogsBucket),
      LogFilePrefix: 'data-bucket/',
    });
    expect(resource(stack.storage.accessLogsBucket).Properties.LoggingConfiguration).toBeUndefined();
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: ref(stack.storage.accessLogsBucket),
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'logging.s3.amazonaws.com' },
            Action: 's3:PutObject',
            Condition: Match.objectLike({
              ArnLike: { 'aws:SourceArn': getAtt(stack.storage.bucket, 'Arn') },
            }),
          }),
        ]),
      },
    });
  });

  it('expires re-staged gzip parts under staging/ once no redriven unit can need them', () => {
    const rules = resource(stack.storage.bucket).Properties.LifecycleConfiguration.Rules as Cfn[];
    expect(rules).toContainEqual(
      expect.objectContaining({ Prefix: 'staging/', ExpirationInDays: 14, Status: 'Enabled' }),
    );
  });

  it('aborts incomplete multipart uploads', () => {
    const rules = resource(stack.storage.bucket).Properties.LifecycleConfiguration.Rules as Cfn[];
    expect(rules).toContainEqual(
      expect.objectContaining({
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
        Status: 'Enabled',
      }),
    );
  });

  it('outputs the data bucket name, where model archives and datasets are uploaded', () => {
    template.hasOutput('DataBucketName', { Value: ref(stack.storage.bucket) });
  });

  it('notifies the ingest queue of every object created or deleted under incoming/', () => {
    const incoming = { Key: { FilterRules: [{ Name: 'prefix', Value: 'incoming/' }] } };
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: ref(stack.storage.bucket),
      NotificationConfiguration: {
        QueueConfigurations: [
          {
            Events: ['s3:ObjectCreated:*'],
            Filter: incoming,
            QueueArn: getAtt(stack.queues.ingest.queue, 'Arn'),
          },
          {
            Events: ['s3:ObjectRemoved:*'],
            Filter: incoming,
            QueueArn: getAtt(stack.queues.ingest.queue, 'Arn'),
          },
        ],
      },
    });
  });

  it('leaves deletions out when no pipeline keeps source manifests (none is incremental embedding)', () => {
    const plain = buildStack({ pipelines: [{ ...docs, incremental: { enabled: false } }] }).stack;
    const notifications = Template.fromStack(plain).findResources('Custom::S3BucketNotifications');
    const configs = Object.values(notifications).flatMap(
      (resource) => (resource as Resource).Properties.NotificationConfiguration.QueueConfigurations as Cfn[],
    );
    expect(configs.map((config) => config.Events)).toEqual([['s3:ObjectCreated:*']]);
  });
});

describe('Queues', () => {
  it('gives the ingest, work and finalize queues each a dead-letter queue after maxReceiveCount deliveries', () => {
    for (const { queue, deadLetterQueue } of [
      stack.queues.ingest,
      stack.queues.work,
      stack.queues.finalize,
    ]) {
      expect(resource(queue).Properties.RedrivePolicy).toEqual({
        deadLetterTargetArn: getAtt(deadLetterQueue, 'Arn'),
        maxReceiveCount: docs.workers.maxReceiveCount,
      });
    }
  });

  it('encrypts every queue with SQS-managed keys and refuses non-TLS access', () => {
    const queues = template.findResources('AWS::SQS::Queue');
    // ingest, work, finalize, their dead-letter queues, and the work DLQ's own dead-letter queue.
    expect(Object.keys(queues)).toHaveLength(7);
    for (const queue of Object.values(queues)) expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy'));
    const tlsOnly = policies.filter((p) =>
      p.Properties.PolicyDocument.Statement.some(
        (s: Cfn) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
      ),
    );
    expect(tlsOnly).toHaveLength(7);
  });

  it('gives the work dead-letter queue, which dead-letter consumes, a dead-letter queue of its own', () => {
    expect(resource(stack.queues.work.deadLetterQueue).Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: getAtt(stack.queues.workDeadLetterOverflow, 'Arn'),
      maxReceiveCount: docs.workers.maxReceiveCount,
    });
    expect(resource(stack.queues.workDeadLetterOverflow).Properties.MessageRetentionPeriod).toBe(14 * 86_400);
    expect(stack.queues.deadLetterQueues.map((q) => q.name)).toContain('work-dead-letters');
  });

  it('hides a message for at least six times the timeout of the function that consumes it', () => {
    const pairs = [
      [stack.queues.ingest.queue, stack.functions.plan],
      [stack.queues.work.queue, stack.functions.work],
      [stack.queues.finalize.queue, stack.functions.finalize],
      [stack.queues.work.deadLetterQueue, stack.functions.deadLetter],
    ] as const;
    for (const [queue, fn] of pairs) {
      const visibility = resource(queue).Properties.VisibilityTimeout as number;
      const timeout = resource(fn.function).Properties.Timeout as number;
      expect(visibility).toBeGreaterThanOrEqual(6 * timeout);
    }
    expect(resource(stack.queues.work.queue).Properties.VisibilityTimeout).toBe(
      6 * docs.workers.timeoutSeconds,
    );
  });
});

describe('Functions', () => {
  const functions = () => [
    stack.functions.plan,
    stack.functions.work,
    stack.functions.finalize,
    stack.functions.deadLetter,
  ];

  it('feeds the work function one unit at a time with maxConcurrency from the config', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(stack.queues.work.queue, 'Arn'),
      FunctionName: ref(stack.functions.work.function),
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: docs.workers.maxConcurrency },
    });
  });

  it('feeds plan from the ingest queue in large batched windows (one run per drop) and finalize from the finalize queue, reporting partial batch failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(stack.queues.ingest.queue, 'Arn'),
      FunctionName: ref(stack.functions.plan.function),
      BatchSize: 1000,
      MaximumBatchingWindowInSeconds: 30,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(stack.queues.finalize.queue, 'Arn'),
      FunctionName: ref(stack.functions.finalize.function),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('runs every function on the newest Node.js runtime on arm64', () => {
    expect(newestNodeRuntime()).toBe('nodejs24.x');
    for (const fn of functions()) {
      expect(resource(fn.function).Properties).toMatchObject({
        Runtime: newestNodeRuntime(),
        Architectures: ['arm64'],
        Handler: 'index.handler',
      });
    }
  });

  it('gives all four functions the same environment contract (plan also the work event source it scales)', () => {
    for (const fn of functions()) {
      const { SLUICE_WORK_EVENT_SOURCE_ID: workEventSource, ...variables } = resource(fn.function).Properties
        .Environment.Variables as Record<string, unknown>;
      // Plan raises the work event source's limit with the copies; the work function must not
      // carry its own mapping's id (a cycle), and finalize and dead-letter do not scale it.
      const [workMapping] = Object.keys(
        template.findResources('AWS::Lambda::EventSourceMapping', {
          Properties: { FunctionName: ref(stack.functions.work.function) },
        }),
      );
      expect(workEventSource).toEqual(fn === stack.functions.plan ? { Ref: workMapping } : undefined);
      expect(variables).toEqual({
        SLUICE_BUCKET: ref(stack.storage.bucket),
        SLUICE_RUNS_TABLE: ref(stack.runsTable.table),
        SLUICE_WORK_QUEUE_URL: ref(stack.queues.work.queue),
        SLUICE_FINALIZE_QUEUE_URL: ref(stack.queues.finalize.queue),
        SLUICE_PIPELINES_FILE: 'sluice-pipelines.json',
        SLUICE_PIPELINES_SHA256: expect.stringMatching(/^[0-9a-f]{64}$/),
        POWERTOOLS_SERVICE_NAME: 'sluice',
        POWERTOOLS_METRICS_NAMESPACE: 'Sluice',
        NODE_OPTIONS: '--enable-source-maps',
      });
    }
  });

  it('ships the validated pipeline configs in every code asset, as the file whose hash the environment names', () => {
    for (const fn of functions()) {
      const { dir, hash } = codeAssetOf(fn);
      const variables = resource(fn.function).Properties.Environment.Variables;
      const file = readFileSync(path.join(dir, variables.SLUICE_PIPELINES_FILE));

      expect(resource(fn.function).Properties.Code.S3Key).toBe(`${hash}.zip`);
      expect(createHash('sha256').update(file).digest('hex')).toBe(variables.SLUICE_PIPELINES_SHA256);
      expect(bundledPipelines(fn)).toEqual([docs]);
    }
  });

  it('deploys new code and a new environment when a pipeline config changes', () => {
    const changed = buildStack({ pipelines: [{ ...docs, description: 'Embeds docs, reworded' }] }).stack;
    const changedTemplate = Template.fromStack(changed);
    for (const [fn, after] of [
      [stack.functions.plan, changed.functions.plan],
      [stack.functions.work, changed.functions.work],
    ] as const) {
      const afterProps = changedTemplate.toJSON().Resources[idOf(after.function)].Properties;
      expect(afterProps.Code.S3Key).not.toBe(resource(fn.function).Properties.Code.S3Key);
      expect(afterProps.Environment.Variables.SLUICE_PIPELINES_SHA256).not.toBe(
        resource(fn.function).Properties.Environment.Variables.SLUICE_PIPELINES_SHA256,
      );
    }
  });

  it('logs each function to its own log group with a retention', () => {
    for (const fn of functions()) {
      expect(resource(fn.function).Properties.LoggingConfig).toEqual({ LogGroup: ref(fn.logGroup) });
      expect(resource(fn.logGroup).Properties.RetentionInDays).toBe(30);
    }
  });

  it('sizes the work function from the workers config', () => {
    expect(resource(stack.functions.work.function).Properties).toMatchObject({
      Timeout: docs.workers.timeoutSeconds,
      MemorySize: docs.workers.memoryMiB,
    });
  });

  it('gives functions no model files and finalize no queue to send to when no score pipeline is deployed', () => {
    const grants = (fn: { role: IConstruct }) =>
      JSON.stringify(resource(fn.role.node.findChild('DefaultPolicy')).Properties.PolicyDocument);
    for (const fn of functions()) expect(grants(fn)).not.toContain('/models/*');
    expect(grants(stack.functions.finalize)).not.toContain('sqs:SendMessage');
  });

  it('lets work put runs/* (unit id lists for the duplicate-id rule; document lists when incremental) for every pipeline', () => {
    const workPutsRuns = (built: SluiceStack) => {
      const policy = built.functions.work.role.node.findChild('DefaultPolicy');
      const statements = Template.fromStack(built).toJSON().Resources[idOf(policy)].Properties.PolicyDocument
        .Statement as Cfn[];
      return statements.some(
        (s) => [s.Action].flat().includes('s3:PutObject') && JSON.stringify(s.Resource).includes('"/runs/*"'),
      );
    };
    expect(docs.incremental.enabled).toBe(true);
    expect(workPutsRuns(stack)).toBe(true);
    const { stack: plain } = buildStack({ pipelines: [{ ...docs, incremental: { enabled: false } }] });
    expect(workPutsRuns(plain)).toBe(true);
  });

  it('lets plan write re-staged gzip parts under staging/ and work read them', () => {
    const statements = (fn: { role: IConstruct }) =>
      resource(fn.role.node.findChild('DefaultPolicy')).Properties.PolicyDocument.Statement as Cfn[];
    const staging = { 'Fn::Join': ['', [getAtt(stack.storage.bucket, 'Arn'), '/staging/*']] };
    const allows = (fn: { role: IConstruct }, action: string) =>
      statements(fn).some(
        (s) =>
          [s.Action].flat().includes(action) &&
          JSON.stringify([s.Resource].flat()).includes(JSON.stringify(staging)),
      );
    expect(allows(stack.functions.plan, 's3:PutObject')).toBe(true);
    expect(allows(stack.functions.work, 's3:GetObject')).toBe(true);
    expect(allows(stack.functions.work, 's3:PutObject')).toBe(false);
  });

  it('lets work send to the work queue, where a checkpointed unit hands the rest of itself on', () => {
    const sends = (fn: { role: IConstruct }) =>
      (resource(fn.role.node.findChild('DefaultPolicy')).Properties.PolicyDocument.Statement as Cfn[])
        .filter((s) => [s.Action].flat().includes('sqs:SendMessage'))
        .map((s) => JSON.stringify(s.Resource));
    expect(sends(stack.functions.work)).toEqual(
      expect.arrayContaining([
        JSON.stringify(getAtt(stack.queues.work.queue, 'Arn')),
        JSON.stringify(getAtt(stack.queues.finalize.queue, 'Arn')),
      ]),
    );
  });

  it('grants each function only the runs table operations its steps perform: no Scan, DeleteItem, streams or index', () => {
    const statements = (fn: { role: IConstruct }) =>
      resource(fn.role.node.findChild('DefaultPolicy')).Properties.PolicyDocument.Statement as Cfn[];
    const tableActions = (fn: { role: IConstruct }) =>
      statements(fn)
        .filter((s) => JSON.stringify(s.Resource).includes(idOf(stack.runsTable.table)))
        .flatMap((s) => [s.Action].flat() as string[])
        .map((a) => a.replace('dynamodb:', ''))
        .sort();
    const { plan, work, finalize, deadLetter } = stack.functions;
    // UpdateItem: plan marks the run's capacity lease ready (run-scoped capacity).
    expect(tableActions(plan)).toEqual(['BatchWriteItem', 'GetItem', 'PutItem', 'Query', 'UpdateItem']);
    expect(tableActions(work)).toEqual([
      'BatchGetItem',
      'BatchWriteItem',
      'GetItem',
      'PutItem',
      'UpdateItem',
    ]);
    // finalize creates no run (a run's next stage is a batch write and an update), so no PutItem.
    expect(tableActions(finalize)).toEqual([
      'BatchGetItem',
      'BatchWriteItem',
      'GetItem',
      'Query',
      'UpdateItem',
    ]);
    expect(tableActions(deadLetter)).toEqual(['GetItem', 'UpdateItem']);
    for (const fn of functions()) {
      const all = statements(fn);
      expect(JSON.stringify(all), fn.node.path).not.toContain('/index/');
      const actions = all.flatMap((s) => [s.Action].flat() as string[]);
      expect(
        actions.filter((a) => a.startsWith('s3:Delete') || a.includes('*')),
        fn.node.path,
      ).toEqual([]);
      // Sends are exactly sqs:SendMessage: no queue attribute reads or URL lookups come with them.
      const sends = all.filter((s) => [s.Action].flat().includes('sqs:SendMessage'));
      for (const send of sends) expect(send.Action, fn.node.path).toBe('sqs:SendMessage');
    }
  });

  it('lets only the work function invoke the embedding endpoint, by its exact ARN', () => {
    const invokers = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([, policy]) =>
      JSON.stringify(policy.Properties.PolicyDocument).includes('sagemaker:InvokeEndpoint'),
    );
    expect(invokers.map(([id]) => id)).toEqual([
      idOf(stack.functions.work.role.node.findChild('DefaultPolicy')),
    ]);
    const statement = (invokers[0]![1].Properties.PolicyDocument.Statement as Cfn[]).find(
      (s) => s.Action === 'sagemaker:InvokeEndpoint',
    );
    expect(JSON.stringify(statement?.Resource)).toContain(':endpoint/sluice-docs-embed');
    expect(JSON.stringify(statement?.Resource)).not.toContain('*');
  });
});

describe('RunsTable', () => {
  it('is an on-demand, encrypted table with point-in-time recovery and the byStartedAt index', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byStartedAt',
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          // Exactly these: CloudFormation does not update a GSI's projection in place, so any
          // other list is a new index under a new name, deployed in two steps (docs/deployed-cli.md).
          // What the index leaves out (stage, stages, workPool, splitStack) status reads from the run items.
          Projection: {
            ProjectionType: 'INCLUDE',
            NonKeyAttributes: [
              'runId',
              'pipeline',
              'trigger',
              'startedAt',
              'inputs',
              'task',
              'status',
              'finishedAt',
              'totalUnits',
              'doneUnits',
              'failedUnits',
            ],
          },
        },
      ],
    });
  });
});

describe('EmbeddingEndpoint', () => {
  it("serves the table's TEI image for the stack's region with the pipeline's Hugging Face model", () => {
    template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        Image: TEST_TEI_IMAGE_URI,
        Environment: {
          // The model named by pipelines/docs.json, so results and endpoint agree.
          HF_MODEL_ID: 'BAAI/bge-small-en-v1.5',
          MAX_BATCH_TOKENS: String(docs.batching.maxBatchTokens),
          MAX_CLIENT_BATCH_SIZE: String(docs.batching.maxBatchSize),
        },
      },
    });
  });

  it('runs on ml.g5.xlarge instances, 0 at rest, under the endpoint name from the config', () => {
    template.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [
        Match.objectLike({
          InstanceType: 'ml.g5.xlarge',
          ManagedInstanceScaling: Match.objectLike({ MinInstanceCount: 0 }),
        }),
      ],
    });
    template.hasResourceProperties('AWS::SageMaker::Endpoint', { EndpointName: docs.endpoint.name });
  });

  it('lets the execution role pull only the TEI image repository', () => {
    const [endpoint] = stack.endpoints;
    const policy = resource(endpoint!.role.node.findChild('DefaultPolicy'));
    const pull = (policy.Properties.PolicyDocument.Statement as Cfn[]).find((s) =>
      [s.Action].flat().includes('ecr:BatchGetImage'),
    );
    expect(JSON.stringify(pull?.Resource)).toContain(':ecr:us-east-1:683313688378:repository/tei');
  });
});

describe('Schedules', () => {
  it('starts a run of the docs pipeline on the cron from pipelines/docs.json', () => {
    const schedule = docs.schedule!;
    // The pipeline's and the capacity sweeper's (run-scoped-capacity.test.ts).
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: schedule.expression,
      ScheduleExpressionTimezone: schedule.timezone,
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        // Through the ingest queue: plan's backoff, DLQ and alarm cover a plan that fails.
        Arn: getAtt(stack.queues.ingest.queue, 'Arn'),
        RoleArn: getAtt(stack.schedules!.role, 'Arn'),
        // The scheduled time names the tick, so every retry of it plans the same run.
        Input: JSON.stringify({
          kind: 'scheduled-run',
          pipeline: 'docs',
          prefix: schedule.prefix,
          scheduledTime: '<aws.scheduler.scheduled-time>',
          schedule: '<aws.scheduler.schedule-arn>',
        }),
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        DeadLetterConfig: { Arn: getAtt(stack.queues.ingest.deadLetterQueue, 'Arn') },
      },
    });
  });

  it('lets the scheduler role send to the ingest queue and its dead-letter queue, nothing else', () => {
    const policy = resource(stack.schedules!.role.node.findChild('DefaultPolicy'));
    const statements = policy.Properties.PolicyDocument.Statement as Cfn[];
    expect(statements.map((s) => s.Action)).toEqual([
      ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
      ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
    ]);
    expect(statements.map((s) => s.Resource)).toEqual([
      getAtt(stack.queues.ingest.queue, 'Arn'),
      getAtt(stack.queues.ingest.deadLetterQueue, 'Arn'),
    ]);
    expect(JSON.stringify(statements)).not.toContain('lambda:');
  });
});

describe('QueryLayer', () => {
  const table = (name: string) => {
    const found = Object.values(template.findResources('AWS::Glue::Table')).find(
      (t) => t.Properties.TableInput.Name === name,
    );
    if (!found) throw new Error(`no Glue table ${name}`);
    return found.Properties as Cfn;
  };

  it('defines every table the writer has a layout for in the sluice database', () => {
    template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'sluice' } });
    // Every table and the two current-state views (test/infra/current-views.test.ts).
    template.resourceCountIs('AWS::Glue::Table', TABLE_NAMES.length + 2);
    for (const name of ['embeddings', 'rejects', 'scores', 'segment_stats', 'sources', 'runs']) {
      expect(table(name).DatabaseName).toBe('sluice');
    }
  });

  it('projects pipeline and run_date partitions instead of registering them', () => {
    for (const name of ['embeddings', 'rejects', 'sources', 'runs']) {
      const input = table(name).TableInput;
      expect(input.PartitionKeys.map((k: { Name: string }) => k.Name)).toEqual(['pipeline', 'run_date']);
      expect(input.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.pipeline.type': 'enum',
        'projection.pipeline.values': 'docs',
        'projection.run_date.type': 'date',
        'projection.run_date.format': 'yyyy-MM-dd',
        'projection.run_date.range': '2024-01-01,NOW',
      });
      expect(JSON.stringify(input.Parameters['storage.location.template'])).toContain(
        `/results/${name}/pipeline=\${pipeline}/run_date=\${run_date}/`,
      );
    }
  });

  it('reads Parquet with the column types the writer uses and no partition keys as data columns', () => {
    const columns = (name: string) =>
      Object.fromEntries(
        table(name).TableInput.StorageDescriptor.Columns.map((c: { Name: string; Type: string }) => [
          c.Name,
          c.Type,
        ]),
      );
    expect(table('embeddings').TableInput.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe(
      'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
    );
    expect(columns('embeddings')).toMatchObject({
      run_id: 'string',
      chunk_id: 'string',
      chunk_index: 'int',
      token_count: 'int',
      embedding: 'array<float>',
      metadata: 'string',
    });
    expect(columns('rejects')).toMatchObject({ byte_offset: 'bigint', line: 'bigint', reason: 'string' });
    expect(columns('runs')).toMatchObject({ status: 'string', records: 'bigint', retries: 'bigint' });
    for (const name of ['embeddings', 'rejects', 'runs']) {
      expect(columns(name)).not.toHaveProperty('pipeline');
      expect(columns(name)).not.toHaveProperty('run_date');
    }
  });

  it('enforces an SSE-S3 encrypted Athena result location under athena-results/', () => {
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      Name: 'sluice',
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        ResultConfiguration: {
          OutputLocation: { 'Fn::Join': ['', ['s3://', ref(stack.storage.bucket), '/athena-results/']] },
          EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
        },
      },
    });
  });
});

describe('Alarms', () => {
  it('alarms as soon as any dead-letter queue holds a message and notifies the alarm topic', () => {
    // Four dead-letter queues, the three failure metrics (dead-letter.test.ts), the endpoint's
    // scale-out-from-zero alarm and the capacity sweeper's two (run-scoped-capacity.test.ts).
    template.resourceCountIs('AWS::CloudWatch::Alarm', 10);
    for (const { queue } of stack.queues.deadLetterQueues) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: getAtt(queue, 'QueueName') }],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        AlarmActions: [ref(stack.alarms.topic)],
      });
    }
  });

  it('encrypts the alarm topic with a rotated key and refuses non-TLS publishing', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('IAM', () => {
  /**
   * Actions that support no resource-level permissions, so AWS only accepts "*":
   * - ecr:GetAuthorizationToken (SageMaker pulls the TEI image with it)
   * - cloudwatch:PutMetricData (limited by a cloudwatch:namespace condition instead)
   */
  const ACTIONS_AWS_ONLY_ALLOWS_ON_STAR = new Set(['ecr:GetAuthorizationToken', 'cloudwatch:PutMetricData']);

  const identityStatements = (): Cfn[] => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).map(
      (p) => p.Properties.PolicyDocument,
    );
    const inline = Object.values(template.findResources('AWS::IAM::Role')).flatMap((r) =>
      (r.Properties.Policies ?? []).map((p: { PolicyDocument: unknown }) => p.PolicyDocument),
    );
    return [...policies, ...inline].flatMap((doc) => doc.Statement);
  };

  it('never allows Action "*"', () => {
    const statements = identityStatements();
    expect(statements.length).toBeGreaterThan(10);
    for (const s of statements) expect([s.Action].flat()).not.toContain('*');
  });

  it('allows Resource "*" only for actions that AWS cannot scope to a resource', () => {
    const onStar = identityStatements().filter((s) => [s.Resource].flat().includes('*'));
    expect(onStar.length).toBeGreaterThan(0);
    for (const s of onStar) {
      for (const action of [s.Action].flat()) expect(ACTIONS_AWS_ONLY_ALLOWS_ON_STAR).toContain(action);
    }
  });

  it('attaches no AWS managed policy to the roles Sluice defines', () => {
    const roles = [
      stack.functions.plan.role,
      stack.functions.work.role,
      stack.functions.finalize.role,
      stack.functions.deadLetter.role,
      stack.schedules!.role,
      ...stack.endpoints.map((e) => e.role),
    ];
    for (const role of roles) expect(resource(role).Properties.ManagedPolicyArns).toBeUndefined();
  });
});

describe('SluiceFunction bundled files', () => {
  it.each(['../escape.json', 'index.mjs', ''])('refuses the file name %j, naming the function', (name) => {
    const scope = new Stack();
    expect(
      () =>
        new SluiceFunction(scope, 'Fn', {
          entry: FIXTURE_ENTRIES.plan,
          description: 'test',
          timeout: Duration.seconds(10),
          bundledFiles: { [name]: '{}' },
        }),
    ).toThrow(`Default/Fn: bundled file name ${JSON.stringify(name)} is not allowed`);
  });
});
