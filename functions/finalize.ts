import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSRecord } from 'aws-lambda';
import type { Redelivery } from '../shared/adapters/aws/sqs-redelivery.ts';
import type { RunCapacityDeps } from '../shared/capacity/run-capacity.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { describeError } from '../shared/errors/errors.ts';
import { type FinalizeDeps, finalizeRun } from '../shared/finalize/finalize-run.ts';
import type { ChunkIndex } from '../shared/ports/chunk-index.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import type { SegmentStatsStore } from '../shared/ports/segment-stats-store.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { writeRunReport } from '../shared/report/load-run-report.ts';
import { deployedAdapters } from './config/adapters.ts';
import type { DepsProvider } from './config/deps-provider.ts';
import { parseFinalizeMessage } from './messages/finalize-message.ts';
import { excerptOf } from './messages/parse-message.ts';
import { createObservability, type Observability } from './observability.ts';
import { sqsRecordHandler } from './sqs-record-handler.ts';

export interface FinalizeHandlerDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  /** Sends the units of a run's next stage (a score run's `score` stage after its `fit`). */
  readonly queue?: WorkQueue;
  /** Pipeline configs by name: a run's job kind and stages come from its pipeline's. */
  readonly pipelines?: ReadonlyMap<string, PipelineConfig>;
  readonly segmentStats?: SegmentStatsStore;
  /** Incremental embed pipelines: documents gone from their source are recorded with no chunks. */
  readonly chunkIndex?: ChunkIndex;
  /** A failed message comes back after its own backoff; without it, after the visibility timeout. */
  readonly redelivery?: Redelivery;
  /** Prices the finished run (summary `cost`) in the function's region. */
  readonly costing?: { readonly region: string; readonly estimate: boolean };
  /**
   * Run-scoped endpoint capacity: finalize releases the run's lease, and scales in at once
   * when no run is likely to follow (otherwise the sweeper does after the cooldown).
   */
  readonly capacity?: RunCapacityDeps;
}

export interface FinalizeHandlerOptions extends Partial<Observability> {
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * When finalize stops starting new source comparisons (incremental embed runs): with a
 * third of the function timeout (at least two minutes) left for the comparisons under way,
 * the pointer flips and the run's move. The sources left keep their manifests and are
 * compared by a later run, so a run of very many sources still finishes. Undefined
 * without a Lambda context (tests).
 */
export function comparisonDeadline(context: Context | undefined): number | undefined {
  if (typeof context?.getRemainingTimeInMillis !== 'function') return undefined;
  const remaining = context.getRemainingTimeInMillis();
  return Date.now() + remaining - Math.max(120_000, remaining / 3);
}

/**
 * (primary adapter) finalize handler -> finalizeRun -> (DynamoDB, S3, SQS work queue).
 *
 * Each message is `{"kind":"finalize","runId"}`, sent by the unit whose completion made
 * every unit of the run's current stage terminal. At the end of a stage that is not the
 * run's last, finalize merges it and sends the next stage's units; at the end of the last
 * it ends the run. finalizeRun is idempotent: a redelivered request for a run that is
 * already finished, or already in its next stage, does nothing more and succeeds; a run
 * that cannot be finalized yet throws, so the message is redelivered.
 */
export function createFinalizeHandler(
  deps: DepsProvider<FinalizeHandlerDeps>,
  options: FinalizeHandlerOptions = {},
) {
  const { logger, metrics } = { ...createObservability('finalize'), ...options };
  const now = options.now ?? (() => new Date());

  const handleRecord = async (
    d: FinalizeHandlerDeps,
    record: SQSRecord,
    context?: Context,
  ): Promise<void> => {
    let runId: string;
    try {
      runId = parseFinalizeMessage(record.body).runId;
    } catch (error) {
      logger.error('finalize message is malformed; it fails until dead-lettered', {
        messageId: record.messageId,
        reason: describeError(error),
        body: excerptOf(record.body),
      });
      throw error;
    }
    try {
      const stopAfter = comparisonDeadline(context);
      const onScaledIn: FinalizeDeps['onScaledIn'] = (run, component, outcome) => {
        if (outcome.error !== undefined)
          logger.warn('could not scale in at release; the capacity sweeper will', {
            runId: run,
            component,
            ...outcome,
          });
        else
          logger.info('capacity scaled in at release (no run likely to follow)', {
            runId: run,
            component,
            ...outcome,
          });
      };
      const onStageStarted: FinalizeDeps['onStageStarted'] = (run, stage) =>
        logger.info(`stage ${stage.from} done; stage ${stage.to} started`, { runId: run, ...stage });
      const summary = await finalizeRun(
        {
          ...d,
          onScaledIn,
          onStageStarted,
          ...(stopAfter === undefined ? {} : { sourceManifests: { stopAfter } }),
        },
        runId,
        now(),
      );
      if (summary === undefined) {
        logger.info('run already finished, or moved into its next stage; nothing more to do', { runId });
        return;
      }
      logger.info(`run ${summary.status}`, { runId, summary });
      if (summary.capacity) logger.info('capacity lease released', { runId, ...summary.capacity });
      metrics.addMetric(summary.status === 'succeeded' ? 'RunsSucceeded' : 'RunsFailed', MetricUnit.Count, 1);
      await writeReport(d, runId);
    } catch (error) {
      logger.error('finalize failed; SQS will redeliver the request', { runId, error: describeError(error) });
      throw error;
    }
  };

  /**
   * The run report (report.html beside summary.json), after the run's move: a report that
   * cannot be written is logged, never a failed finalize (the run and its summary stand;
   * `sluice report` draws it again from the same run).
   */
  const writeReport = async (d: FinalizeHandlerDeps, runId: string): Promise<void> => {
    try {
      const key = await writeRunReport({ runs: d.runs, store: d.store }, runId, { now });
      logger.info('run report written', { runId, key });
    } catch (error) {
      logger.warn('could not write the run report; the run is finished all the same', {
        runId,
        reason: describeError(error),
      });
    }
  };

  return sqsRecordHandler(deps, { logger, metrics }, handleRecord);
}

/** The deployed handler: adapters built from the environment on the first invocation. */
export const handler = createFinalizeHandler(deployedAdapters);
