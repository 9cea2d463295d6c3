import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { workPoolsOf } from '../../shared/capacity/work-pools.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { PROMPT_CACHE_PREFIX } from '../../shared/jobs/generate/prompt-cache.ts';
import { jobKindOf } from '../../shared/jobs/registry.ts';
import { RESULTS_PREFIX } from '../../shared/output/keys.ts';
import { STAGING_PREFIX } from '../../shared/plan/restage-gzip.ts';
import { CHART_JS_BUNDLED_FILE, chartJsPackagePath } from '../../shared/report/chart-js-source.ts';
import { MODELS_PREFIX } from '../deployment-settings.ts';
import { acceptBucketPrefixGrants } from '../nag-suppressions.ts';
import { readableKeys, SOURCE_PREFIXES } from '../readable-keys.ts';
import type { InvokableEndpoint } from './invokable-endpoint.ts';
import type { Queues } from './queues.ts';
import { SluiceFunction } from './sluice-function.ts';
import { addWorkCompute, type WorkComputeSizing } from './work-compute.ts';

/** TypeScript entry files of the handlers; each exports `handler`. */
export interface FunctionEntries {
  readonly plan: string;
  readonly work: string;
  readonly finalize: string;
  /** The work dead-letter queue's consumer. */
  readonly deadLetter: string;
  /** The capacity sweeper (`CapacitySweeper`), deployed when some endpoint has run-scoped capacity. */
  readonly capacitySweeper: string;
}

/** Lambda environment variables every Sluice handler reads (the env contract). */
export const ENV = {
  bucket: 'SLUICE_BUCKET',
  runsTable: 'SLUICE_RUNS_TABLE',
  workQueueUrl: 'SLUICE_WORK_QUEUE_URL',
  /**
   * The compute queue's URL, on plan, both work functions, finalize and dead-letter, and only
   * in a stack whose pipelines split into two work pools (`workPoolsOf`, issue 14).
   */
  workComputeQueueUrl: 'SLUICE_WORK_COMPUTE_QUEUE_URL',
  finalizeQueueUrl: 'SLUICE_FINALIZE_QUEUE_URL',
  /** Name of the pipelines file in the function's code folder (`LAMBDA_TASK_ROOT`). */
  pipelinesFile: 'SLUICE_PIPELINES_FILE',
  /** sha256 (hex) of that file, checked at cold start; a config change changes it. */
  pipelinesSha256: 'SLUICE_PIPELINES_SHA256',
  /**
   * UUID of the work queue's event source mapping, whose `MaximumConcurrency` plan and the
   * capacity sweeper set (workers follow the copies). Only in their environments: the work
   * function's own mapping depends on it, so its id in the work function would be a cycle.
   */
  workEventSourceId: 'SLUICE_WORK_EVENT_SOURCE_ID',
} as const;

/**
 * The validated pipeline configs ship in every function's code asset under this name,
 * not in the environment: Lambda caps a function's environment at 4 KB, which two
 * pipelines nearly fill.
 */
export const PIPELINES_FILE_NAME = 'sluice-pipelines.json';

