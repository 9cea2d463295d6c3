import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { LambdaClient, type LambdaClientConfig } from '@aws-sdk/client-lambda';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { SageMakerClient, type SageMakerClientConfig } from '@aws-sdk/client-sagemaker';
import { SageMakerRuntimeClient, type SageMakerRuntimeClientConfig } from '@aws-sdk/client-sagemaker-runtime';
import { SQSClient, type SQSClientConfig } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Sleep } from '../../shared/adapters/aws/backoff.ts';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { DynamoPromptCache } from '../../shared/adapters/aws/dynamo-prompt-cache.ts';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { DynamoSegmentStatsStore } from '../../shared/adapters/aws/dynamo-segment-stats-store.ts';
import { LambdaWorkerConcurrency } from '../../shared/adapters/aws/lambda-worker-concurrency.ts';
import {
  PipelineEndpointRegistry,
  type PipelineEndpoints,
  sageMakerClientSettingsFor,
} from '../../shared/adapters/aws/pipeline-endpoints.ts';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { SageMakerCapacityControl } from '../../shared/adapters/aws/sagemaker-capacity-control.ts';
import {
  type Redelivery,
  type RedeliverySchedule,
  SqsRedelivery,
} from '../../shared/adapters/aws/sqs-redelivery.ts';
import { computeQueueOf, SqsWorkQueue } from '../../shared/adapters/aws/sqs-work-queue.ts';
import { type PipelineCapacity, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import type { RunCapacityDeps } from '../../shared/capacity/run-capacity.ts';
import { workPoolsOf } from '../../shared/capacity/work-pools.ts';
import { type WorkerScaling, workerScalingOf } from '../../shared/capacity/workers.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { EstimatingTokenCounter, type TokenCounter } from '../../shared/embedding/token-counter.ts';
import { ObjectStorePromptCache, type PromptCache } from '../../shared/jobs/generate/prompt-cache.ts';
import type { RecommendationLists } from '../../shared/jobs/recommend/recommendation-lists.ts';
import type { CapacityControl } from '../../shared/ports/capacity-control.ts';
import type { ChunkIndex } from '../../shared/ports/chunk-index.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { SegmentStatsStore } from '../../shared/ports/segment-stats-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { type Environment, type LoadEnvironmentOptions, loadEnvironment } from './environment.ts';

/** One SDK client per service, created once per process and shared by every invocation. */
export interface AwsClients {
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  readonly dynamo: DynamoDBDocumentClient;
  readonly sagemaker: SageMakerRuntimeClient;
  /** The SageMaker control plane: inference component copies (run-scoped capacity). */
  readonly sagemakerControl: SageMakerClient;
  /**
   * The Lambda control plane: the work event source's MaximumConcurrency (workers follow the
   * copies), used only where `SLUICE_WORK_EVENT_SOURCE_ID` is set (plan, capacity sweeper).
   */
  readonly lambda: LambdaClient;
}

/** Client settings laid over the defaults (tests point clients at local servers with these). */
export interface AwsClientOverrides {
  readonly s3?: S3ClientConfig;
  readonly sqs?: SQSClientConfig;
  readonly dynamo?: DynamoDBClientConfig;
  readonly sagemaker?: SageMakerRuntimeClientConfig;
  /** @default the region, credentials and endpoint of `sagemaker` */
  readonly sagemakerControl?: SageMakerClientConfig;
  readonly lambda?: LambdaClientConfig;
}

/**
 * Builds the SDK clients. The SageMaker client has the settings its invokers need
 * (`sageMakerClientSettingsFor`: one attempt per call, as the invokers own retries and
 * count throttling for the run's stats; a cached middleware stack; the pipelines'
 * longest attempt as its request timeout); `SLUICE_SAGEMAKER_ENDPOINT_URL`, when set,
 * replaces its endpoint.
 */
export function createAwsClients(env: Environment, overrides: AwsClientOverrides = {}): AwsClients {
  return {
    s3: new S3Client({ ...overrides.s3 }),
    sqs: new SQSClient({ ...overrides.sqs }),
    dynamo: DynamoDBDocumentClient.from(new DynamoDBClient({ ...overrides.dynamo }), {
      marshallOptions: { removeUndefinedValues: true },
    }),
    sagemaker: new SageMakerRuntimeClient({
      ...(env.sagemakerEndpointUrl === undefined ? {} : { endpoint: env.sagemakerEndpointUrl }),
      ...overrides.sagemaker,
      ...sageMakerClientSettingsFor(env.pipelines.values()),
    }),
    // The SDK's standard retries (throttling included) suit the control plane. A local model
    // server at SLUICE_SAGEMAKER_ENDPOINT_URL emulates its two capacity calls too.
    sagemakerControl: new SageMakerClient({
      ...(env.sagemakerEndpointUrl === undefined ? {} : { endpoint: env.sagemakerEndpointUrl }),
      ...controlSettingsOf(overrides.sagemaker),
      ...overrides.sagemakerControl,
    }),
    // Standard retries: throttling (TooManyRequestsException) and 5xx are retried by the SDK.
    lambda: new LambdaClient({ ...overrides.lambda }),
  };
}

/** What the control-plane client takes over from the runtime client's overrides: where it points and as whom. */
function controlSettingsOf(runtime: SageMakerRuntimeClientConfig | undefined): SageMakerClientConfig {
  if (runtime === undefined) return {};
  const { region, credentials, endpoint } = runtime;
  return {
    ...(region === undefined ? {} : { region }),
    ...(credentials === undefined ? {} : { credentials }),
    ...(endpoint === undefined ? {} : { endpoint }),
  } as SageMakerClientConfig;
}

/** The secondary adapters the use cases take, built over one set of clients. */
export interface SluiceAdapters {
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  readonly bucket: string;
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  readonly tokenCounter: TokenCounter;
  /** Segment statistics of scoring runs, in the runs table by run and segment. */
  readonly segmentStats: SegmentStatsStore;
  /** Fingerprints of embedded chunks, in the runs table, for incremental runs. */
  readonly chunkIndex: ChunkIndex;
  /** Answers of generate pipelines, in the runs table; a miss is read from the old S3 cache (never written). */
  readonly promptCache: PromptCache;
  /** Users' lists served by key, in the recommendations table (where the stack gives the function one). */
  readonly recommendationLists?: RecommendationLists;
  /** The model client of a pipeline (one per pipeline, sharing the SageMaker client and, per endpoint, a limiter). */
  endpointsFor(config: PipelineConfig): PipelineEndpoints;
  /** Failed SQS messages come back after their own backoff (ChangeMessageVisibility). */
  readonly redelivery: Redelivery;
  /** Prices each finished run in the function's region (summary `cost`); absent without `AWS_REGION`. */
  readonly costing?: { readonly region: string; readonly estimate: boolean };
  /** Run-scoped endpoint capacity: leases in the runs table, copies through the SageMaker control plane. */
  readonly capacity: RunCapacityDeps;
}

export interface AdapterOptions {
  /** Waits between the adapters' own retries. @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /**
   * Backoff of failed SQS messages (tests with short visibility timeouts shorten it).
   * @default 30 s doubling per delivery, at most 15 min (`redeliveryDelaySeconds`)
   */
  readonly redelivery?: RedeliverySchedule;
  /** Replaces the SageMaker control plane (handler tests use an in-memory one). */
  readonly capacityControl?: CapacityControl;
}

/** Builds the adapters from the validated environment and the shared clients. */
export function createAdapters(
  env: Environment,
  clients: AwsClients,
  options: AdapterOptions = {},
): SluiceAdapters {
  const sleep = options.sleep === undefined ? {} : { sleep: options.sleep };
  const store = new S3ObjectStore({ client: clients.s3, bucket: env.bucket });
  // In-worker scoring reads its model from the bucket (once per container, see XgboostModelCache).
  const endpoints = new PipelineEndpointRegistry(clients.sagemaker, { ...options, store });
  return {
    pipelines: env.pipelines,
    bucket: env.bucket,
    store,
    runs: new DynamoRunStore({ doc: clients.dynamo, tableName: env.runsTable, ...sleep }),
    queue: new SqsWorkQueue({
      client: clients.sqs,
      workQueueUrl: env.workQueueUrl,
      finalizeQueueUrl: env.finalizeQueueUrl,
      // A split stack: units of the compute pool's pipelines go to the compute queue (WorkCompute).
      ...(env.workComputeQueueUrl === undefined
        ? {}
        : {
            computeQueue: computeQueueOf(env.workComputeQueueUrl, workPoolsOf([...env.pipelines.values()])),
          }),
      ...sleep,
    }),
    tokenCounter: new EstimatingTokenCounter(),
    chunkIndex: new DynamoChunkIndex({ doc: clients.dynamo, tableName: env.runsTable, ...sleep }),
    promptCache: new DynamoPromptCache({
      doc: clients.dynamo,
      tableName: env.runsTable,
      // Migration from the S3 cache: read a miss there (GetObject only) and copy a hit in.
      legacy: new ObjectStorePromptCache(store),
      onSkipped: (pipeline, promptSha256, bytes) =>
        console.warn(
          JSON.stringify({
            level: 'WARN',
            message: 'answer too large for the prompt cache; not cached',
            pipeline,
            promptSha256,
            bytes,
          }),
        ),
      ...sleep,
    }),
    ...(env.recommendationsTable === undefined
      ? {}
      : {
          recommendationLists: new DynamoRecommendationLists({
            doc: clients.dynamo,
            tableName: env.recommendationsTable,
            ...sleep,
          }),
        }),
    segmentStats: new DynamoSegmentStatsStore({ doc: clients.dynamo, tableName: env.runsTable, ...sleep }),
    endpointsFor: (config) => endpoints.endpointsFor(config),
    redelivery: new SqsRedelivery({ client: clients.sqs, ...options.redelivery }),
    ...(env.region === undefined ? {} : { costing: { region: env.region, estimate: false } }),
    capacity: {
      leases: new DynamoCapacityLeases({ doc: clients.dynamo, tableName: env.runsTable }),
      control: options.capacityControl ?? new SageMakerCapacityControl({ client: clients.sagemakerControl }),
      // The work function marks an incremental embed run's lease needed (docs/capacity.md, "Copies on demand").
      onDemandCopies: true,
      ...workersOf(env, clients.lambda),
    },
  };
}

/** The work event source's limit, where this function may set it (its role grants the two calls). */
function workersOf(env: Environment, client: LambdaClient): { workers?: WorkerScaling } {
  if (env.workEventSourceId === undefined) return {};
  const pipelines = [...env.pipelines.values()];
  const capacities = pipelines
    .map((config) => pipelineCapacityOf(config))
    .filter((capacity): capacity is PipelineCapacity => capacity !== undefined);
  const concurrency = new LambdaWorkerConcurrency({ client, eventSourceId: env.workEventSourceId });
  return { workers: workerScalingOf(concurrency, pipelines, capacities) };
}

let deployed: SluiceAdapters | undefined;

/**
 * The adapters of a deployed function: environment validated and clients created on
 * the first call, then reused for the life of the process. Called on first invocation
 * rather than at import, so importing a handler module (tests, tooling) needs no
 * environment. A failure is not cached: the next invocation tries again and reports it.
 *
 * @throws ConfigError when the environment is invalid
 */
export function deployedAdapters(options: LoadEnvironmentOptions = {}): SluiceAdapters {
  if (deployed === undefined) {
    const env = loadEnvironment(process.env, options);
    deployed = createAdapters(env, createAwsClients(env));
  }
  return deployed;
}
