import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import { pipelineCapacityOf } from '../shared/capacity/names.ts';
import {
  acquireRunCapacity,
  type CapacityAcquired,
  type RunCapacityDeps,
  runWorkOf,
} from '../shared/capacity/run-capacity.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import type { RunState } from '../shared/domain/types.ts';
import { ConfigError, describeError } from '../shared/errors/errors.ts';
import { tracksSources } from '../shared/incremental/deleted-sources.ts';
import { newRunId, pipelineOfIncomingKey } from '../shared/output/keys.ts';
import { type PlanRunResult, planRun } from '../shared/plan/plan-run.ts';
import { resumeRun, scheduledRunId } from '../shared/plan/scheduled-run.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { mapWithConcurrency } from '../shared/work/concurrency.ts';
import { deployedAdapters } from './config/adapters.ts';
import { type DepsProvider, resolveDeps } from './config/deps-provider.ts';
import { excerptOf, validateMessage } from './messages/parse-message.ts';
import { parseS3Notification } from './messages/s3-notification.ts';
import {
  isScheduledRunMessage,
  type ScheduledRunEvent,
  scheduledRunEventSchema,
} from './messages/scheduled-run.ts';
import { createObservability, type Observability } from './observability.ts';
import { postponeFailed } from './postpone-failed.ts';

export interface PlanHandlerDeps {
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  /** The bucket the object store reads; notifications about any other bucket are skipped. */
  readonly bucket: string;
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  /** A failed ingest message comes back after its own backoff; without it, after the visibility timeout. */
  readonly redelivery?: Redelivery;
  /** Run-scoped endpoint capacity: each run takes a lease and raises the copies (docs/capacity.md). */
  readonly capacity?: RunCapacityDeps;
}