export interface FunctionsProps {
  readonly entries: FunctionEntries;
  readonly bucket: s3.Bucket;
  readonly table: dynamodb.Table;
  readonly queues: Queues;
  /** Endpoints the workers call (embedding and scoring); the work function may invoke these and no other. */
  readonly endpoints: readonly InvokableEndpoint[];
  /**
   * ARNs of the stack's run-scoped inference components (issue 14): plan and finalize may
   * read and set their copies (a run asks for capacity when it is planned; finalize scales in
   * at release when the cooldown is not kept, and the scoring run a fit run plans asks for
   * its copies) and no other component's.
   * @default []
   */
  readonly capacityComponentArns?: readonly string[];
  /**
   * Powertools service name of all four functions (`POWERTOOLS_SERVICE_NAME`), the `service`
   * dimension of their metrics: `deploymentNames(stackName).serviceName`, so two stacks in
   * one account and region publish, and alarm on, separate metrics.
   */
  readonly serviceName: string;
  /** Validated configs, shipped with every handler's code as {@link PIPELINES_FILE_NAME}. */
  readonly pipelines: readonly PipelineConfig[];
  readonly planTimeout: Duration;
  readonly workTimeout: Duration;
  readonly finalizeTimeout: Duration;
  /** The work dead-letter queue's visibility timeout must be at least 6x this. */
  readonly deadLetterTimeout: Duration;
  readonly workMemoryMiB: number;
  /** Work event source `maxConcurrency`, sized to what the endpoints can take. */
  readonly workMaxConcurrency: number;
  /**
   * `WorkCompute`'s size, exactly when the pipelines split into two work pools (`workPoolsOf`);
   * `queues.workCompute` must exist then.
   * @default - no `WorkCompute`: every unit runs on `Work`
   */
  readonly workCompute?: WorkComputeSizing;
}

/**
 * The plan, work, finalize and dead-letter functions, their queue triggers and their
 * permissions: S3 (ingest queue) -> plan -> work queue -> work -> finalize queue ->
 * finalize; work DLQ -> dead-letter -> finalize queue (a unit whose worker died); and,
 * for score pipelines, finalize of a fit run -> work queue (the scoring run it plans).
 * In a stack whose pipelines split into two work pools (`workPoolsOf`, issue 14), the
 * compute pool's units go compute queue -> WorkCompute (same handler, its own size) and
 * the work DLQ's consumer takes the compute DLQ too.
 * Each function gets only what its step needs for the pipeline kinds deployed; all share
 * one environment and one pipelines file.
 */
export class Functions extends Construct {
  /** Defaults for the steps whose timeouts are not set by pipeline configs. */
  /** Planning samples inputs, counts lines up to the last cut and re-stages big gzip sources in one pass. */
  static readonly defaultPlanTimeout = Duration.minutes(15);
  /** Finalize of a fit run also plans the scoring run that follows. */
  static readonly defaultFinalizeTimeout = Duration.minutes(15);
  /**
   * A batch of ten dead letters is a few DynamoDB updates, S3 heads and small puts each;
   * a minute leaves room for SDK retries while keeping the work DLQ's visibility timeout short.
   */
  static readonly defaultDeadLetterTimeout = Duration.minutes(1);

  readonly plan: SluiceFunction;
  readonly work: SluiceFunction;
  /**
   * The compute pool's work function on the compute queue (issue 14); undefined when the
   * pipelines do not split, and `work` runs every unit.
   */
  readonly workCompute: SluiceFunction | undefined;
  readonly finalize: SluiceFunction;
  readonly deadLetter: SluiceFunction;
  /**
   * The work queue's event source mapping: plan and the capacity sweeper set its
   * `MaximumConcurrency` to the workers the live leases need (`grantWorkerScaling`).
   */
  readonly workEventSource: { readonly id: string; readonly arn: string };
  readonly environment: Readonly<Record<string, string>>;
  /** The pipelines file every function's code asset carries: its bytes and their sha256 (hex). */
  readonly pipelinesFile: { readonly name: string; readonly content: string; readonly sha256: string };

