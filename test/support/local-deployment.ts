import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context, SQSEvent } from 'aws-lambda';
import { interceptLocalhostDns } from 'fauxqs';
import {
  type ModelServer,
  type ModelServerOptions,
  startModelServer,
} from '../../cli/model-server/server.ts';
import {
  type AwsClientOverrides,
  type AwsClients,
  createAwsClients,
} from '../../functions/config/adapters.ts';
import { type Environment, loadEnvironment } from '../../functions/config/environment.ts';
import { aLambdaContext } from '../functions/factories.ts';
import { toLambdaRecord } from './lambda-sqs-record.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
  startFauxqsServer,
} from './local-aws.ts';

/** A queue to create in fauxqs. */
export interface LocalQueue {
  /** @default 30 (SQS's) */
  readonly visibilityTimeoutSeconds?: number;
  /** Its redrive policy: the dead-letter queue (created earlier in `queues`) and after how many receives. */
  readonly deadLetter?: { readonly queue: string; readonly maxReceiveCount: number };
}

export interface LocalAwsOptions {
  /** A bucket to create in fauxqs's S3. */
  readonly bucket?: string;
  /** Queues to create in fauxqs's SQS, by name, in this order: a dead-letter queue before the queue naming it. */
  readonly queues?: Readonly<Record<string, LocalQueue>>;
  /** A runs table to create in dynalite (as DynamoRunStore expects it). */
  readonly runsTable?: string;
  /** A local model server (SageMaker runtime API) to start with the others. */
  readonly model?: ModelServerOptions;
  /** Attempts of the test's own clients (one, where a retry would hide what is tested). @default the SDK's */
  readonly maxAttempts?: number;
}

/** What a handler returns that Lambda's poller reads: the messages to leave on the queue. */
type DeliveredResponse =
  | { readonly batchItemFailures?: readonly { readonly itemIdentifier: string }[] }
  | undefined;

export interface LocalAws {
  /** fauxqs (S3 and SQS on one port) and dynalite (DynamoDB), for clients' `endpoint`. */
  readonly endpoints: { readonly fauxqs: string; readonly dynalite: string };
  /** The test's own clients on those servers (the handlers get theirs from `handlerClients`). */
  readonly clients: {
    readonly s3: S3Client;
    readonly sqs: SQSClient;
    readonly dynamo: DynamoDBClient;
    readonly doc: DynamoDBDocumentClient;
  };
  /** The URL of each created queue, by name. */
  readonly queueUrls: Readonly<Record<string, string>>;
  /** The model server, when `model` was given. */
  readonly model: ModelServer | undefined;
  /** Client settings that point the handlers' S3, SQS and DynamoDB clients here (SageMaker: the environment's URL). */
  readonly clientOverrides: AwsClientOverrides;
  /**
   * The functions' environment over these resources: the bucket, the runs table, the
   * named work and finalize queues (and the compute queue of a split stack, issue 14), and
   * SageMaker calls to `sagemakerEndpointUrl` (by default the model server).
   */
  environment(options: {
    readonly pipelines: readonly unknown[];
    readonly workQueue: string;
    /** The compute queue, for pipelines that split between two work functions (`workPoolsOf`). */
    readonly computeQueue?: string;
    readonly finalizeQueue: string;
    readonly sagemakerEndpointUrl?: string;
    /** The work queue's event source mapping (plan and the sweeper): its limit follows the copies. */
    readonly workEventSourceId?: string;
  }): Environment;
  /**
   * The SDK clients a deployed function builds for `env`, pointed here (and the Lambda
   * control plane at `lambdaEndpoint`, a local event source mappings server); `stop()`
   * destroys them.
   */
  handlerClients(env: Environment, options?: { readonly lambdaEndpoint?: string }): AwsClients;
  /**
   * What Lambda's poller does until the queue is empty: receive (10 at a time), hand each
   * batch to the handler as the SQS event Lambda builds, delete the messages that succeeded.
   */
  deliver(
    queue: string,
    handler: (event: SQSEvent, context: Context) => Promise<DeliveredResponse>,
  ): Promise<{ delivered: number; failed: number }>;
  /**
   * Points the AWS environment (region, test credentials, DynamoDB and SQS endpoints) and
   * `*.localhost` names here, for code that builds its clients from the environment (the
   * CLI; fauxqs names queues `http://sqs.<region>.localhost:<port>/...`). Returns the undo;
   * `stop()` undoes it too.
   */
  useAwsEnvironment(): () => void;
  /** Destroys every client and stops every server (and undoes `useAwsEnvironment`). */
  stop(): Promise<void>;
}

