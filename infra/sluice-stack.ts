import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { inferenceComponentNameOf } from '../shared/capacity/names.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { tracksSources } from '../shared/incremental/deleted-sources.ts';
import { INCOMING_PREFIX } from '../shared/output/keys.ts';
import { Alarms } from './constructs/alarms.ts';
import { CapacitySweeper } from './constructs/capacity-sweeper.ts';
import { EmbeddingEndpoint } from './constructs/embedding-endpoint.ts';
import { type FunctionEntries, Functions } from './constructs/functions.ts';
import { addLlmEndpoints, type LlmEndpoint } from './constructs/llm-endpoint.ts';
import { ModelFiles, modelFilesOf, PIPELINES_DIR } from './constructs/model-files.ts';
import { passThroughGlueColumns, QueryLayer } from './constructs/query-layer.ts';
import { Queues } from './constructs/queues.ts';
import { RecommendationsTable } from './constructs/recommendations-table.ts';
import { RunsTable } from './constructs/runs-table.ts';
import { Schedules } from './constructs/schedules.ts';
import { ScoringEndpoint } from './constructs/scoring-endpoint.ts';
import { SourceAccountQueueDestination, Storage } from './constructs/storage.ts';
import { type DeploymentNames, deployedPipelines, deploymentNames } from './deployment-names.ts';
import {
  checkEndpointNames,
  deploymentSettings,
  endpointSpecs,
  scoringEndpointSpecs,
  withDeployedModels,
} from './deployment-settings.ts';
import { REGIONS_WITHOUT_INFERENCE_COMPONENTS } from './images/registries.ts';
import { stackImageUri } from './images/stack-images.ts';
import { TEI_IMAGES } from './images/tei-images.ts';
import { XGBOOST_IMAGES } from './images/xgboost-images.ts';
import { acceptBucketNotificationsHandler } from './nag-suppressions.ts';