  constructor(scope: Construct, id: string, props: FunctionsProps) {
    super(scope, id);
    const { bucket, table, queues } = props;
    const scoring = props.pipelines.some((p) => p.kind === 'score');
    const capacity = (props.capacityComponentArns ?? []).length > 0;
    // Every key a config names must lie where some function may read it (one-line error otherwise).
    readableKeys(props.pipelines);
    this.pipelinesFile = pipelinesFileOf(props.pipelines);
    this.environment = {
      [ENV.bucket]: bucket.bucketName,
      [ENV.runsTable]: table.tableName,
      [ENV.workQueueUrl]: queues.work.queue.queueUrl,
      [ENV.finalizeQueueUrl]: queues.finalize.queue.queueUrl,
      [ENV.pipelinesFile]: this.pipelinesFile.name,
      [ENV.pipelinesSha256]: this.pipelinesFile.sha256,
    };
    const bundledFiles = { [PIPELINES_FILE_NAME]: this.pipelinesFile.content };

    const pools = workPoolsOf(props.pipelines);
    const compute = computeQueueOf(props, pools.split);

    this.plan = this.addPlan(props, bundledFiles, { scoring, capacity });
    const work = this.addWork(props, bundledFiles);
    this.work = work.fn;
    this.workEventSource = work.eventSource;
    // Plan raises the work event source's limit when a run takes a lease.
    if (capacity) grantWorkerScaling(this.plan, this.workEventSource);
    this.grantWork(props, this.work, pools.work, { queue: queues.work.queue, endpoints: props.endpoints });
    this.workCompute = compute && this.addWorkCompute(props, bundledFiles, compute, pools.compute);
    this.finalize = this.addFinalize(props, bundledFiles, scoring, pools.work);
    this.deadLetter = this.addDeadLetter(props, bundledFiles);
    if (compute) this.connectComputeQueue(compute.queue, pools.compute);
  }

  /**
   * compute queue -> WorkCompute (issue 14): the compute pool's work function and its grants.
   * The compute pool calls no endpoint (WorkCompute may invoke none); the rest follows its
   * pipelines as `Work`'s follows the endpoint pool's ({@link grantWork}).
   */
  private addWorkCompute(
    props: FunctionsProps,
    bundledFiles: Readonly<Record<string, string>>,
    compute: { readonly queue: sqs.IQueue; readonly sizing: WorkComputeSizing },
    pipelines: readonly PipelineConfig[],
  ): SluiceFunction {
    const fn = addWorkCompute(this, {
      ...compute.sizing,
      entry: props.entries.work,
      queue: compute.queue,
      environment: this.environment,
      serviceName: props.serviceName,
      bundledFiles,
    });
    this.grantWork(props, fn, pipelines, { queue: compute.queue, endpoints: [] });
    return fn;
  }

  /**
   * Every function that sends units or reads their queue's URL knows the compute queue (not
   * the capacity sweeper, which sends none). Plan sends the compute pool's units, finalize
   * its later stages' units; dead-letter only asks for finalize.
   */
  private connectComputeQueue(queue: sqs.IQueue, pipelines: readonly PipelineConfig[]): void {
    for (const fn of [this.plan, this.work, this.workCompute, this.finalize, this.deadLetter])
      fn?.function.addEnvironment(ENV.workComputeQueueUrl, queue.queueUrl);
    grantSend(this.plan, queue);
    if (plansLaterStages(pipelines)) grantSend(this.finalize, queue);
  }

  /**
   * (S3 notification | schedule) -> plan: head and sample sources, re-stage big gzip
   * sources under staging/, cut units, send them.
   */
  private addPlan(
    props: FunctionsProps,
    bundledFiles: Readonly<Record<string, string>>,
    kinds: { readonly scoring: boolean; readonly capacity: boolean },
  ): SluiceFunction {
    const { bucket, table, queues } = props;
    const plan = new SluiceFunction(this, 'Plan', {
      entry: props.entries.plan,
      description: 'Sluice plan: cuts a run into work units and queues them',
      timeout: props.planTimeout,
      memorySize: 3008,
      environment: this.environment,
      serviceName: props.serviceName,
      bundledFiles,
    });
    plan.function.addEventSource(
      // Many uploads at once (10,000 small files) become one run per pipeline, not one per ten files.
      new SqsEventSource(queues.ingest.queue, {
        batchSize: 1000,
        maxBatchingWindow: Duration.seconds(30),
        reportBatchItemFailures: true,
      }),
    );
    // Score pipelines: plan reads the stored feature statistics to decide whether a run fits them first.
    grantData(plan, bucket, table, {
      read: [...SOURCE_PREFIXES, ...(kinds.scoring ? [MODELS_PREFIX] : [])],
      put: [STAGING_PREFIX],
      readWrite: [RUNS_PREFIX],
      // createRun (the run, its units in batches); getRun and listUnits take up a scheduled run.
      // Run-scoped capacity: take the run's lease (put, get) and mark it ready (update).
      table: [
        'dynamodb:GetItem',
        'dynamodb:Query',
        'dynamodb:PutItem',
        'dynamodb:BatchWriteItem',
        ...(kinds.capacity ? (['dynamodb:UpdateItem'] as const) : []),
      ],
    });
    // A run asks for its copies when it is planned: read the component's copies, raise them.
    if (kinds.capacity) grantCapacityControl(plan, props.capacityComponentArns ?? []);
    grantSend(plan, queues.work.queue);
    // A run with no units (an empty file) is finalized straight from plan.
    grantSend(plan, queues.finalize.queue);
    return plan;
  }