/**
 * fauxqs, dynalite and (optionally) the local model server on 127.0.0.1, with a bucket,
 * queues and a runs table created and clients built: the one set-up of the wire and fault
 * suites. Call `stop()` in `afterAll`.
 */
export async function startLocalAws(options: LocalAwsOptions = {}): Promise<LocalAws> {
  const started: { fauxqs?: LocalAwsServer; dynalite?: LocalAwsServer; model?: ModelServer } = {};
  const destroyable: { destroy(): void }[] = [];
  let undoEnvironment: (() => void) | undefined;
  const stop = async () => {
    undoEnvironment?.();
    for (const client of destroyable.splice(0)) client.destroy();
    await Promise.all([started.fauxqs?.stop(), started.dynalite?.stop(), started.model?.close()]);
  };
  try {
    [started.fauxqs, started.dynalite, started.model] = await Promise.all([
      startFauxqsServer(),
      startDynalite(),
      options.model === undefined ? undefined : startModelServer(options.model),
    ]);
    const fauxqs = started.fauxqs.endpoint;
    const dynalite = started.dynalite.endpoint;
    const attempts = options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts };
    const dynamo = new DynamoDBClient({ ...localClientConfig(dynalite), ...attempts });
    const clients = {
      s3: new S3Client({ ...localClientConfig(fauxqs), forcePathStyle: true, ...attempts }),
      sqs: new SQSClient({ ...localClientConfig(fauxqs), ...attempts }),
      dynamo,
      doc: DynamoDBDocumentClient.from(dynamo),
    };
    // The document client wraps `dynamo`: destroying that one is enough.
    destroyable.push(clients.s3, clients.sqs, clients.dynamo);

    if (options.runsTable !== undefined) await createRunsTable(clients.dynamo, options.runsTable);
    if (options.bucket !== undefined)
      await clients.s3.send(new CreateBucketCommand({ Bucket: options.bucket }));
    const queueUrls: Record<string, string> = {};
    for (const [name, queue] of Object.entries(options.queues ?? {}))
      queueUrls[name] = await createQueue(clients.sqs, name, queue, queueUrls);

    const clientOverrides: AwsClientOverrides = {
      s3: { ...localClientConfig(fauxqs), forcePathStyle: true },
      sqs: localClientConfig(fauxqs),
      dynamo: localClientConfig(dynalite),
      sagemaker: { region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } },
    };
    const urlOf = (queue: string) => {
      const url = queueUrls[queue];
      if (url === undefined) throw new Error(`startLocalAws: no queue ${queue} was created`);
      return url;
    };
    const { model } = started;

    return {
      endpoints: { fauxqs, dynalite },
      clients,
      queueUrls,
      model,
      clientOverrides,
      environment: (env) =>
        loadEnvironment({
          SLUICE_BUCKET: options.bucket,
          SLUICE_RUNS_TABLE: options.runsTable,
          SLUICE_WORK_QUEUE_URL: urlOf(env.workQueue),
          SLUICE_WORK_COMPUTE_QUEUE_URL: env.computeQueue === undefined ? undefined : urlOf(env.computeQueue),
          SLUICE_FINALIZE_QUEUE_URL: urlOf(env.finalizeQueue),
          SLUICE_PIPELINES: JSON.stringify(env.pipelines),
          SLUICE_SAGEMAKER_ENDPOINT_URL: env.sagemakerEndpointUrl ?? model?.url,
          SLUICE_WORK_EVENT_SOURCE_ID: env.workEventSourceId,
        }),
      handlerClients(env, handlerOptions = {}) {
        const lambda = handlerOptions.lambdaEndpoint;
        const built = createAwsClients(env, {
          ...clientOverrides,
          ...(lambda === undefined ? {} : { lambda: localClientConfig(lambda) }),
        });
        destroyable.push(...Object.values(built));
        return built;
      },
      deliver: (queue, handler) => deliverQueue(clients.sqs, urlOf(queue), queue, handler),
      useAwsEnvironment() {
        undoEnvironment?.();
        undoEnvironment = pointAwsEnvironment({ dynamodb: dynalite, sqs: fauxqs });
        return () => {
          undoEnvironment?.();
          undoEnvironment = undefined;
        };
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** How the queues of {@link stackQueues} are set up. */
export interface StackQueuesOptions {
  /** Add the compute queue and its DLQ: a stack whose pipelines split between two work functions. */
  readonly split?: boolean;
  /** @default 5 */
  readonly visibilityTimeoutSeconds?: number;
  /** Receives before a work or compute message goes to its DLQ. @default 3 */
  readonly maxReceiveCount?: number;
}

/** The names {@link stackQueues} gives the stack's queues. */
export const STACK_QUEUES = {
  ingest: 'sluice-ingest',
  work: 'sluice-work',
  workDeadLetter: 'sluice-work-dlq',
  compute: 'sluice-work-compute',
  computeDeadLetter: 'sluice-work-compute-dlq',
  finalize: 'sluice-finalize',
} as const;

/**
 * The queues a deployed stack has, for `startLocalAws({ queues })`, each work queue with its
 * own DLQ as the stack wires it: ingest, work (+DLQ), finalize, and, in a split stack, the
 * compute queue (+DLQ) that `WorkCompute` works from. Names in {@link STACK_QUEUES}.
 */
export function stackQueues(options: StackQueuesOptions = {}): Record<string, LocalQueue> {
  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 5;
  const maxReceiveCount = options.maxReceiveCount ?? 3;
  const q = STACK_QUEUES;
  return {
    [q.ingest]: { visibilityTimeoutSeconds },
    [q.workDeadLetter]: {},
    [q.work]: { visibilityTimeoutSeconds, deadLetter: { queue: q.workDeadLetter, maxReceiveCount } },
    ...(options.split
      ? {
          [q.computeDeadLetter]: {},
          [q.compute]: {
            visibilityTimeoutSeconds,
            deadLetter: { queue: q.computeDeadLetter, maxReceiveCount },
          },
        }
      : {}),
    [q.finalize]: { visibilityTimeoutSeconds },
  };
}

async function createQueue(
  sqs: SQSClient,
  name: string,
  queue: LocalQueue,
  created: Readonly<Record<string, string>>,
): Promise<string> {
  const attributes: Record<string, string> = {};
  if (queue.visibilityTimeoutSeconds !== undefined)
    attributes.VisibilityTimeout = String(queue.visibilityTimeoutSeconds);
  if (queue.deadLetter !== undefined) {
    const target = created[queue.deadLetter.queue];
    if (target === undefined)
      throw new Error(`startLocalAws: create ${queue.deadLetter.queue} before ${name}, which names it`);
    const out = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: target, AttributeNames: ['QueueArn'] }),
    );
    attributes.RedrivePolicy = JSON.stringify({
      deadLetterTargetArn: out.Attributes!.QueueArn!,
      maxReceiveCount: queue.deadLetter.maxReceiveCount,
    });
  }
  const out = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      ...(Object.keys(attributes).length === 0 ? {} : { Attributes: attributes }),
    }),
  );
  return out.QueueUrl!;
}

