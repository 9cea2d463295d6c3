import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import type { Construct } from 'constructs';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { INCOMING_PREFIX } from '../shared/output/keys.ts';
import { Alarms } from './constructs/alarms.ts';
import { EmbeddingEndpoint } from './constructs/embedding-endpoint.ts';
import { type FunctionEntries, Functions } from './constructs/functions.ts';
import { QueryLayer } from './constructs/query-layer.ts';
import { Queues } from './constructs/queues.ts';
import { RunsTable } from './constructs/runs-table.ts';
import { Schedules } from './constructs/schedules.ts';
import { Storage } from './constructs/storage.ts';
import { deploymentSettings, endpointSpecs } from './deployment-settings.ts';
import { acceptBucketNotificationsHandler } from './nag-suppressions.ts';

/**
 * SQS should hide a message for at least six times the consumer's timeout, so
 * a message is not redelivered while a throttled or retried invocation still holds it.
 */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface SluiceStackProps extends StackProps {
  /** Validated pipeline configs this stack serves (at least one). */
  readonly pipelines: readonly PipelineConfig[];
  /** Text Embeddings Inference image in ECR (context `sluice:teiImageUri`). */
  readonly teiImageUri: string;
  /**
   * Hugging Face model every endpoint serves (context `sluice:hfModelId`).
   * @default - each pipeline's `endpoint.model`
   */
  readonly hfModelId?: string;
  /**
   * Instance type for every endpoint (context `sluice:embeddingInstanceType`).
   * @default - each pipeline's `endpoint.instanceType`
   */
  readonly embeddingInstanceType?: string;
  /**
   * Handler entry files.
   * @default functions/plan.ts, functions/work.ts and functions/finalize.ts
   */
  readonly functionEntries?: FunctionEntries;
  /**
   * Removal policy of the buckets, the runs table and function log groups. User data
   * is kept by default; tests and throwaway stacks may destroy it.
   * @default RemovalPolicy.RETAIN
   */
  readonly dataRemovalPolicy?: RemovalPolicy;
}

export const DEFAULT_FUNCTION_ENTRIES: FunctionEntries = {
  plan: 'functions/plan.ts',
  work: 'functions/work.ts',
  finalize: 'functions/finalize.ts',
};

/**
 * Sluice on AWS: S3 -> ingest queue -> plan -> work queue -> work (SageMaker TEI
 * endpoint) -> finalize queue -> finalize, with runs in DynamoDB, scheduled runs from
 * EventBridge Scheduler, results queryable in Athena and alarms on every DLQ.
 */
export class SluiceStack extends Stack {
  readonly storage: Storage;
  readonly queues: Queues;
  readonly runsTable: RunsTable;
  readonly endpoints: readonly EmbeddingEndpoint[];
  readonly functions: Functions;
  readonly schedules: Schedules | undefined;
  readonly queryLayer: QueryLayer;
  readonly alarms: Alarms;

  constructor(scope: Construct, id: string, props: SluiceStackProps) {
    super(scope, id, props);
    const { pipelines } = props;
    const settings = deploymentSettings(pipelines);
    const removalPolicy = props.dataRemovalPolicy ?? RemovalPolicy.RETAIN;

    const planTimeout = Functions.defaultPlanTimeout;
    const workTimeout = Duration.seconds(settings.workTimeoutSeconds);
    const finalizeTimeout = Functions.defaultFinalizeTimeout;
    const visibilityFor = (timeout: Duration) =>
      Duration.seconds(VISIBILITY_TIMEOUT_FACTOR * timeout.toSeconds());

    this.storage = new Storage(this, 'Storage', { removalPolicy });
    this.queues = new Queues(this, 'Queues', {
      maxReceiveCount: settings.maxReceiveCount,
      ingestVisibilityTimeout: visibilityFor(planTimeout),
      workVisibilityTimeout: visibilityFor(workTimeout),
      finalizeVisibilityTimeout: visibilityFor(finalizeTimeout),
    });
    this.storage.bucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.SqsDestination(this.queues.ingest.queue),
      { prefix: INCOMING_PREFIX },
    );
    this.runsTable = new RunsTable(this, 'RunsTable', { removalPolicy });

    this.endpoints = endpointSpecs(pipelines, props.embeddingInstanceType).map(
      (spec) =>
        new EmbeddingEndpoint(this, `Embedding-${spec.endpointName}`, {
          endpointName: spec.endpointName,
          instanceType: spec.instanceType,
          imageUri: props.teiImageUri,
          hfModelId: props.hfModelId ?? spec.model,
          maxBatchTokens: spec.maxBatchTokens,
          maxClientBatchSize: spec.maxClientBatchSize,
        }),
    );

    this.functions = new Functions(this, 'Functions', {
      entries: props.functionEntries ?? DEFAULT_FUNCTION_ENTRIES,
      bucket: this.storage.bucket,
      table: this.runsTable.table,
      queues: this.queues,
      endpoints: this.endpoints,
      pipelines,
      planTimeout,
      workTimeout,
      finalizeTimeout,
      workMemoryMiB: settings.workMemoryMiB,
      workMaxConcurrency: settings.workMaxConcurrency,
    });

    this.schedules = pipelines.some((p) => p.schedule)
      ? new Schedules(this, 'Schedules', {
          pipelines,
          plan: this.functions.plan.function,
          deadLetterQueue: this.queues.ingest.deadLetterQueue,
        })
      : undefined;

    this.queryLayer = new QueryLayer(this, 'QueryLayer', {
      bucket: this.storage.bucket,
      pipelineNames: pipelines.map((p) => p.name),
    });

    this.alarms = new Alarms(this, 'Alarms', { deadLetterQueues: this.queues.deadLetterQueues });

    acceptBucketNotificationsHandler(this);
  }
}