  /**
   * work queue -> work: read one unit's byte range (or its re-staged part), embed or
   * score, write one Parquet part per table. Its permissions are {@link grantWork}'s.
   */
  private addWork(
    props: FunctionsProps,
    bundledFiles: Readonly<Record<string, string>>,
  ): { fn: SluiceFunction; eventSource: { readonly id: string; readonly arn: string } } {
    const work = new SluiceFunction(this, 'Work', {
      entry: props.entries.work,
      description: 'Sluice work: embeds or scores one work unit and writes its Parquet parts',
      timeout: props.workTimeout,
      memorySize: props.workMemoryMiB,
      environment: this.environment,
      serviceName: props.serviceName,
      bundledFiles,
    });
    // Deployed at the stack's largest workers.maxConcurrency; with run-scoped capacity, plan
    // and the sweeper then keep it at what the live leases need (docs/capacity.md).
    const workSource = new SqsEventSource(props.queues.work.queue, {
      batchSize: 1,
      reportBatchItemFailures: true,
      maxConcurrency: props.workMaxConcurrency,
    });
    work.function.addEventSource(workSource);
    return {
      fn: work,
      eventSource: { id: workSource.eventSourceMappingId, arn: workSource.eventSourceMappingArn },
    };
  }

  /**
   * What a work function may read, write, send and invoke: what the units of `pipelines` (its
   * pool's; all of them when the stack does not split) call, its own queue and `endpoints`.
   * Both work functions derive their grants here from their own pipelines' kinds and
   * settings, so a stack carries no grant its pipelines do not use, split or not.
   */
  private grantWork(
    props: FunctionsProps,
    fn: SluiceFunction,
    pipelines: readonly PipelineConfig[],
    own: { readonly queue: sqs.IQueue; readonly endpoints: readonly InvokableEndpoint[] },
  ): void {
    const { bucket, table, queues } = props;
    const scoring = pipelines.some((p) => p.kind === 'score');
    // Every unit leaves under runs/ the list of the ids its part holds, which finalize merges
    // to apply the duplicate-id rule. Score pipelines: work also reads feature statistics and
    // embedding tables under models/ and leaves fit and segment partials under runs/.
    // Incremental embed pipelines: each unit's document list too, which finalize compares
    // with the source's last one to count the documents a re-drop no longer has.
    grantData(fn, bucket, table, {
      // Recommend pipelines: similarity units read the index and shard plan the ingest merge left under runs/.
      // Generate pipelines: the old S3 prompt cache, read on a miss of the runs table's (point
      // GETs, never listed or written: the cache lives in the runs table, docs/generate.md).
      read: [
        ...SOURCE_PREFIXES,
        STAGING_PREFIX,
        ...(scoring ? [MODELS_PREFIX] : []),
        ...(pipelines.some((p) => p.kind === 'recommend') ? [RUNS_PREFIX] : []),
        ...(pipelines.some((p) => p.kind === 'generate') ? [PROMPT_CACHE_PREFIX] : []),
        // Incremental embed pipelines: the chunk index entries a unit of the run replaced,
        // read back by its retry or another unit that finds them (shared/jobs/embed/prior-entries.ts).
        ...pipelines
          .filter((p) => p.kind === 'embed' && p.incremental.enabled)
          .map((p) => `${RUNS_PREFIX}${p.name}/`),
      ],
      put: [RUNS_PREFIX],
      readWrite: [RESULTS_PREFIX],
      table: workTableActions(pipelines),
    });
    // In-worker scoring reads the model at the version its run pinned (GetObject with VersionId);
    // an endpoint (serverless, instance) reads its own model, and its runs pin none.
    if (pipelines.some(readsPinnedModel))
      iam.Grant.addToPrincipal({
        grantee: fn,
        actions: ['s3:GetObjectVersion'],
        resourceArns: [bucket.arnForObjects(`${MODELS_PREFIX}*`)],
      });
    // Tokenizers of embed pipelines: exactly the objects their configs name, under models/.
    grantObjectKeys(fn, bucket, readableKeys(pipelines).tokenizers);
    // A unit near the Lambda time limit hands the rest of itself on as a new message on its
    // own queue (checkpoint), and the last unit asks for finalize.
    grantSend(fn, own.queue);
    grantSend(fn, queues.finalize.queue);
    for (const endpoint of own.endpoints) endpoint.grantInvoke(fn);
  }

