import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import { describeError } from '../shared/errors/errors.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { type DeadLetteredUnit, deadLetterUnit } from '../shared/work/dead-letter-unit.ts';
import { deployedAdapters } from './config/adapters.ts';
import type { DepsProvider } from './config/deps-provider.ts';
import { InvalidMessage, parseMessage } from './messages/parse-message.ts';
import { runIdSchema } from './messages/run-id.ts';
import { createObservability, type Observability } from './observability.ts';
import { sqsRecordHandler } from './sqs-record-handler.ts';

export interface DeadLetterHandlerDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  /** Where finalize is asked for when a dead letter ends its run. */
  readonly queue: WorkQueue;
  /** A failed message comes back after its own backoff; without it, after the visibility timeout. */
  readonly redelivery?: Redelivery;
}

export type DeadLetterHandlerOptions = Partial<Observability>;

/**
 * Only what names the unit: any work unit descriptor, of this planner version or another,
 * is accepted (extra fields are ignored), since nothing else of it is needed here.
 */
const deadLetteredUnitSchema = z.object({
  runId: runIdSchema,
  unitId: z.string().min(1),
  pipeline: z.string().min(1),
});

/**
 * (primary adapter) dead-letter handler -> deadLetterUnit -> (DynamoDB, S3, SQS finalize).
 *
 * Consumes the work queue's dead-letter queue. Each message is a unit descriptor whose
 * deliveries ran out. When the last delivery failed with an error, the worker already
 * marked the unit failed and this changes nothing; when the worker died on it (timeout,
 * out of memory), this is what marks the unit failed and lets the run finish (`failed`,
 * with the unit and its error listed). Consuming the message deletes it from the DLQ: the
 * runs table keeps the unit and its descriptor, and a redrive (docs/runbook.md) sends the
 * failed units again from there.
 *
 * A message that is not a unit descriptor cannot be acted on: it is logged whole (the
 * record of what was lost) and counted, then dropped, rather than retried for 14 days.
 */
export function createDeadLetterHandler(
  deps: DepsProvider<DeadLetterHandlerDeps>,
  options: DeadLetterHandlerOptions = {},
) {
  const observability = { ...createObservability('dead-letter'), ...options };
  const { logger, metrics } = observability;

  const handleRecord = async (d: DeadLetterHandlerDeps, record: SQSRecord): Promise<void> => {
    let unit: DeadLetteredUnit;
    try {
      unit = parseMessage(record.body, deadLetteredUnitSchema, 'dead-lettered work unit');
    } catch (error) {
      if (!(error instanceof InvalidMessage)) throw error;
      logger.error('dead letter is not a work unit; nothing to mark failed, dropped', {
        messageId: record.messageId,
        reason: describeError(error),
        body: record.body,
      });
      metrics.addMetric('DeadLettersUnreadable', MetricUnit.Count, 1);
      return;
    }
    const about = { runId: unit.runId, unitId: unit.unitId, pipeline: unit.pipeline };
    const outcome = await deadLetterUnit(d, unit);
    switch (outcome.status) {
      case 'failed':
        logger.error('unit dead-lettered after its worker stopped on the last delivery: marked failed', {
          ...about,
          finishedRun: outcome.finishedRun,
        });
        metrics.addMetric('UnitsDeadLettered', MetricUnit.Count, 1);
        break;
      case 'already-terminal':
        logger.info('dead-lettered unit was already terminal; nothing changed', {
          ...about,
          unitStatus: outcome.unitStatus,
        });
        break;
      case 'unknown':
        logger.warn('dead-lettered unit is not in the runs table (a deleted run); dropped', about);
        break;
    }
  };

  return sqsRecordHandler(deps, { logger, metrics }, handleRecord);
}

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createDeadLetterHandler(deployedAdapters);