/**
 * What Lambda's poller does until the queue is empty: receive (10 at a time, with the
 * system attributes Lambda passes on), hand each batch to the handler as the SQS event
 * Lambda builds, delete the messages that succeeded.
 */
export async function deliverQueue(
  sqs: SQSClient,
  queueUrl: string,
  queueName: string,
  handler: (event: SQSEvent, context: Context) => Promise<DeliveredResponse>,
): Promise<{ delivered: number; failed: number }> {
  let delivered = 0;
  let failed = 0;
  for (;;) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) return { delivered, failed };
    const response = await handler(
      { Records: messages.map((m) => toLambdaRecord(m, queueName)) },
      aLambdaContext(queueName),
    );
    const failedIds = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    const done = messages.filter((m) => !failedIds.has(m.MessageId!));
    if (done.length > 0)
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    delivered += messages.length;
    failed += failedIds.size;
  }
}

/** Sets the AWS environment to the local endpoints and resolves `*.localhost` to loopback; returns the undo. */
function pointAwsEnvironment(endpoints: { readonly dynamodb: string; readonly sqs: string }): () => void {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
    AWS_ENDPOINT_URL_SQS: endpoints.sqs,
  });
  const restoreDns = interceptLocalhostDns();
  return () => {
    restoreDns();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  };
}