  /** finalize queue -> finalize: merge unit aggregates into the run summary, once. */
  private addFinalize(
    props: FunctionsProps,
    bundledFiles: Readonly<Record<string, string>>,
    scoring: boolean,
    /** The work queue's pipelines (all of them when the stack does not split). */
    workPool: readonly PipelineConfig[],
  ): SluiceFunction {
    const { bucket, table, queues } = props;
    const finalize = new SluiceFunction(this, 'Finalize', {
      entry: props.entries.finalize,
      description:
        'Sluice finalize: merges unit results into the run summary; starts the scoring run after a fit',
      timeout: props.finalizeTimeout,
      memorySize: 1024,
      environment: this.environment,
      serviceName: props.serviceName,
      // The run report (report.html beside summary.json) inlines Chart.js: shipped as a file.
      bundledFiles: { ...bundledFiles, [CHART_JS_BUNDLED_FILE]: readFileSync(chartJsPackagePath(), 'utf8') },
    });
    finalize.function.addEventSource(
      new SqsEventSource(queues.finalize.queue, { batchSize: 1, reportBatchItemFailures: true }),
    );
    // Score pipelines: finalize at the end of a run's fit stage stores the merged feature
    // statistics under models/, plans the score stage from the fit stage's units (no source
    // is read: the units name them) and queues its units, or requests its own finalize
    // when it has none. It reads the model JSON under models/ for the schema check (end of
    // fit, once the one-hot categories are known) and the summary's unchecked-order warning.
    grantData(finalize, bucket, table, {
      read: scoring ? [MODELS_PREFIX] : [],
      put: scoring ? [MODELS_PREFIX] : [],
      readWrite: [RESULTS_PREFIX, RUNS_PREFIX],
      table: finalizeTableActions(props.pipelines),
    });
    // A run's later stage (score after fit, recommend's similarity) is planned here and its
    // units sent to their pool's queue (the compute queue's grant is the constructor's); a
    // stage with no units asks for its own finalize.
    if (plansLaterStages(workPool)) grantSend(finalize, queues.work.queue);
    if (plansLaterStages(props.pipelines)) grantSend(finalize, queues.finalize.queue);
    // Every component: finalize scales in at release when the cooldown is not kept.
    grantCapacityControl(finalize, props.capacityComponentArns ?? []);
    return finalize;
  }