export interface PlanHandlerOptions extends Partial<Observability> {
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/** Plan is invoked by the ingest queue (S3 notifications and scheduled runs) and, by hand, with a scheduled run. */
export type PlanEvent = SQSEvent | ScheduledRunEvent;

/** What a scheduled invocation returns (Scheduler ignores it; it helps a person invoking plan by hand). */
export interface ScheduledRunResult {
  readonly runId: string;
  readonly pipeline: string;
  readonly inputs: number;
  readonly units: number;
  /** True when an earlier attempt of the same tick had recorded the run, which was taken up. */
  readonly resumed?: boolean;
}

export type PlanResult = SQSBatchResponse | ScheduledRunResult;

/** The parts of one ingest message: the pipelines it asks to plan, a scheduled run, or why it cannot be read. */
type IngestEntry =
  | { readonly pipelines: ReadonlySet<string> }
  | { readonly scheduled: ScheduledRunEvent }
  | { readonly invalid: unknown };

/**
 * (primary adapter) plan handler -> planRun -> (S3, DynamoDB, SQS).
 *
 * From the ingest queue: every object of one SQS batch is grouped by pipeline
 * (`incoming/<pipeline>/...`) and each pipeline gets one run over all of its objects.
 * A message fails (and is redelivered) when its pipeline's plan fails; messages of other
 * pipelines still succeed. A deletion (`ObjectRemoved:*`) joins its pipeline's run as a
 * key to look up, not read: gone, it is a deleted source whose documents finalize counts
 * as removed (pipelines that keep source manifests: incremental embedding). S3's test
 * event, other buckets, keys outside a configured pipeline, deletions for other pipelines
 * and other events are logged and skipped: no retry could plan them.
 *
 * From EventBridge Scheduler, through the same ingest queue:
 * `{"kind":"scheduled-run","pipeline","prefix","scheduledTime"}` plans one run over every
 * object under the prefix, with a run id derived from the tick (`scheduledRunId`), so a
 * redelivery takes up the run an earlier attempt recorded rather than planning a second
 * one; a failure fails the message, which comes back after its backoff and is finally
 * dead-lettered (ingest DLQ, alarmed) like a drop that cannot be planned. The same event
 * invoked directly (by hand) plans the run and throws on failure.
 */
export function createPlanHandler(deps: DepsProvider<PlanHandlerDeps>, options: PlanHandlerOptions = {}) {
  const { logger, metrics } = { ...createObservability('plan'), ...options };
  const now = options.now ?? (() => new Date());

  const plan = async (
    d: PlanHandlerDeps,
    config: PipelineConfig,
    request: {
      trigger: 's3' | 'schedule';
      keys?: string[];
      removedKeys?: string[];
      prefix?: string;
      runId?: string;
    },
  ): Promise<PlanRunResult> => {
    const started = now();
    const result = await planRun(d, config, {
      ...request,
      runId: request.runId ?? newRunId(started),
      now: started,
    });
    logger.info('run planned', {
      runId: result.run.runId,
      pipeline: config.name,
      trigger: request.trigger,
      inputs: result.run.inputs.length,
      units: result.units.length,
      estCost: result.units.reduce((sum, unit) => sum + unit.estCost, 0),
    });
    if (result.missing.length > 0) {
      const missing = {
        runId: result.run.runId,
        missing: result.missing.slice(0, 100),
        count: result.missing.length,
      };
      if (tracksSources(config))
        logger.info('sources gone when planned; their documents count as removed at finalize', missing);
      else logger.warn('inputs deleted before planning; nothing to read', missing);
    }
    if (result.capacity) logCapacity(result.run.runId, result.capacity);
    metrics.addMetric('RunsPlanned', MetricUnit.Count, 1);
    metrics.addMetric('UnitsPlanned', MetricUnit.Count, result.units.length);
    return result;
  };

  /** One line for the run's lease; a raise that failed or waits is a warning, and the sweeper's to finish. */
  const logCapacity = (runId: string, acquired: CapacityAcquired): void => {
    const fields = {
      runId,
      component: acquired.lease.component,
      copies: acquired.lease.copies,
      takenAt: acquired.lease.takenAt,
      desiredCopies: acquired.before?.desiredCopies,
      currentCopies: acquired.before?.currentCopies,
      raisedTo: acquired.raisedTo,
    };
    if (acquired.error !== undefined)
      logger.warn('capacity lease taken, but copies could not be raised; the capacity sweeper retries', {
        ...fields,
        error: acquired.error,
      });
    else if (acquired.deferred !== undefined)
      logger.info('capacity lease taken; the component is busy, the capacity sweeper raises the copies', {
        ...fields,
        reason: acquired.deferred,
      });
    else logger.info('capacity lease taken', fields);
  };

  /**
   * A scheduled run taken up after an earlier attempt recorded it: that attempt may have
   * died before taking the run's lease (taking it again returns the one it took).
   */
  const resumeCapacity = async (d: PlanHandlerDeps, config: PipelineConfig, run: RunState): Promise<void> => {
    const capacity = pipelineCapacityOf(config);
    if (!capacity || !d.capacity || run.status !== 'running' || run.totalUnits === 0) return;
    const units = await d.runs.listUnits(run.runId);
    const estimated = units.reduce((sum, unit) => sum + unit.estCost, 0);
    logCapacity(
      run.runId,
      await acquireRunCapacity(d.capacity, capacity, run.runId, runWorkOf(config, estimated), now()),
    );
  };

  /** Reads every message first, so that all objects of a pipeline in this batch make one run. */
  const readIngestBatch = (d: PlanHandlerDeps, records: readonly SQSRecord[]) => {
    const entries = new Map<string, IngestEntry>();
    const keysByPipeline = new Map<string, Set<string>>();
    const removedByPipeline = new Map<string, Set<string>>();
    for (const record of records) {
      const scheduled = scheduledRunOf(record.body);
      if (scheduled !== undefined) {
        entries.set(record.messageId, scheduled);
        continue;
      }
      let notification: ReturnType<typeof parseS3Notification>;
      try {
        notification = parseS3Notification(record.body);
      } catch (error) {
        entries.set(record.messageId, { invalid: error });
        continue;
      }
      const pipelines = new Set<string>();
      entries.set(record.messageId, { pipelines });
      if (notification.kind === 'test-event') {
        logger.info('S3 test event: notifications are set up; nothing to plan', {
          messageId: record.messageId,
        });
        continue;
      }
      for (const object of notification.objects) {
        const skip = (reason: string) =>
          logger.warn(`skipped ${object.key}: ${reason}`, {
            messageId: record.messageId,
            bucket: object.bucket,
            key: object.key,
            eventName: object.eventName,
          });
        const removal = object.eventName.startsWith('ObjectRemoved:');
        if (!removal && !object.eventName.startsWith('ObjectCreated:')) {
          skip(`${object.eventName} is neither an object creation nor a deletion`);
          continue;
        }
        if (object.bucket !== d.bucket) {
          skip(`bucket ${object.bucket} is not the Sluice bucket ${d.bucket}`);
          continue;
        }
        const pipeline = pipelineOfIncomingKey(object.key);
        if (pipeline === undefined || !d.pipelines.has(pipeline)) {
          skip(
            pipeline === undefined
              ? 'not under incoming/<pipeline>/'
              : `pipeline ${pipeline} is not configured (known: ${[...d.pipelines.keys()].join(', ')})`,
          );
          continue;
        }
        if (removal && !tracksSources(d.pipelines.get(pipeline))) {
          skip(
            `pipeline ${pipeline} keeps no source manifests (it is not incremental embedding): nothing to remove`,
          );
          continue;
        }
        pipelines.add(pipeline);
        const byPipeline = removal ? removedByPipeline : keysByPipeline;
        const keys = byPipeline.get(pipeline) ?? new Set<string>();
        byPipeline.set(pipeline, keys.add(object.key));
      }
    }
    return { entries, keysByPipeline, removedByPipeline };
  };

  const planNotifications = async (
    d: PlanHandlerDeps,
    event: SQSEvent,
    context: Context,
  ): Promise<SQSBatchResponse> => {
    const { entries, keysByPipeline, removedByPipeline } = readIngestBatch(d, event.Records);
    // Started by the first message that needs it and awaited by all of them, so a
    // pipeline's failure fails exactly the messages that named it.
    const plans = new Map<string, Promise<PlanRunResult | undefined>>();
    /** Deletion notices alone, for keys that all exist again (uploaded since): no run to plan. */
    const allBack = async (removedKeys: readonly string[]): Promise<boolean> => {
      const heads = await mapWithConcurrency(removedKeys, 16, (key) => d.store.head(key));
      return heads.every((head) => head !== undefined);
    };
    const planPipeline = (pipeline: string): Promise<PlanRunResult | undefined> => {
      let pending = plans.get(pipeline);
      if (pending === undefined) {
        const keys = [...(keysByPipeline.get(pipeline) ?? [])];
        const removedKeys = [...(removedByPipeline.get(pipeline) ?? [])];
        pending = (async () => {
          if (keys.length === 0 && (await allBack(removedKeys))) {
            logger.info('deleted keys exist again (uploaded since): nothing to plan', {
              pipeline,
              removedKeys,
            });
            return undefined;
          }
          return plan(d, d.pipelines.get(pipeline)!, { trigger: 's3', keys, removedKeys });
        })().catch((error: unknown) => {
          logger.error('planning failed; the messages naming these keys will be redelivered', {
            pipeline,
            keys,
            removedKeys,
            error: describeError(error),
          });
          throw error;
        });
        plans.set(pipeline, pending);
      }
      return pending;
    };

    const handleRecord = async (record: SQSRecord): Promise<void> => {
      const entry = entries.get(record.messageId)!;
      if ('invalid' in entry) {
        logger.error('ingest message is not an S3 notification; it fails until dead-lettered', {
          messageId: record.messageId,
          reason: describeError(entry.invalid),
          body: excerptOf(record.body),
        });
        throw entry.invalid;
      }
      if ('scheduled' in entry) {
        await planScheduled(d, entry.scheduled).catch((error: unknown) => {
          logger.error('scheduled run failed to plan; the message comes back after its backoff', {
            pipeline: entry.scheduled.pipeline,
            scheduledTime: entry.scheduled.scheduledTime,
            error: describeError(error),
          });
          throw error;
        });
        return;
      }
      await Promise.all([...entry.pipelines].map(planPipeline));
    };

    // A processor per invocation: it holds the batch's state, and nothing is gained by sharing it.
    const response = await processPartialResponse(event, handleRecord, new BatchProcessor(EventType.SQS), {
      context,
      throwOnFullBatchFailure: false,
    });
    await postponeFailed(d.redelivery, event, response, logger);
    return response;
  };

  const planScheduled = async (d: PlanHandlerDeps, event: ScheduledRunEvent): Promise<ScheduledRunResult> => {
    const config = d.pipelines.get(event.pipeline);
    if (config === undefined) {
      throw new ConfigError(
        `scheduled run: pipeline ${event.pipeline} is not configured (known: ${[...d.pipelines.keys()].join(', ')})`,
      );
    }
    // One run per tick: a retry (a redelivered message, a second send by the scheduler)
    // finds the run an earlier attempt recorded and takes it up instead of planning another.
    const runId =
      event.scheduledTime === undefined
        ? undefined
        : scheduledRunId({ pipeline: config.name, prefix: event.prefix, scheduledTime: event.scheduledTime });
    const recorded = runId === undefined ? undefined : await d.runs.getRun(runId);
    if (recorded !== undefined) {
      await resumeCapacity(d, config, recorded);
      const resumed = await resumeRun(d, recorded);
      logger.info('scheduled run was recorded by an earlier attempt; taken up, not planned again', {
        runId: recorded.runId,
        pipeline: config.name,
        status: recorded.status,
        resent: resumed.resent,
        finalizeRequested: resumed.finalizeRequested,
      });
      return {
        runId: recorded.runId,
        pipeline: config.name,
        inputs: recorded.inputs.length,
        units: recorded.totalUnits,
        resumed: true,
      };
    }
    const result = await plan(d, config, {
      trigger: 'schedule',
      prefix: event.prefix,
      ...(runId === undefined ? {} : { runId }),
    });
    return {
      runId: result.run.runId,
      pipeline: config.name,
      inputs: result.run.inputs.length,
      units: result.units.length,
    };
  };

  return middy<PlanEvent, PlanResult>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) => {
      const d = resolveDeps(deps, logger);
      if (isSqsEvent(event)) return planNotifications(d, event, context);
      const scheduled = validateMessage(
        event,
        scheduledRunEventSchema,
        'plan event (not SQS, so a scheduled run)',
      );
      return planScheduled(d, scheduled);
    });
}

/**
 * A scheduled run sent through the ingest queue, or an InvalidMessage entry when the body
 * says `"kind":"scheduled-run"` but is not one; undefined for anything else (S3 notifications).
 */
function scheduledRunOf(body: string): IngestEntry | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isScheduledRunMessage(raw)) return undefined;
  try {
    return { scheduled: validateMessage(raw, scheduledRunEventSchema, 'scheduled run message') };
  } catch (error) {
    return { invalid: error };
  }
}

function isSqsEvent(event: unknown): event is SQSEvent {
  return (
    typeof event === 'object' && event !== null && Array.isArray((event as { Records?: unknown }).Records)
  );
}

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createPlanHandler(deployedAdapters);