/**
 * SQS should hide a message for at least six times the consumer's timeout, so
 * a message is not redelivered while a throttled or retried invocation still holds it.
 */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface SluiceStackProps extends StackProps {
  /**
   * Validated pipeline configs this stack serves (at least one). A stack not named
   * `Sluice` deploys their endpoints under names prefixed with its own
   * (`deploymentNames`), and its functions call them by those names.
   */
  readonly pipelines: readonly PipelineConfig[];
  /**
   * Text Embeddings Inference image version in `infra/images/tei-images.ts` (context
   * `sluice:teiVersion`); the image is the one for the stack's region.
   * @default TEI_IMAGES.defaultVersion
   */
  readonly teiVersion?: string;
  /**
   * An explicit TEI image URI in the stack's region instead of the table's (context
   * `sluice:teiImageUri`), for an image the table does not hold.
   * @default - the table's image for the stack's region and `teiVersion`
   */
  readonly teiImageUri?: string;
  /**
   * Hugging Face model every endpoint serves (context `sluice:hfModelId`), and so the
   * `endpoint.model` of every embed pipeline as deployed: the id the workers record and
   * fingerprint.
   * @default - each pipeline's `endpoint.model`
   */
  readonly hfModelId?: string;
  /**
   * Instance type for every endpoint (context `sluice:embeddingInstanceType`).
   * @default - each pipeline's `endpoint.instanceType`
   */
  readonly embeddingInstanceType?: string;
  /**
   * SageMaker's built-in XGBoost image version in `infra/images/xgboost-images.ts`
   * (context `sluice:xgboostVersion`); the image is the one for the stack's region.
   * @default XGBOOST_IMAGES.defaultVersion
   */
  readonly xgboostVersion?: string;
  /**
   * An explicit XGBoost image URI in the stack's region instead of the table's (context
   * `sluice:xgboostImageUri`).
   * @default - the table's image for the stack's region and `xgboostVersion`
   */
  readonly xgboostImageUri?: string;
  /**
   * Hugging Face TGI image version in `infra/images/llm-images.ts` for the LLM endpoints of
   * generate pipelines (context `sluice:tgiVersion`). @default TGI_IMAGES.defaultVersion
   */
  readonly tgiVersion?: string;
  /** An explicit TGI image URI in the stack's region (context `sluice:tgiImageUri`). */
  readonly tgiImageUri?: string;
  /**
   * Folder of the committed model files (`<dir>/<key>`), which the stack uploads into the
   * data bucket before it creates the SageMaker models (`ModelFiles`).
   * @default PIPELINES_DIR, this repository's pipelines/
   */
  readonly modelFilesDir?: string;
  /**
   * Handler entry files.
   * @default functions/plan.ts, work.ts, finalize.ts, dead-letter.ts and capacity-sweeper.ts
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
  deadLetter: 'functions/dead-letter.ts',
  capacitySweeper: 'functions/capacity-sweeper.ts',
};

/**
 * Sluice on AWS: S3 -> ingest queue -> plan -> work queue -> work (SageMaker TEI
 * inference component for embed pipelines; for score pipelines the XGBoost model in the
 * worker, on a serverless endpoint or as an inference component, by `model.hosting`) ->
 * finalize queue -> finalize, with runs in DynamoDB, scheduled runs from EventBridge
 * Scheduler, results queryable in Athena, dead-lettered units marked failed by the work
 * DLQ's consumer, and alarms on every DLQ and on failed units and runs. Instance endpoints
 * hold copies only while runs lease them (plan takes, finalize releases, a sweeper every
 * minute catches leaks), so at rest they run 0 instances.
 */
export class SluiceStack extends Stack {
  readonly storage: Storage;
  readonly queues: Queues;
  readonly runsTable: RunsTable;
  /** Users' lists served by key; undefined when no pipeline is kind recommend. */
  readonly recommendationsTable: RecommendationsTable | undefined;
  /** Embedding endpoints (TEI), one per distinct `endpoint.name`. */
  readonly endpoints: readonly EmbeddingEndpoint[];
  /** Scoring endpoints (built-in XGBoost), one per distinct `model.endpointName` not hosted in-worker. */
  readonly scoringEndpoints: readonly ScoringEndpoint[];
  /** LLM endpoints (TGI) of generate pipelines, one per distinct `endpoint.name` without `endpoint.url`. */
  readonly llmEndpoints: readonly LlmEndpoint[];
  /** The capacity sweeper; undefined when no endpoint has run-scoped capacity (no inference component). */
  readonly capacitySweeper: CapacitySweeper | undefined;
  /** The committed model files the stack uploads; undefined when the pipelines name none. */
  readonly modelFiles: ModelFiles | undefined;
  readonly functions: Functions;
  readonly schedules: Schedules | undefined;
  readonly queryLayer: QueryLayer;
  readonly alarms: Alarms;
  /** The account-unique names derived from the stack name. */
  readonly names: DeploymentNames;
  /** The configs as deployed: `props.pipelines` with this stack's endpoint names. */
  readonly pipelines: readonly PipelineConfig[];

  constructor(scope: Construct, id: string, props: SluiceStackProps) {
    super(scope, id, props);
    // Names unique per account and region (Glue database, Athena workgroup, SageMaker
    // endpoints and their log groups) and the metrics' service dimension derive from the
    // stack name, so stacks with different names can share an account and region.
    this.names = deploymentNames(this.stackName);
    // The model an endpoint serves is the model the workers record (sluice:hfModelId included).
    const pipelines = deployedPipelines(withDeployedModels(props.pipelines, props.hfModelId), this.names);
    this.pipelines = pipelines;
    const settings = deploymentSettings(pipelines);
    const removalPolicy = props.dataRemovalPolicy ?? RemovalPolicy.RETAIN;
    const workTimeout = Duration.seconds(settings.workTimeoutSeconds);

    this.storage = new Storage(this, 'Storage', { removalPolicy });
    this.queues = this.addQueues(settings, workTimeout);
    this.notifyIngest(pipelines);
    this.runsTable = new RunsTable(this, 'RunsTable', { removalPolicy });

    const embeddingSpecs = endpointSpecs(pipelines, props.embeddingInstanceType);
    const scoringSpecs = scoringEndpointSpecs(pipelines);
    checkEndpointNames(embeddingSpecs, scoringSpecs);
    checkInferenceComponentRegion(
      this,
      embeddingSpecs.length + scoringSpecs.filter((s) => s.hosting === 'instance').length,
    );
    this.endpoints = this.addEmbeddingEndpoints(embeddingSpecs, props);
    this.modelFiles = this.addModelFiles(pipelines, props.modelFilesDir ?? PIPELINES_DIR);
    this.scoringEndpoints = this.addScoringEndpoints(scoringSpecs, props);

    const entries = props.functionEntries ?? DEFAULT_FUNCTION_ENTRIES;
    this.llmEndpoints = addLlmEndpoints(
      this,
      pipelines,
      { version: props.tgiVersion, uri: props.tgiImageUri },
      [...embeddingSpecs.map((s) => s.endpointName), ...scoringSpecs.map((s) => s.endpointName)],
    );
    const componentArns = [...this.endpoints, ...this.scoringEndpoints, ...this.llmEndpoints].flatMap(
      (endpoint) => (endpoint.inferenceComponentArn === undefined ? [] : [endpoint.inferenceComponentArn]),
    );
    this.functions = this.addFunctions(entries, componentArns, settings, workTimeout);
    // Recommend pipelines: similarity units (WorkCompute in a split stack, else work) write
    // users' lists; sluice recommend --deployed reads them.
    this.recommendationsTable = RecommendationsTable.forPipelines(this, pipelines, {
      removalPolicy,
      writer: this.functions.workCompute ?? this.functions.work,
    });
    this.capacitySweeper = this.addCapacitySweeper(entries, componentArns);
    this.schedules = this.addSchedules(pipelines);
    this.queryLayer = this.addQueryLayer(pipelines);
    this.alarms = this.addAlarms();
    this.addOutputs();
    acceptBucketNotificationsHandler(this);
  }

  /** The queues, each hiding a message {@link VISIBILITY_TIMEOUT_FACTOR} times its consumer's timeout. */
  private addQueues(settings: ReturnType<typeof deploymentSettings>, workTimeout: Duration): Queues {
    const visibilityFor = (timeout: Duration) =>
      Duration.seconds(VISIBILITY_TIMEOUT_FACTOR * timeout.toSeconds());
    const { maxReceiveCount, workCompute } = settings;
    return new Queues(this, 'Queues', {
      maxReceiveCount,
      ...(workCompute === undefined
        ? {}
        : { workComputeVisibilityTimeout: visibilityFor(Duration.seconds(workCompute.timeoutSeconds)) }),
      ingestVisibilityTimeout: visibilityFor(Functions.defaultPlanTimeout),
      workVisibilityTimeout: visibilityFor(workTimeout),
      finalizeVisibilityTimeout: visibilityFor(Functions.defaultFinalizeTimeout),
      workDeadLetterVisibilityTimeout: visibilityFor(Functions.defaultDeadLetterTimeout),
    });
  }

  /** Objects created under incoming/ (and removed, where a pipeline keeps source manifests) go to the ingest queue. */
  private notifyIngest(pipelines: readonly PipelineConfig[]): void {
    const ingest = new SourceAccountQueueDestination(this.queues.ingest.queue);
    this.storage.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, ingest, {
      prefix: INCOMING_PREFIX,
    });
    // Deletions matter only to pipelines that keep source manifests: plan records a deleted
    // source, and finalize counts its documents as removed.
    if (pipelines.some((pipeline) => tracksSources(pipeline))) {
      this.storage.bucket.addEventNotification(s3.EventType.OBJECT_REMOVED, ingest, {
        prefix: INCOMING_PREFIX,
      });
    }
  }

  /** One TEI endpoint per embedding spec; images follow the stack's region (infra/images), resolved only for the endpoints deployed. */
  private addEmbeddingEndpoints(
    specs: ReturnType<typeof endpointSpecs>,
    props: SluiceStackProps,
  ): EmbeddingEndpoint[] {
    return specs.map(
      (spec) =>
        new EmbeddingEndpoint(this, `Embedding-${spec.endpointName}`, {
          endpointName: spec.endpointName,
          // Derived from the deployed endpoint name, as the workers and the sweeper derive it.
          componentName: inferenceComponentNameOf(spec.endpointName),
          capacity: spec.capacity,
          instanceType: spec.instanceType,
          imageUri: stackImageUri(this, TEI_IMAGES, { version: props.teiVersion, uri: props.teiImageUri }),
          hfModelId: spec.model,
          maxBatchTokens: spec.maxBatchTokens,
          maxClientBatchSize: spec.maxClientBatchSize,
        }),
    );
  }

  /**
   * The model archives (and the files the score functions read) go into the bucket during
   * the deployment, before the SageMaker models that load them: one deploy, no second step.
   */
  private addModelFiles(pipelines: readonly PipelineConfig[], modelFilesDir: string): ModelFiles | undefined {
    const modelFiles = modelFilesOf(pipelines, modelFilesDir);
    return modelFiles.length > 0
      ? new ModelFiles(this, 'ModelFiles', {
          bucket: this.storage.bucket,
          files: modelFiles,
          sourceDir: modelFilesDir,
        })
      : undefined;
  }

  /** One XGBoost endpoint per scoring spec not hosted in-worker, loading its model after the upload. */
  private addScoringEndpoints(
    specs: ReturnType<typeof scoringEndpointSpecs>,
    props: SluiceStackProps,
  ): ScoringEndpoint[] {
    return specs.map(
      (spec) =>
        new ScoringEndpoint(this, `Scoring-${spec.endpointName}`, {
          endpointName: spec.endpointName,
          hosting: spec.hosting,
          instanceType: spec.instanceType,
          componentName: inferenceComponentNameOf(spec.endpointName),
          capacity: spec.capacity,
          serverless: spec.serverless,
          imageUri: stackImageUri(this, XGBOOST_IMAGES, {
            version: props.xgboostVersion,
            uri: props.xgboostImageUri,
          }),
          bucket: this.storage.bucket,
          modelDataKey: spec.modelDataKey,
          modelDataUpload: this.modelFiles?.deployment,
        }),
    );
  }

  /** Plan, work, finalize and dead-letter, with what each may call (endpoints, components, queues). */
  private addFunctions(
    entries: FunctionEntries,
    componentArns: readonly string[],
    settings: ReturnType<typeof deploymentSettings>,
    workTimeout: Duration,
  ): Functions {
    return new Functions(this, 'Functions', {
      entries,
      bucket: this.storage.bucket,
      table: this.runsTable.table,
      queues: this.queues,
      endpoints: [...this.endpoints, ...this.scoringEndpoints, ...this.llmEndpoints],
      capacityComponentArns: componentArns,
      pipelines: this.pipelines,
      serviceName: this.names.serviceName,
      planTimeout: Functions.defaultPlanTimeout,
      workTimeout,
      finalizeTimeout: Functions.defaultFinalizeTimeout,
      deadLetterTimeout: Functions.defaultDeadLetterTimeout,
      workMemoryMiB: settings.workMemoryMiB,
      workMaxConcurrency: settings.workMaxConcurrency,
      ...(settings.workCompute === undefined
        ? {}
        : {
            workCompute: {
              timeout: Duration.seconds(settings.workCompute.timeoutSeconds),
              memoryMiB: settings.workCompute.memoryMiB,
              maxConcurrency: settings.workCompute.maxConcurrency,
            },
          }),
    });
  }

  /** The safety net of run-scoped capacity: only where some endpoint holds copies. */
  private addCapacitySweeper(
    entries: FunctionEntries,
    componentArns: readonly string[],
  ): CapacitySweeper | undefined {
    if (componentArns.length === 0) return undefined;
    return new CapacitySweeper(this, 'CapacitySweeper', {
      entry: entries.capacitySweeper,
      environment: this.functions.environment,
      pipelinesFile: this.functions.pipelinesFile,
      serviceName: this.names.serviceName,
      table: this.runsTable.table,
      componentArns,
      workEventSource: this.functions.workEventSource,
    });
  }

  /** Scheduled runs (EventBridge Scheduler -> ingest queue), when some pipeline has a schedule. */
  private addSchedules(pipelines: readonly PipelineConfig[]): Schedules | undefined {
    return pipelines.some((p) => p.schedule)
      ? new Schedules(this, 'Schedules', {
          pipelines,
          queue: this.queues.ingest.queue,
          deadLetterQueue: this.queues.ingest.deadLetterQueue,
        })
      : undefined;
  }

  /** Glue tables and the Athena workgroup over results/. */
  private addQueryLayer(pipelines: readonly PipelineConfig[]): QueryLayer {
    return new QueryLayer(this, 'QueryLayer', {
      bucket: this.storage.bucket,
      pipelineNames: pipelines.map((p) => p.name),
      scoresPassThrough: passThroughGlueColumns(pipelines),
      databaseName: this.names.glueDatabase,
      workGroupName: this.names.workGroup,
    });
  }

  /** Alarms on every DLQ, on the handlers' failure metrics and on the capacity sweeper's. */
  private addAlarms(): Alarms {
    return new Alarms(this, 'Alarms', {
      deadLetterQueues: this.queues.deadLetterQueues,
      // Metric names as the handlers publish them (functions/dead-letter.ts, functions/finalize.ts),
      // with this stack's service dimension, so another stack's runs do not fire these alarms.
      failureMetrics: [
        {
          name: 'UnitsDeadLettered',
          metric: this.functions.deadLetter.metricPublished('UnitsDeadLettered'),
          description:
            'A Sluice work unit was dead-lettered after its worker stopped on the last delivery (timeout or out of memory) and is marked failed: see docs/runbook.md, then redrive its run',
        },
        {
          name: 'DeadLettersUnreadable',
          metric: this.functions.deadLetter.metricPublished('DeadLettersUnreadable'),
          description:
            'The work dead-letter queue held a message that is not a Sluice unit descriptor; it was logged whole and dropped: find it in the dead-letter function logs (docs/runbook.md)',
        },
        {
          name: 'RunsFailed',
          metric: this.functions.finalize.metricPublished('RunsFailed'),
          description:
            'A Sluice run finished failed (some unit failed on every delivery): inspect its failed units and lastError (docs/runbook.md), fix the cause, then redrive',
        },
        ...(this.capacitySweeper?.failureMetrics ?? []),
      ],
    });
  }

  /** The names users need after a deploy: data bucket, Glue database, Athena workgroup, runs table. */
  private addOutputs(): void {
    // Where to upload model archives and datasets (docs/infra.md, Deploy).
    new CfnOutput(this, 'DataBucketName', {
      description: 'Data bucket: inputs, models/, results/ and runs/',
      value: this.storage.bucket.bucketName,
    });
    // Where to query the results (docs/infra.md, QueryLayer).
    new CfnOutput(this, 'GlueDatabaseName', {
      description: 'Glue database of the results tables (Athena)',
      value: this.queryLayer.databaseName,
    });
    new CfnOutput(this, 'AthenaWorkGroupName', {
      description: 'Athena workgroup to query the results in',
      value: this.queryLayer.workGroupName,
    });
    // What `sluice status --deployed --runs-table` reads (docs/deployed-cli.md): its name is generated.
    new CfnOutput(this, 'RunsTableName', {
      description: 'DynamoDB runs table: run and unit state (sluice status --deployed)',
      value: this.runsTable.table.tableName,
    });
    // Where `sluice redrive --work-queue-url` sends a run's failed units (docs/runbook.md, Redrive).
    new CfnOutput(this, 'WorkQueueUrl', {
      description: 'SQS work queue of the Work function (sluice redrive --work-queue-url)',
      value: this.queues.work.queue.queueUrl,
    });
    // Where `sluice redrive` sends the compute pool's failed units (docs/capacity.md, Two work functions).
    if (this.queues.workCompute) {
      new CfnOutput(this, 'WorkComputeQueueUrl', {
        description: 'SQS compute queue of WorkCompute (score in-worker and recommend units)',
        value: this.queues.workCompute.queue.queueUrl,
      });
    }
  }
}

/**
 * Refuses, in one line, a stack that needs inference components (run-scoped capacity) in a
 * region whose CloudFormation cannot create them. A region-agnostic stack is not checked.
 */
function checkInferenceComponentRegion(stack: Stack, components: number): void {
  if (components === 0 || Token.isUnresolved(stack.region)) return;
  if (!REGIONS_WITHOUT_INFERENCE_COMPONENTS.includes(stack.region)) return;
  throw new Error(
    `region ${stack.region} has no AWS::SageMaker::InferenceComponent in CloudFormation, which embed pipelines and score pipelines with model.hosting instance need (run-scoped capacity): deploy to another region, or deploy only score pipelines with model.hosting in-worker or serverless there`,
  );
}
