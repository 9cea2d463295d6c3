import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import type { CapacityAcquired, RunCapacityDeps } from '../shared/capacity/run-capacity.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { describeError } from '../shared/errors/errors.ts';
import { type IngestOutcome, planNotifiedKeys, planScheduledRun } from '../shared/plan/plan-ingest.ts';
import type { ResumedRun } from '../shared/plan/scheduled-run.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { deployedAdapters } from './config/adapters.ts';
import type { DepsProvider } from './config/deps-provider.ts';
import { excerptOf, validateMessage } from './messages/parse-message.ts';
import { type ScheduledRunEvent, scheduledRunEventSchema } from './messages/scheduled-run.ts';
import { createObservability, type Observability } from './observability.ts';
import { type IngestBatch, readIngestBatch } from './plan-ingest-batch.ts';
import { logCapacity, reportPlanned } from './plan-report.ts';
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
  const observability = { ...createObservability('plan'), ...options };
  const steps = new PlanSteps(observability, options.now ?? (() => new Date()));
  return sqsRecordHandler<PlanHandlerDeps, IngestBatch, ScheduledRunEvent, ScheduledRunResult>(
    deps,
    observability,
    (d, record, _context, batch) => steps.handleRecord(d, record, batch),
    {
      readBatch: (d, records) => readIngestBatch(observability.logger, d, records),
      otherEvent: (d, event) =>
        steps.planScheduled(
          d,
          validateMessage(event, scheduledRunEventSchema, 'plan event (not SQS, so a scheduled run)'),
        ),
    },
  );
}

/**
 * The steps of one ingest message, with their only state explicit: where they report
 * and the clock. A batch's shared plans live in its `IngestBatch`, not here.
 */
class PlanSteps {
  constructor(
    private readonly observability: Observability,
    private readonly now: () => Date,
  ) {}

  /** An unreadable message fails; a scheduled run plans alone; a notification awaits its pipelines' plans. */
  async handleRecord(d: PlanHandlerDeps, record: SQSRecord, batch: IngestBatch): Promise<void> {
    const { logger } = this.observability;
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
      await this.planScheduled(d, entry.scheduled).catch((error: unknown) => {
        logger.error('scheduled run failed to plan; the message comes back after its backoff', {
          pipeline: entry.scheduled.pipeline,
          scheduledTime: entry.scheduled.scheduledTime,
          error: describeError(error),
        });
        throw error;
      });
      return;
    }
    await Promise.all([...entry.pipelines].map((pipeline) => this.planPipeline(d, batch, pipeline)));
  }

  /** The pipeline's one plan for this batch: started by the first message naming it, shared by the rest. */
  planPipeline(d: PlanHandlerDeps, batch: IngestBatch, pipeline: string): Promise<IngestOutcome> {
    const started = batch.plans.get(pipeline);
    if (started !== undefined) return started;
    const pending = this.planNotified(d, batch, pipeline);
    batch.plans.set(pipeline, pending);
    return pending;
  }

  private async planNotified(
    d: PlanHandlerDeps,
    batch: IngestBatch,
    pipeline: string,
  ): Promise<IngestOutcome> {
    const { logger } = this.observability;
    const request = batch.keys.of(pipeline);
    const config = d.pipelines.get(pipeline)!;
    let outcome: IngestOutcome;
    try {
      outcome = await planNotifiedKeys(d, config, request, this.now);
    } catch (error) {
      logger.error('planning failed; the messages naming these keys will be redelivered', {
        pipeline,
        keys: request.keys,
        removedKeys: request.removedKeys,
        error: describeError(error),
      });
      throw error;
    }
    if ('planned' in outcome) reportPlanned(this.observability, config, 's3', outcome.planned);
    else
      logger.info('deleted keys exist again (uploaded since): nothing to plan', {
        pipeline,
        removedKeys: request.removedKeys,
      });
    return outcome;
  }

  /** Plans a scheduled run, or takes up the run an earlier attempt of the same tick recorded. */
  async planScheduled(d: PlanHandlerDeps, event: ScheduledRunEvent): Promise<ScheduledRunResult> {
    const outcome = await planScheduledRun(d, d.pipelines, event, this.now);
    const config = d.pipelines.get(event.pipeline)!;
    if ('resumed' in outcome) return this.reportResumed(config, outcome.resumed, outcome.capacity);
    const result = outcome.planned;
    reportPlanned(this.observability, config, 'schedule', result);
    return {
      runId: result.run.runId,
      pipeline: config.name,
      inputs: result.run.inputs.length,
      units: result.units.length,
    };
  }

  private reportResumed(
    config: PipelineConfig,
    { run, resent, finalizeRequested }: ResumedRun,
    capacity: CapacityAcquired | undefined,
  ): ScheduledRunResult {
    if (capacity) logCapacity(this.observability, run.runId, capacity);
    this.observability.logger.info(
      'scheduled run was recorded by an earlier attempt; taken up, not planned again',
      {
        runId: run.runId,
        pipeline: config.name,
        status: run.status,
        resent,
        finalizeRequested,
      },
    );
    return {
      runId: run.runId,
      pipeline: config.name,
      inputs: run.inputs.length,
      units: run.totalUnits,
      resumed: true,
    };
  }
}

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createPlanHandler(deployedAdapters);
