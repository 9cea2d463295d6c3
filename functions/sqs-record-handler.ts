import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import { type DepsProvider, resolveDeps } from './config/deps-provider.ts';
import type { Observability } from './observability.ts';
import { postponeFailed } from './postpone-failed.ts';

/** What a handler may add to the one-record-at-a-time default. */
export interface SqsRecordHandlerOptions<D, B, E, R> {
  /**
   * Reads the whole batch once, before any record is handled; each record's handler gets
   * what it returns (plan groups every object of a batch into one run per pipeline).
   */
  readonly readBatch?: (deps: D, records: readonly SQSRecord[]) => B;
  /**
   * An invocation that is not an SQS event (a person invoking the function by hand):
   * answered by this rather than read as a batch. Without it every event is read as SQS.
   */
  readonly otherEvent?: (deps: D, event: E, context: Context) => Promise<R>;
}

/**
 * A Lambda handler for an SQS queue, one record at a time: middy with Powertools'
 * logger context and metrics (cold start included), dependencies resolved on the first
 * invocation, and a record that throws reported in `batchItemFailures` so SQS delivers
 * only it again, after its own backoff when the dependencies have a `redelivery` (not after
 * the queue's visibility timeout). A batch where every record fails is reported the same
 * way, not thrown.
 */
export function sqsRecordHandler<
  D extends { readonly redelivery?: Redelivery },
  B = undefined,
  E = never,
  R = never,
>(
  deps: DepsProvider<D>,
  { logger, metrics }: Observability,
  handleRecord: (deps: D, record: SQSRecord, context: Context, batch: B) => Promise<void>,
  options: SqsRecordHandlerOptions<D, B, E, R> = {},
) {
  const { readBatch, otherEvent } = options;
  return middy<SQSEvent | E, SQSBatchResponse | R>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) => {
      const d = resolveDeps(deps, logger);
      if (otherEvent !== undefined && !isSqsEvent(event)) return otherEvent(d, event as E, context);
      const sqs = event as SQSEvent;
      const batch = (readBatch === undefined ? undefined : readBatch(d, sqs.Records)) as B;
      // A processor per invocation: no batch state shared between invocations.
      const response = await processPartialResponse(
        sqs,
        (record: SQSRecord) => handleRecord(d, record, context, batch),
        new BatchProcessor(EventType.SQS),
        {
          context,
          throwOnFullBatchFailure: false,
        },
      );
      await postponeFailed(d.redelivery, sqs, response, logger);
      return response;
    });
}

function isSqsEvent(event: unknown): event is SQSEvent {
  return (
    typeof event === 'object' && event !== null && Array.isArray((event as { Records?: unknown }).Records)
  );
}
