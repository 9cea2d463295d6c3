import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';

/**
 * Delivery number of an SQS message (1 on the first receive). Lambda always sets it;
 * a missing or unreadable value counts as a first delivery, never as the last one.
 */
export function receiveCountOf(record: {
  readonly attributes?: { ApproximateReceiveCount?: string };
}): number {
  const count = Number(record.attributes?.ApproximateReceiveCount);
  return Number.isFinite(count) && count >= 1 ? count : 1;
}

/**
 * The records a handler reported in `batchItemFailures` come back after their own backoff
 * (redelivery), not after the queue's whole visibility timeout. Without a redelivery (local
 * wiring, handler tests) nothing changes. Never throws: a message that could not be
 * rescheduled simply returns after the visibility timeout, which is logged.
 */
export async function postponeFailed(
  redelivery: Redelivery | undefined,
  event: SQSEvent,
  response: SQSBatchResponse,
  logger: Logger,
): Promise<void> {
  if (redelivery === undefined || response.batchItemFailures.length === 0) return;
  const failedIds = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
  const records = event.Records.filter((record) => failedIds.has(record.messageId));
  const failed = records.map((record) => ({
    queueArn: record.eventSourceARN,
    receiptHandle: record.receiptHandle,
    receiveCount: receiveCountOf(record),
  }));
  try {
    const { postponed, errors } = await redelivery.postpone(failed);
    const retries = failed.map((f, i) => ({
      messageId: records[i]!.messageId,
      receiveCount: f.receiveCount,
      retryInSeconds: redelivery.delayFor(f.receiveCount),
    }));
    if (errors.length === 0)
      logger.info('failed messages come back after their backoff', { postponed, retries });
    else
      logger.warn(
        'some failed messages could not be rescheduled; they come back after the visibility timeout',
        {
          postponed,
          errors,
          retries,
        },
      );
  } catch (error) {
    logger.warn('failed messages could not be rescheduled; they come back after the visibility timeout', {
      error: (error as Error).message,
    });
  }
}
