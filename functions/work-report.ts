import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import { describeError } from '../shared/errors/errors.ts';
import type { UnitOutcome } from '../shared/work/process-unit.ts';
import type { Observability } from './observability.ts';

/** The fields every log line about one delivery of a unit carries. */
// A type, not an interface: the logger takes it as a record of attributes.
export type UnitDelivery = {
  readonly runId: string;
  readonly unitId: string;
  readonly pipeline: string;
  readonly sourceKey: string;
  readonly byteStart: number;
  readonly byteEnd: number;
  readonly receiveCount: number;
  readonly maxReceiveCount: number;
};

export function unitDeliveryOf(unit: WorkUnit, config: PipelineConfig, receiveCount: number): UnitDelivery {
  return {
    runId: unit.runId,
    unitId: unit.unitId,
    pipeline: unit.pipeline,
    sourceKey: unit.sourceKey,
    byteStart: unit.byteStart,
    byteEnd: unit.byteEnd,
    receiveCount,
    maxReceiveCount: config.workers.maxReceiveCount,
  };
}

/** One log line and the metrics for what processUnit did with a delivery. */
export function reportUnitOutcome(
  { logger, metrics }: Observability,
  about: UnitDelivery,
  outcome: UnitOutcome,
): void {
  switch (outcome.status) {
    case 'succeeded':
      logger.info('unit succeeded', { ...about, counts: outcome.counts, finishedRun: outcome.finishedRun });
      metrics.addMetric('UnitsSucceeded', MetricUnit.Count, 1);
      metrics.addMetric('RecordsProcessed', MetricUnit.Count, outcome.counts.records);
      metrics.addMetric('RecordsRejected', MetricUnit.Count, outcome.counts.rejected);
      metrics.addMetric('EndpointThrottled', MetricUnit.Count, outcome.counts.throttled);
      metrics.addMetric('ChunksSkippedUnchanged', MetricUnit.Count, outcome.counts.skippedUnchanged);
      break;
    case 'duplicate':
      logger.info('unit already finished by another delivery; nothing to do', about);
      break;
    case 'unknown':
      logger.warn('unit is not in the runs table (stale message of a deleted run); dropped', about);
      break;
    case 'deferred':
      // Sent back as a new delayed message: this one is deleted, no receive count spent.
      logger.info('endpoint has no capacity yet; unit sent back to wait for it', {
        ...about,
        retryInSeconds: outcome.delaySeconds,
        waitingSince: new Date(outcome.warmingSince).toISOString(),
      });
      metrics.addMetric('UnitsWaitingForCapacity', MetricUnit.Count, 1);
      break;
    case 'failed':
      logger.error('unit failed for good: marked failed, its message is deleted', {
        ...about,
        error: outcome.reason,
      });
      metrics.addMetric('UnitsFailed', MetricUnit.Count, 1);
      break;
  }
}

/** A thrown attempt: SQS redelivers it, or, on the last delivery, the unit is failed and dead-lettered. */
export function reportUnitAttemptFailed(
  { logger, metrics }: Observability,
  about: UnitDelivery,
  isLastAttempt: boolean,
  error: unknown,
): void {
  metrics.addMetric('UnitAttemptsFailed', MetricUnit.Count, 1);
  if (isLastAttempt) {
    metrics.addMetric('UnitsFailed', MetricUnit.Count, 1);
    logger.error('unit failed on its last delivery: marked failed, the message goes to the DLQ', {
      ...about,
      error: describeError(error),
    });
  } else {
    logger.warn('unit attempt failed; SQS will redeliver it', { ...about, error: describeError(error) });
  }
}