  /**
   * work DLQ -> dead-letter: a unit whose deliveries ran out. Marks it failed when its
   * worker died on the last delivery (a worker that saw an error already did), replaces
   * any table part an earlier attempt wrote with an empty one, and asks for finalize
   * when that ends the run.
   */
  private addDeadLetter(
    props: FunctionsProps,
    bundledFiles: Readonly<Record<string, string>>,
  ): SluiceFunction {
    const { bucket, table, queues } = props;
    const deadLetter = new SluiceFunction(this, 'DeadLetter', {
      entry: props.entries.deadLetter,
      description: 'Sluice dead-letter: marks failed the work units whose worker died on the last delivery',
      timeout: props.deadLetterTimeout,
      memorySize: 512,
      environment: this.environment,
      serviceName: props.serviceName,
      bundledFiles,
    });
    // And the compute queue's dead letters, where the stack has one (issue 14).
    for (const deadLetters of [queues.work, ...(queues.workCompute ? [queues.workCompute] : [])])
      deadLetter.function.addEventSource(
        new SqsEventSource(deadLetters.deadLetterQueue, { batchSize: 10, reportBatchItemFailures: true }),
      );
    // Read: whether a part exists (a HEAD of a missing key is a 404 only with s3:ListBucket,
    // which grantRead includes). Put, never delete: the ObjectStore port has no delete, so
    // a part is taken back by overwriting it with an empty one.
    grantData(deadLetter, bucket, table, {
      read: [RESULTS_PREFIX],
      put: [RESULTS_PREFIX],
      readWrite: [],
      // failUnit (update); getRun when the run may be stranded.
      table: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
    });
    grantSend(deadLetter, queues.finalize.queue);
    return deadLetter;
  }
}

/**
 * The configs go with the code, and only their name and hash into the environment, so
 * the environment stays the same size however many pipelines a stack serves. The hash
 * changes the function's configuration with the configs (the asset hash changes too,
 * as it covers the bundle's output), and the handler checks the file against it.
 */
function pipelinesFileOf(pipelines: readonly PipelineConfig[]): Functions['pipelinesFile'] {
  const content = `${JSON.stringify(pipelines, null, 2)}\n`;
  return { name: PIPELINES_FILE_NAME, content, sha256: createHash('sha256').update(content).digest('hex') };
}

/**
 * The compute queue and `WorkCompute`'s size when the stack splits (`workPoolsOf`), with a
 * one-line error when the stack's queues and sizing disagree with its pipelines.
 */
function computeQueueOf(
  props: FunctionsProps,
  split: boolean,
): { readonly queue: sqs.IQueue; readonly sizing: WorkComputeSizing } | undefined {
  const queue = props.queues.workCompute?.queue;
  const sizing = props.workCompute;
  if ((queue !== undefined) !== split || (sizing !== undefined) !== split)
    throw new Error(
      `the pipelines ${split ? 'split' : 'do not split'} into two work pools (workPoolsOf) but the stack ${split ? 'lacks' : 'has'} a compute queue or WorkCompute size: pass both exactly when they split`,
    );
  return queue && sizing && { queue, sizing };
}

/**
 * Whether some pipeline's runs have a stage planned from an earlier one (`planUnits`: score's
 * score stage after its fit, recommend's similarity after its ingest), which finalize plans
 * and whose units it sends.
 */
function plansLaterStages(pipelines: readonly PipelineConfig[]): boolean {
  return pipelines.some((p) => jobKindOf(p).stages.some((stage) => stage.planUnits !== undefined));
}

/**
 * Embed pipelines with incremental runs (`incremental.enabled`) keep the chunk index in the runs
 * table: their units look chunks up and record documents (BatchGetItem, BatchWriteItem), and
 * their stage's merge looks up and forgets the documents a source no longer has.
 */
export function keepsChunkIndex(pipeline: PipelineConfig): boolean {
  return pipeline.kind === 'embed' && pipeline.incremental.enabled;
}

/** Generate pipelines keep their prompt cache in the runs table: units look answers up and store new ones (batches). */
export function keepsPromptCache(pipeline: PipelineConfig): boolean {
  return pipeline.kind === 'generate';
}

/**
 * Score pipelines scored in the worker (`model.hosting` `in-worker`, the compute pool of
 * `workPoolOf`): each run pins the model object's version (the score job's `pinsOfRun`) and
 * the units read exactly it (`s3:GetObjectVersion`). A hosted model is read by its endpoint.
 */
