import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import type { CapacityAcquired, RunCapacityDeps } from '../shared/capacity/run-capacity.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { describeError } from '../shared/errors/errors.ts';
import { tracksSources } from '../shared/incremental/deleted-sources.ts';
import {
  IngestedKeys,
  type IngestOutcome,
  planNotifiedKeys,
  planScheduledRun,
  routeNotifiedObject,
} from '../shared/plan/plan-ingest.ts';
import type { PlanRunResult } from '../shared/plan/plan-run.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { deployedAdapters } from './config/adapters.ts';
import type { DepsProvider } from './config/deps-provider.ts';
import { excerptOf, validateMessage } from './messages/parse-message.ts';
import { parseS3Notification } from './messages/s3-notification.ts';
import {
  isScheduledRunMessage,
  type ScheduledRunEvent,
  scheduledRunEventSchema,
} from './messages/scheduled-run.ts';
import { createObservability, type Observability } from './observability.ts';
import { sqsRecordHandler } from './sqs-record-handler.ts';

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

/** One SQS batch read whole: each message's entry, the keys by pipeline, and each pipeline's plan once started. */
interface IngestBatch {
  readonly entries: ReadonlyMap<string, IngestEntry>;
  readonly keys: IngestedKeys;
  /**
   * Started by the first message that needs it and awaited by all of them, so a
   * pipeline's failure fails exactly the messages that named it.
   */
  readonly plans: Map<string, Promise<IngestOutcome>>;
}

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

  const reportPlanned = (config: PipelineConfig, trigger: 's3' | 'schedule', result: PlanRunResult): void => {
    logger.info('run planned', {
      runId: result.run.runId,
      pipeline: config.name,
      trigger,
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

  /** Reads every message first, so that all objects of a pipeline in this batch make one run. */
  const readIngestBatch = (d: PlanHandlerDeps, records: readonly SQSRecord[]): IngestBatch => {
    const entries = new Map<string, IngestEntry>();
    const keys = new IngestedKeys();
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
        const route = routeNotifiedObject(d, object);
        if ('skip' in route) {
          logger.warn(`skipped ${object.key}: ${route.skip}`, {
            messageId: record.messageId,
            bucket: object.bucket,
            key: object.key,
            eventName: object.eventName,
          });
          continue;
        }
        pipelines.add(route.pipeline);
        keys.add(route.pipeline, object.key, route.removal);
      }
    }
    return { entries, keys, plans: new Map() };
  };

  const planPipeline = (d: PlanHandlerDeps, batch: IngestBatch, pipeline: string): Promise<IngestOutcome> => {
    const started = batch.plans.get(pipeline);
    if (started !== undefined) return started;
    const request = batch.keys.of(pipeline);
    const config = d.pipelines.get(pipeline)!;
    const pending = planNotifiedKeys(d, config, request, now).then(
      (outcome) => {
        if ('planned' in outcome) reportPlanned(config, 's3', outcome.planned);
        else
          logger.info('deleted keys exist again (uploaded since): nothing to plan', {
            pipeline,
            removedKeys: request.removedKeys,
          });
        return outcome;
      },
      (error: unknown) => {
        logger.error('planning failed; the messages naming these keys will be redelivered', {
          pipeline,
          keys: request.keys,
          removedKeys: request.removedKeys,
          error: describeError(error),
        });
        throw error;
      },
    );
    batch.plans.set(pipeline, pending);
    return pending;
  };

  const handleRecord = async (
    d: PlanHandlerDeps,
    record: SQSRecord,
    _context: Context,
    batch: IngestBatch,
  ): Promise<void> => {
    const entry = batch.entries.get(record.messageId)!;
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
    await Promise.all([...entry.pipelines].map((pipeline) => planPipeline(d, batch, pipeline)));
  };

  const planScheduled = async (d: PlanHandlerDeps, event: ScheduledRunEvent): Promise<ScheduledRunResult> => {
    const outcome = await planScheduledRun(d, d.pipelines, event, now);
    const config = d.pipelines.get(event.pipeline)!;
    if ('resumed' in outcome) {
      const { run, resent, finalizeRequested } = outcome.resumed;
      if (outcome.capacity) logCapacity(run.runId, outcome.capacity);
      logger.info('scheduled run was recorded by an earlier attempt; taken up, not planned again', {
        runId: run.runId,
        pipeline: config.name,
        status: run.status,
        resent,
        finalizeRequested,
      });
      return {
        runId: run.runId,
        pipeline: config.name,
        inputs: run.inputs.length,
        units: run.totalUnits,
        resumed: true,
      };
    }
    const result = outcome.planned;
    reportPlanned(config, 'schedule', result);
    return {
      runId: result.run.runId,
      pipeline: config.name,
      inputs: result.run.inputs.length,
      units: result.units.length,
    };
  };

  return sqsRecordHandler<PlanHandlerDeps, IngestBatch, ScheduledRunEvent, ScheduledRunResult>(
    deps,
    { logger, metrics },
    handleRecord,
    {
      readBatch: readIngestBatch,
      otherEvent: (d, event) =>
        planScheduled(
          d,
          validateMessage(event, scheduledRunEventSchema, 'plan event (not SQS, so a scheduled run)'),
        ),
    },
  );
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

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createPlanHandler(deployedAdapters);
