import type { Context, SQSRecord } from 'aws-lambda';
import type { PipelineEndpoints } from '../shared/adapters/aws/pipeline-endpoints.ts';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import type { RunCapacityDeps } from '../shared/capacity/run-capacity.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import type { TokenCounter } from '../shared/embedding/token-counter.ts';
import { describeError } from '../shared/errors/errors.ts';
import type { PromptCache } from '../shared/jobs/generate/prompt-cache.ts';
import type { RecommendationLists } from '../shared/jobs/recommend/recommendation-lists.ts';
import type { ChunkIndex } from '../shared/ports/chunk-index.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { processUnit, type UnitOutcome } from '../shared/work/process-unit.ts';
import { deployedAdapters } from './config/adapters.ts';
import type { DepsProvider } from './config/deps-provider.ts';
import { excerptOf, InvalidMessage } from './messages/parse-message.ts';
import { parseWorkUnitMessage } from './messages/work-unit-message.ts';
import { createObservability, type Observability } from './observability.ts';
import { receiveCountOf } from './postpone-failed.ts';
import { sqsRecordHandler } from './sqs-record-handler.ts';
import { reportUnitAttemptFailed, reportUnitOutcome, unitDeliveryOf } from './work-report.ts';

export interface WorkHandlerDeps {
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  readonly tokenCounter: TokenCounter;
  /** Without it every chunk is embedded (no incremental runs). */
  readonly chunkIndex?: ChunkIndex;
  /** Users' lists served by key (recommend pipelines); without it they go to the object store. */
  readonly recommendationLists?: RecommendationLists;
  /** Answers of generate pipelines by prompt fingerprint; without it they go to the object store. */
  readonly promptCache?: PromptCache;
  endpointsFor(config: PipelineConfig): PipelineEndpoints;
  /**
   * Capacity leases: a unit of an incremental embed run marks its run's lease needed before
   * its first endpoint call; the capacity sweeper raises the copies (the role sets none).
   */
  readonly capacity?: Pick<RunCapacityDeps, 'leases'>;
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
  const observability = { ...createObservability('work'), ...options };
  return sqsRecordHandler(deps, observability, (d, record, context) =>
    workRecord(observability, d, record, context),
  );
}

/** One delivery: read the unit, run it, report what happened; a thrown attempt fails the message. */
async function workRecord(
  observability: Observability,
  d: WorkHandlerDeps,
  record: SQSRecord,
  context?: Context,
): Promise<void> {
  const { unit, config } = readUnitMessage(observability, d, record);
  const receiveCount = receiveCountOf(record);
  const isLastAttempt = receiveCount >= config.workers.maxReceiveCount;
  const about = unitDeliveryOf(unit, config, receiveCount);
  try {
    const outcome = await runUnit(d, config, unit, isLastAttempt, context);
    reportUnitOutcome(observability, about, outcome);
  } catch (error) {
    reportUnitAttemptFailed(observability, about, isLastAttempt, error);
    throw error;
  }
}

/** The unit and its pipeline; a message that is neither fails (logged) until dead-lettered. */
function readUnitMessage(
  { logger }: Observability,
  d: WorkHandlerDeps,
  record: SQSRecord,
): { unit: WorkUnit; config: PipelineConfig } {
  try {
    const unit = parseWorkUnitMessage(record.body);
    const config = d.pipelines.get(unit.pipeline);
    if (config === undefined) {
      throw new InvalidMessage(
        `work unit message: pipeline ${unit.pipeline} is not configured (known: ${[...d.pipelines.keys()].join(', ')})`,
      );
    }
    return { unit, config };
  } catch (error) {
    logger.error('work message is not a unit this deployment can run; it fails until dead-lettered', {
      messageId: record.messageId,
      reason: describeError(error),
      body: excerptOf(record.body),
    });
    throw error;
  }
}

function runUnit(
  d: WorkHandlerDeps,
  config: PipelineConfig,
  unit: WorkUnit,
  isLastAttempt: boolean,
  context: Context | undefined,
): Promise<UnitOutcome> {
  const stopAfter = checkpointTime(context, config);
  const capacityDemand = d.capacity && { capacityDemand: { leases: d.capacity.leases } };
  return processUnit({ ...d, ...d.endpointsFor(config), ...capacityDemand }, config, unit, {
    isLastAttempt,
    ...(stopAfter === undefined ? {} : { stopAfter }),
    // The memory Lambda bills, for the run's cost (absent outside Lambda: the config's).
    ...(context?.memoryLimitInMB ? { memoryMiB: Number(context.memoryLimitInMB) } : {}),
  });
}

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createWorkHandler(deployedAdapters);
