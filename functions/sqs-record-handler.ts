import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import { type DepsProvider, resolveDeps } from './config/deps-provider.ts';
import type { Observability } from './observability.ts';
import { postponeFailed } from './postpone-failed.ts';

/**
 * A Lambda handler for an SQS queue, one record at a time: middy with Powertools'
 * logger context and metrics (cold start included), dependencies resolved on the first
 * invocation, and a record that throws reported in `batchItemFailures` so SQS delivers
 * only it again, after its own backoff when the dependencies have a `redelivery` (not after
 * the queue's visibility timeout). A batch where every record fails is reported the same
 * way, not thrown.
 */
export function sqsRecordHandler<D extends { readonly redelivery?: Redelivery }>(
  deps: DepsProvider<D>,
  { logger, metrics }: Observability,
  handleRecord: (deps: D, record: SQSRecord, context: Context) => Promise<void>,
) {
  return middy<SQSEvent, SQSBatchResponse>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) => {
      const d = resolveDeps(deps, logger);
      // A processor per invocation: no batch state shared between invocations.
      const response = await processPartialResponse(
        event,
        (record: SQSRecord) => handleRecord(d, record, context),
        new BatchProcessor(EventType.SQS),
        {
          context,
          throwOnFullBatchFailure: false,
        },
      );
      await postponeFailed(d.redelivery, event, response, logger);
      return response;
    });
}
