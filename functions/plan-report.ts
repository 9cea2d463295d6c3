import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { CapacityAcquired } from '../shared/capacity/run-capacity.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { tracksSources } from '../shared/incremental/deleted-sources.ts';
import type { PlanRunResult } from '../shared/plan/plan-run.ts';
import type { Observability } from './observability.ts';

/** What started a planned run, as logged. */
export type PlanTrigger = 's3' | 'schedule';

/**
 * Logs and counts one planned run: its size, the inputs that were gone when planned
 * (removed documents for pipelines that track sources, a warning otherwise) and its
 * capacity lease.
 */
export function reportPlanned(
  { logger, metrics }: Observability,
  config: PipelineConfig,
  trigger: PlanTrigger,
  result: PlanRunResult,
): void {
  logger.info('run planned', {
    runId: result.run.runId,
    pipeline: config.name,
    trigger,
    inputs: result.run.inputs.length,
    units: result.units.length,
    estCost: result.units.reduce((sum, unit) => sum + unit.estCost, 0),
  });
  reportMissing({ logger, metrics }, config, result);
  if (result.capacity) logCapacity({ logger, metrics }, result.run.runId, result.capacity);
  metrics.addMetric('RunsPlanned', MetricUnit.Count, 1);
  metrics.addMetric('UnitsPlanned', MetricUnit.Count, result.units.length);
}

/** Inputs deleted before planning: removed documents when the pipeline tracks sources, else nothing to read. */
function reportMissing({ logger }: Observability, config: PipelineConfig, result: PlanRunResult): void {
  if (result.missing.length === 0) return;
  const missing = {
    runId: result.run.runId,
    missing: result.missing.slice(0, 100),
    count: result.missing.length,
  };
  if (tracksSources(config))
    logger.info('sources gone when planned; their documents count as removed at finalize', missing);
  else logger.warn('inputs deleted before planning; nothing to read', missing);
}

/** One line for the run's lease; a raise that failed or waits is a warning, and the sweeper's to finish. */
export function logCapacity({ logger }: Observability, runId: string, acquired: CapacityAcquired): void {
  const fields = {
    runId,
    component: acquired.lease.component,
    copies: acquired.lease.copies,
    takenAt: acquired.lease.takenAt,
    desiredCopies: acquired.before?.desiredCopies,
    currentCopies: acquired.before?.currentCopies,
    raisedTo: acquired.raisedTo,
    // Sets after the first: the copies were lowered by a concurrent writer and raised back.
    ...(acquired.raisedAgain === undefined ? {} : { raisedAgain: acquired.raisedAgain }),
    // The work event source's limit, which follows the copies (docs/capacity.md).
    ...(acquired.workers && { workers: acquired.workers }),
  };
  if (acquired.workers?.error !== undefined)
    logger.warn(
      'capacity lease taken, but the workers limit could not be raised; the capacity sweeper retries',
      {
        ...fields,
        error: acquired.workers.error,
      },
    );
  if (acquired.error !== undefined)
    logger.warn('capacity lease taken, but copies could not be raised; the capacity sweeper retries', {
      ...fields,
      error: acquired.error,
    });
  else if (acquired.deferred !== undefined)
    // Busy (an update under way, not waited on) or lowered again by concurrent sets: the reason says which.
    logger.info('capacity lease taken; raising the copies is deferred, the capacity sweeper raises them', {
      ...fields,
      reason: acquired.deferred,
    });
  else if (acquired.workers?.deferred !== undefined)
    logger.info(
      'capacity lease taken; raising the workers limit is deferred, the capacity sweeper raises it',
      {
        ...fields,
        reason: acquired.workers.deferred,
      },
    );
  else if (acquired.onDemand)
    // An incremental embed run: its first unit with chunks to embed asks; one that embeds none never does.
    logger.info('capacity lease taken on demand; copies are raised when a unit has chunks to embed', {
      ...fields,
      onDemand: true,
    });
  else logger.info('capacity lease taken', fields);
}
