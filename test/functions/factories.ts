import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { vi } from 'vitest';
import { type AwsClients, createAdapters, createAwsClients } from '../../functions/config/adapters.ts';
import { type Environment, loadEnvironment } from '../../functions/config/environment.ts';
import {
  PipelineEndpointRegistry,
  sageMakerClientSettingsFor,
} from '../../shared/adapters/aws/pipeline-endpoints.ts';
import {
  type FailedDelivery,
  type Redelivery,
  redeliveryDelaySeconds,
} from '../../shared/adapters/aws/sqs-redelivery.ts';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { LocalSegmentStatsStore } from '../../shared/adapters/local/local-segment-stats-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { PipelineConfig, PipelineConfigInput } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { aRun, aUnit, someCounts } from '../support/run-fixtures.ts';

/** Reads one of the realistic samples in `events/`. */
export function eventSample<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../../events/${name}`, import.meta.url), 'utf8')) as T;
}

/** The bucket the samples in `events/` name. */
export const SAMPLE_BUCKET = 'sluice-data-123456789012-us-east-1';
export const WORK_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-work';
export const FINALIZE_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-finalize';

/** A pipeline config as a user writes it: only the name and endpoint are required. */
export function aPipeline(name: string, overrides: Partial<PipelineConfigInput> = {}): PipelineConfigInput {
  return {
    name,
    kind: 'embed',
    endpoint: { name: `sluice-${name}-embed`, dimension: 8, maxRetries: 1, timeoutMs: 5_000 },
    chunking: { maxTokens: 64, overlapTokens: 8 },
    ...overrides,
  };
}

/** The handlers' environment as infra sets it, for the given pipelines. */
export function anEnvironment(
  pipelines: readonly PipelineConfigInput[] = [aPipeline('docs')],
  overrides: Record<string, string | undefined> = {},
): Environment {
  return loadEnvironment({
    SLUICE_BUCKET: SAMPLE_BUCKET,
    SLUICE_RUNS_TABLE: 'sluice-runs',
    SLUICE_WORK_QUEUE_URL: WORK_QUEUE_URL,
    SLUICE_FINALIZE_QUEUE_URL: FINALIZE_QUEUE_URL,
    SLUICE_PIPELINES: JSON.stringify(pipelines),
    ...overrides,
  });
}

/** Real SDK clients (swapped by aws-sdk-client-mock in handler tests) with fake credentials. */
export function testClients(env: Environment): AwsClients {
  const base = { region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  return createAwsClients(env, { s3: base, sqs: base, dynamo: base, sagemaker: base });
}

/** The adapters a deployed handler builds, over mocked clients, with retries that do not wait. */
export function testAdapters(env: Environment = anEnvironment()) {
  // The control plane in memory: no handler test reaches SageMaker (its adapter has its own tests).
  return createAdapters(env, testClients(env), {
    sleep: async () => {},
    capacityControl: new LocalCapacityControl(),
  });
}

/**
 * A silent logger and a metrics object that publishes nothing, with spies to read what
 * the handler logged and counted.
 */
export function testObservability() {
  // Metrics reads this once, when constructed: stored metrics are then cleared, never printed.
  const before = process.env.POWERTOOLS_METRICS_DISABLED;
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const logger = new Logger({ serviceName: 'sluice', logLevel: 'SILENT' });
  const metrics = new Metrics({ namespace: 'SluiceTest', serviceName: 'sluice', logger });
  if (before === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
  else process.env.POWERTOOLS_METRICS_DISABLED = before;
  const addMetric = vi.spyOn(metrics, 'addMetric');
  const spies = {
    error: vi.spyOn(logger, 'error'),
    warn: vi.spyOn(logger, 'warn'),
    info: vi.spyOn(logger, 'info'),
  };
  return {
    logger,
    metrics,
    logs: spies,
    /** Sum of each metric the handler added, by name. */
    metricTotals(): Record<string, number> {
      const totals: Record<string, number> = {};
      for (const [name, , value] of addMetric.mock.calls) totals[name] = (totals[name] ?? 0) + value;
      return totals;
    },
    /** Every line logged at a level, with its attributes, as one string each (for `toContain`). */
    logged(level: keyof typeof spies): string[] {
      return spies[level].mock.calls.map((call) => call.map((part) => JSON.stringify(part)).join(' '));
    },
  };
}

export function aLambdaContext(functionName = 'SluiceStack-FunctionsPlanFunction-EXAMPLE'): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: '2026/03/01/[$LATEST]0123456789abcdef0123456789abcdef',
    getRemainingTimeInMillis: () => 300_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** An SQS record shaped like the samples, carrying `body`, with its own id and MD5. */
export function anSqsRecord(
  body: string,
  overrides: { receiveCount?: number; queue?: string } = {},
): SQSRecord {
  const template = eventSample<SQSEvent>('sqs-work-unit.json').Records[0]!;
  const queue = overrides.queue ?? 'sluice-work';
  return {
    ...template,
    messageId: randomUUID(),
    receiptHandle: `AQEB${randomUUID().replace(/-/g, '')}EXAMPLE==`,
    body,
    attributes: { ...template.attributes, ApproximateReceiveCount: String(overrides.receiveCount ?? 1) },
    md5OfBody: createHash('md5').update(body, 'utf8').digest('hex'),
    eventSourceARN: `arn:aws:sqs:us-east-1:123456789012:${queue}`,
  };
}

export const sqsEventOf = (...records: SQSRecord[]): SQSEvent => ({ Records: records });

/** The ingest message S3 sends for one new object; `encodedKey` as S3 writes it (`+` for spaces). */
export function s3NotificationBody(encodedKey: string, bucket = SAMPLE_BUCKET): string {
  const sample = eventSample<{
    Records: [{ s3: { bucket: { name: string; arn: string }; object: { key: string } } }];
  }>('s3-object-created.json');
  const record = sample.Records[0];
  record.s3.bucket.name = bucket;
  record.s3.bucket.arn = `arn:aws:s3:::${bucket}`;
  record.s3.object.key = encodedKey;
  return JSON.stringify(sample);
}

export function anIngestEvent(...encodedKeys: string[]): SQSEvent {
  return sqsEventOf(
    ...encodedKeys.map((key) => anSqsRecord(s3NotificationBody(key), { queue: 'sluice-ingest' })),
  );
}

export function aWorkEvent(units: readonly WorkUnit[], receiveCount = 1): SQSEvent {
  return sqsEventOf(...units.map((unit) => anSqsRecord(JSON.stringify(unit), { receiveCount })));
}

export function aFinalizeEvent(...runIds: string[]): SQSEvent {
  return sqsEventOf(
    ...runIds.map((runId) =>
      anSqsRecord(JSON.stringify({ kind: 'finalize', runId }), { queue: 'sluice-finalize' }),
    ),
  );
}

/** What the SDK hands back as a streaming GetObject `Body` in Node. */
export function streamingBody(text: string) {
  const bytes = Buffer.from(text);
  return Object.assign(Readable.from([bytes]), {
    transformToByteArray: async () => new Uint8Array(bytes),
    transformToString: async () => text,
    transformToWebStream: () => {
      throw new Error('not used by the adapters');
    },
  });
}

/** A blob `Body` as InvokeEndpoint returns it. */
export function blobBody(text: string) {
  return Object.assign(new TextEncoder().encode(text), {
    transformToString: () => text,
  });
}

/** A WorkQueue that keeps what it was asked to send, as the work and finalize queues would receive it. */
export class RecordingQueue implements WorkQueue {
  readonly sentUnits: WorkUnit[] = [];
  readonly finalizeRequests: string[] = [];
  readonly sentLater: { unit: WorkUnit; delaySeconds: number }[] = [];
  async sendUnits(units: readonly WorkUnit[]): Promise<void> {
    this.sentUnits.push(...units);
  }
  async requestFinalize(runId: string): Promise<void> {
    this.finalizeRequests.push(runId);
  }
  async sendUnitLater(unit: WorkUnit, delaySeconds: number): Promise<void> {
    this.sentLater.push({ unit, delaySeconds });
  }
  /** True when nothing was sent to either queue. */
  get isEmpty(): boolean {
    return this.sentUnits.length + this.finalizeRequests.length + this.sentLater.length === 0;
  }
}

/** The deployed backoff schedule, with the failed messages it was asked to hide kept instead of sent to SQS. */
export class RecordingRedelivery implements Redelivery {
  readonly postponed: FailedDelivery[] = [];
  delayFor(receiveCount: number): number {
    return redeliveryDelaySeconds(receiveCount);
  }
  async postpone(failed: readonly FailedDelivery[]) {
    this.postponed.push(...failed);
    return { postponed: failed.length, errors: [] as string[] };
  }
}

/**
 * The ports a deployed handler gets, as local adapters (each passes its port's contract
 * suite): runs, chunks, segment statistics and capacity leases in the local stores under a
 * fresh temporary folder, objects in memory, the control plane in memory, recording queues
 * and redelivery. Model calls go through the
 * deployed SageMaker adapters to `sagemakerUrl` (the local model server), with retries
 * that do not wait. `close()` removes the folder.
 */
export async function localPorts(env: Environment = anEnvironment(), sagemakerUrl?: string) {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-handler-'));
  const store = new MemoryObjectStore();
  const chunkIndex = new LocalChunkIndex(path.join(dir, 'chunks'));
  const registry = new PipelineEndpointRegistry(
    () =>
      new SageMakerRuntimeClient({
        ...(sagemakerUrl === undefined ? {} : { endpoint: sagemakerUrl }),
        region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        ...sageMakerClientSettingsFor(env.pipelines.values()),
      }),
    { sleep: async () => {}, store },
  );
  return {
    pipelines: env.pipelines,
    bucket: env.bucket,
    store,
    runs: new LocalRunStore(path.join(dir, 'runs')),
    chunkIndex,
    queue: new RecordingQueue(),
    redelivery: new RecordingRedelivery(),
    tokenCounter: new EstimatingTokenCounter(),
    endpointsFor: (config: PipelineConfig) => registry.endpointsFor(config),
    segmentStats: new LocalSegmentStatsStore(path.join(dir, 'segments')),
    capacity: {
      leases: new LocalCapacityLeases(path.join(dir, 'capacity')),
      control: new LocalCapacityControl(),
    },
    async close() {
      await chunkIndex.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The calls of the RunStore port (what a runs table sees). */
export const RUN_STORE_CALLS = [
  'createRun',
  'getRun',
  'listRuns',
  'listUnits',
  'startUnit',
  'completeUnit',
  'recordUnitError',
  'failUnit',
  'finishRun',
  'getSummary',
  'reopenFailedRun',
  'addContinuation',
  'getUnit',
] as const satisfies readonly (keyof RunStore)[];

/** The calls of the ObjectStore port (what the bucket sees). */
export const OBJECT_STORE_CALLS = [
  'head',
  'readRange',
  'put',
  'get',
  'list',
] as const satisfies readonly (keyof ObjectStore)[];

/**
 * Spies on the named methods of a port (each keeps doing what it did), so a test can say
 * which calls a handler made, in order.
 */
export function watchCalls<T extends object>(
  port: T,
  methods: readonly (keyof T & string)[],
): () => string[] {
  const spies = methods.map((name) => ({
    name,
    spy: vi.spyOn(port as Record<string, (...args: unknown[]) => unknown>, name),
  }));
  return () =>
    spies
      .flatMap(({ name, spy }) => spy.mock.invocationCallOrder.map((order) => ({ name, order })))
      .sort((a, b) => a.order - b.order)
      .map((call) => call.name);
}

/** A handler's calls to the run store and to the bucket, watched from now on. */
export function watchPorts(ports: { readonly runs: RunStore; readonly store: ObjectStore }) {
  return {
    runCalls: watchCalls(ports.runs, RUN_STORE_CALLS),
    storeCalls: watchCalls(ports.store, OBJECT_STORE_CALLS),
  };
}

/**
 * Stores the run of `unit` (running, `inputs` its source) with `totalUnits` units: `unit`
 * and others after it, the first of which are already ended as `othersEnded` says.
 */
export async function storeRunOf(
  runs: RunStore,
  unit: WorkUnit,
  options: { readonly totalUnits: number; readonly othersEnded?: readonly ('succeeded' | 'failed')[] },
): Promise<void> {
  const others = Array.from({ length: options.totalUnits - 1 }, (_, i) => aUnit(unit.runId, i + 1));
  const run = aRun({
    runId: unit.runId,
    startedAt: '2026-03-01T10:00:02.000Z',
    inputs: [unit.sourceKey],
    totalUnits: options.totalUnits,
  });
  await runs.createRun(run, [unit, ...others]);
  for (const [i, end] of (options.othersEnded ?? []).entries()) {
    const { unitId } = others[i]!;
    if (end === 'failed') await runs.failUnit(unit.runId, unitId, 'failed');
    else await runs.completeUnit(unit.runId, unitId, { counts: someCounts(), actualCost: 1, outputKeys: [] });
  }
}