export function readsPinnedModel(pipeline: PipelineConfig): boolean {
  return pipeline.kind === 'score' && pipeline.model.hosting === 'in-worker';
}

/**
 * A work function's runs table operations for the units of `pipelines`: unit transitions
 * (get, update) and checkpoint continuations (put) for every kind; the batches only for the
 * chunk index and the prompt cache.
 */
export function workTableActions(pipelines: readonly PipelineConfig[]): RunsTableAction[] {
  const batches = pipelines.some((p) => keepsChunkIndex(p) || keepsPromptCache(p));
  return [
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    ...(batches ? (['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'] as const) : []),
  ];
}

/**
 * Finalize's runs table operations for a stack of `pipelines`: units and summary (get, query,
 * update) for every kind; the chunk index's lookups and forgets (batches) of incremental embed
 * pipelines; the next stage's units (batch write; the run's move into it is an update) where a
 * stage is planned from an earlier one, score's segment statistics among them. No run is
 * created here (no put).
 */
export function finalizeTableActions(pipelines: readonly PipelineConfig[]): RunsTableAction[] {
  const chunkIndex = pipelines.some(keepsChunkIndex);
  const batchWrites = chunkIndex || plansLaterStages(pipelines) || pipelines.some((p) => p.kind === 'score');
  return [
    'dynamodb:GetItem',
    ...(chunkIndex ? (['dynamodb:BatchGetItem'] as const) : []),
    'dynamodb:Query',
    'dynamodb:UpdateItem',
    ...(batchWrites ? (['dynamodb:BatchWriteItem'] as const) : []),
  ];
}

/** Run manifests, summaries and the units' partial aggregates. */
const RUNS_PREFIX = 'runs/';

/**
 * Every runs table operation the ports' DynamoDB adapters perform (run store, chunk index,
 * segment statistics): point reads and writes, conditional updates, batches and queries of
 * the table itself. Never Scan, DeleteItem, streams, DescribeTable or an index.
 * Each function is granted the subset its steps use. (The capacity sweeper alone also
 * deletes: it prunes released capacity leases, `SWEEPER_TABLE_ACTIONS`.)
 */
export const RUNS_TABLE_ACTIONS: readonly RunsTableAction[] = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:BatchWriteItem',
];

export type RunsTableAction =
  | 'dynamodb:DeleteItem'
  | 'dynamodb:GetItem'
  | 'dynamodb:BatchGetItem'
  | 'dynamodb:Query'
  | 'dynamodb:PutItem'
  | 'dynamodb:UpdateItem'
  | 'dynamodb:BatchWriteItem';

/**
 * Object access by key prefix and read-write access to the runs table, with the cdk-nag
 * findings that causes accepted by name. Read is `s3:GetObject` (HeadObject and ranged
 * reads too) on the prefix plus `s3:ListBucket` on the bucket, so a missing key is a 404
 * rather than a 403 and prefixes can be listed; put is `s3:PutObject` and
 * `s3:AbortMultipartUpload` (big parts go up in parts). Never delete: the ObjectStore port
 * has no delete.
 */
