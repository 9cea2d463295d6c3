import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSRecord } from 'aws-lambda';
import type { PipelineEndpoints } from '../shared/adapters/aws/pipeline-endpoints.ts';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import type { TokenCounter } from '../shared/embedding/token-counter.ts';
import { describeError } from '../shared/errors/errors.ts';
import type { ChunkIndex } from '../shared/ports/chunk-index.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { processUnit } from '../shared/work/process-unit.ts';
import { deployedAdapters } from './config/adapters.ts';
import type { DepsProvider } from './config/deps-provider.ts';
import { excerptOf, InvalidMessage } from './messages/parse-message.ts';
import { parseWorkUnitMessage } from './messages/work-unit-message.ts';
import { createObservability, type Observability } from './observability.ts';
import { receiveCountOf } from './postpone-failed.ts';
import { sqsRecordHandler } from './sqs-record-handler.ts';

export interface WorkHandlerDeps {
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  readonly tokenCounter: TokenCounter;
  /** Without it every chunk is embedded (no incremental runs). */
  readonly chunkIndex?: ChunkIndex;
  endpointsFor(config: PipelineConfig): PipelineEndpoints;
  /** A failed unit comes back after its own backoff; without it, after the visibility timeout. */
  readonly redelivery?: Redelivery;
}

export type WorkHandlerOptions = Partial<Observability>;

/**
 * When a unit checkpoints: well before Lambda stops it, leaving a quarter of the function
 * timeout (at least 30 s) to finish the batches in flight, write the parts and hand the
 * rest of the unit on. Undefined without a Lambda context (tests, local runs).
 */
function checkpointTime(context: Context | undefined, config: PipelineConfig): number | undefined {
  if (typeof context?.getRemainingTimeInMillis !== 'function') return undefined;
  const margin = Math.max(30_000, config.workers.timeoutSeconds * 250);
  return Date.now() + context.getRemainingTimeInMillis() - margin;
}

/**
 * (primary adapter) work handler -> processUnit -> (S3, SageMaker, DynamoDB, SQS).
 *
 * Each message is one unit descriptor. A unit that fails throws, so its message is
 * reported in `batchItemFailures` and SQS redelivers it. A unit whose endpoint has no
 * capacity yet is sent back as a new delayed message and its delivery succeeds (see
 * processUnit's `deferred` outcome), so waiting for a cold endpoint never nears the DLQ. The delivery whose receive count
 * reaches the pipeline's `workers.maxReceiveCount` is the last one: processUnit then marks
 * the unit failed (and asks for finalize if that ends the run) before SQS dead-letters it.
 */
export function createWorkHandler(deps: DepsProvider<WorkHandlerDeps>, options: WorkHandlerOptions = {}) {
  const { logger, metrics } = { ...createObservability('work'), ...options };

  const handleRecord = async (d: WorkHandlerDeps, record: SQSRecord, context?: Context): Promise<void> => {
    let unit: WorkUnit;
    let config: PipelineConfig | undefined;
    try {
      unit = parseWorkUnitMessage(record.body);
      config = d.pipelines.get(unit.pipeline);
      if (config === undefined) {
        throw new InvalidMessage(
          `work unit message: pipeline ${unit.pipeline} is not configured (known: ${[...d.pipelines.keys()].join(', ')})`,
        );
      }
    } catch (error) {
      logger.error('work message is not a unit this deployment can run; it fails until dead-lettered', {
        messageId: record.messageId,
        reason: describeError(error),
        body: excerptOf(record.body),
      });
      throw error;
    }

    const receiveCount = receiveCountOf(record);
    const isLastAttempt = receiveCount >= config.workers.maxReceiveCount;
    const about = {
      runId: unit.runId,
      unitId: unit.unitId,
      pipeline: unit.pipeline,
      sourceKey: unit.sourceKey,
      byteStart: unit.byteStart,
      byteEnd: unit.byteEnd,
      receiveCount,
      maxReceiveCount: config.workers.maxReceiveCount,
    };
    try {
      const stopAfter = checkpointTime(context, config);
      const outcome = await processUnit({ ...d, ...d.endpointsFor(config) }, config, unit, {
        isLastAttempt,
        ...(stopAfter === undefined ? {} : { stopAfter }),
        // The memory Lambda bills, for the run's cost (absent outside Lambda: the config's).
        ...(context?.memoryLimitInMB ? { memoryMiB: Number(context.memoryLimitInMB) } : {}),
      });
      switch (outcome.status) {
        case 'succeeded':
          logger.info('unit succeeded', {
            ...about,
            counts: outcome.counts,
            finishedRun: outcome.finishedRun,
          });
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
    } catch (error) {
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
      throw error;
    }
  };

  return sqsRecordHandler(deps, { logger, metrics }, handleRecord);
}

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createWorkHandler(deployedAdapters);