function grantData(
  fn: SluiceFunction,
  bucket: s3.Bucket,
  table: dynamodb.Table,
  prefixes: {
    read: readonly string[];
    put: readonly string[];
    readWrite: readonly string[];
    /** The runs table operations the function's steps perform (a subset of {@link RUNS_TABLE_ACTIONS}). */
    table: readonly RunsTableAction[];
  },
): void {
  const read = [...prefixes.read, ...prefixes.readWrite];
  const put = [...prefixes.put, ...prefixes.readWrite];
  if (read.length > 0) {
    iam.Grant.addToPrincipal({ grantee: fn, actions: ['s3:ListBucket'], resourceArns: [bucket.bucketArn] });
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['s3:GetObject'],
      resourceArns: read.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
    });
    // A unit pins the version of the source it was planned on and reads exactly that
    // version (GetObject with VersionId), so a source overwritten mid-run is not mixed.
    const sources = read.filter((prefix) => (SOURCE_PREFIXES as readonly string[]).includes(prefix));
    if (sources.length > 0) {
      iam.Grant.addToPrincipal({
        grantee: fn,
        actions: ['s3:GetObjectVersion'],
        resourceArns: sources.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
      });
    }
  }
  if (put.length > 0) {
    // PutObject covers a multipart upload's create, parts and completion; a failed or
    // abandoned one is aborted, so no incomplete upload waits for the lifecycle rule.
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
      resourceArns: put.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
    });
  }
  if (bucket.encryptionKey) {
    if (put.length > 0) bucket.encryptionKey.grantEncryptDecrypt(fn);
    else if (read.length > 0) bucket.encryptionKey.grantDecrypt(fn);
  }
  iam.Grant.addToPrincipal({ grantee: fn, actions: [...prefixes.table], resourceArns: [table.tableArn] });
  // No function lists runs (the byStartedAt index serves `sluice status`), so no index is granted.
  acceptBucketPrefixGrants(fn.role, { bucket, prefixes: [...new Set([...read, ...put])] });
}

/** The runs table operations `actions` on the table itself (no index), for a function outside {@link Functions}. */
export function grantRunsTable(
  fn: SluiceFunction,
  table: dynamodb.ITable,
  actions: readonly RunsTableAction[],
): void {
  iam.Grant.addToPrincipal({ grantee: fn, actions: [...actions], resourceArns: [table.tableArn] });
}

/**
 * `sagemaker:DescribeInferenceComponent` and `sagemaker:UpdateInferenceComponentRuntimeConfig`
 * (the two calls of shared/adapters/aws/sagemaker-capacity-control.ts) on exactly the
 * components named; both take the `inference-component` resource type
 * (`arn:<partition>:sagemaker:<region>:<account>:inference-component/<name>`).
 */
export function grantCapacityControl(fn: SluiceFunction, componentArns: readonly string[]): void {
  if (componentArns.length === 0) return;
  iam.Grant.addToPrincipal({
    grantee: fn,
    actions: ['sagemaker:DescribeInferenceComponent', 'sagemaker:UpdateInferenceComponentRuntimeConfig'],
    resourceArns: [...componentArns],
  });
}

/**
 * `lambda:GetEventSourceMapping` and `lambda:UpdateEventSourceMapping` on exactly the work
 * queue's mapping (`arn:<partition>:lambda:<region>:<account>:event-source-mapping:<UUID>`),
 * the two calls of shared/adapters/aws/lambda-worker-concurrency.ts, and the mapping's id in
 * the function's environment. Never for the work function itself: its mapping depends on it.
 */
export function grantWorkerScaling(
  fn: SluiceFunction,
  source: { readonly id: string; readonly arn: string },
): void {
  fn.function.addEnvironment(ENV.workEventSourceId, source.id);
  iam.Grant.addToPrincipal({
    grantee: fn,
    actions: ['lambda:GetEventSourceMapping', 'lambda:UpdateEventSourceMapping'],
    resourceArns: [source.arn],
  });
}

/** `sqs:SendMessage` (SendMessage and SendMessageBatch) on one queue; no queue attributes or URL lookups. */
function grantSend(fn: SluiceFunction, queue: sqs.IQueue): void {
  iam.Grant.addToPrincipal({ grantee: fn, actions: ['sqs:SendMessage'], resourceArns: [queue.queueArn] });
  queue.encryptionMasterKey?.grantEncryptDecrypt(fn);
}

/** `s3:GetObject` on exact keys (no wildcard), for objects a config names one by one. */
function grantObjectKeys(fn: SluiceFunction, bucket: s3.Bucket, keys: readonly string[]): void {
  if (keys.length === 0) return;
  iam.Grant.addToPrincipal({
    grantee: fn,
    actions: ['s3:GetObject'],
    resourceArns: keys.map((key) => bucket.arnForObjects(key)),
  });
  bucket.encryptionKey?.grantDecrypt(fn);
}
