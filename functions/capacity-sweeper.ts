import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import { type PipelineCapacity, pipelineCapacityOf } from '../shared/capacity/names.ts';
import type { RunCapacityDeps } from '../shared/capacity/run-capacity.ts';
import { type ComponentSweep, type SweepOptions, sweepCapacity } from '../shared/capacity/sweep.ts';
import { sweepWorkers, type WorkersSweep } from '../shared/capacity/workers.ts';
import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { SluiceError } from '../shared/errors/errors.ts';
import type { RunStore } from '../shared/ports/run-store.ts';
import { deployedAdapters } from './config/adapters.ts';
import { type DepsProvider, resolveDeps } from './config/deps-provider.ts';
import { createObservability, type Observability } from './observability.ts';

export interface CapacitySweeperDeps {
  /** The bundled pipelines: their endpoints' inference components are swept. */
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
  /** Leases are live only while their run is running and progressing. */
  readonly runs: RunStore;
  readonly capacity: RunCapacityDeps;
}

export interface CapacitySweeperOptions extends Partial<Observability> {
  /** @default () => new Date() */
  readonly now?: () => Date;
  readonly sweep?: SweepOptions;
}

/** What a sweep returns (Scheduler ignores it; it helps a person invoking the function by hand). */
export interface CapacitySweepResult {
  readonly components: readonly {
    readonly component: string;
    readonly liveLeases: number;
    readonly copies?: number;
    readonly set?: number;
    readonly error?: string;
  }[];
  /** The work event source's limit, when the workers follow the copies (`capacity.workers`). */
  readonly workers?: {
    readonly live: number;
    readonly workers?: number;
    readonly set?: number;
    readonly error?: string;
  };
}

/** Some component could not be swept; raised after every other component was, so the function's Errors alarm sees it. */
export class CapacitySweepFailed extends SluiceError {}

/**
 * (primary adapter) capacity sweeper -> sweepCapacity -> (runs table, SageMaker control plane).
 *
 * Run by EventBridge Scheduler every minute (the event is ignored). Sweeps the inference
 * component of every bundled pipeline with run-scoped capacity: leaked leases released,
 * copies set to what the live leases and the cooldown call for (a cooldown the last release
 * did not keep, `capacity.cooldown: auto`, ends at the release). Publishes
 * `CapacityWithoutRun` (1 when some component had copies up with no live lease past its
 * cooldown and grace, else 0: the safety net's alarm), `LiveLeases` and
 * `CapacitySweepErrors`. A component that fails is logged and the others are still swept;
 * then the invocation fails, so the function's Errors metric counts a broken net.
 */
export function createCapacitySweeperHandler(
  deps: DepsProvider<CapacitySweeperDeps>,
  options: CapacitySweeperOptions = {},
) {
  const { logger, metrics } = { ...createObservability('capacity-sweeper'), ...options };
  const now = options.now ?? (() => new Date());

  return middy<unknown, CapacitySweepResult>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .handler(async () => {
      const d = resolveDeps(deps, logger);
      const sweeps = await sweepComponents(d, now(), options.sweep);
      for (const sweep of sweeps) reportComponentSweep(logger, sweep);
      const workers = await sweepWorkEventSource(d, sweeps, now);
      if (workers) reportWorkersSweep(logger, workers);
      const failed: { component: string; error?: string }[] = sweeps.filter((s) => s.error !== undefined);
      if (workers?.error !== undefined) failed.push({ component: 'work event source', error: workers.error });
      publishSweepMetrics(metrics, sweeps, workers, failed.length);
      if (failed.length > 0)
        throw new CapacitySweepFailed(
          `capacity sweep failed for ${failed.map((s) => `${s.component} (${s.error})`).join(', ')}; the other components were swept`,
        );
      return sweepResultOf(sweeps, workers);
    });
}

/** Sweeps the inference component of every bundled pipeline with run-scoped capacity. */
function sweepComponents(
  d: CapacitySweeperDeps,
  at: Date,
  options: SweepOptions | undefined,
): Promise<ComponentSweep[]> {
  const capacities = [...d.pipelines.values()]
    .map((config) => pipelineCapacityOf(config))
    .filter((capacity): capacity is PipelineCapacity => capacity !== undefined);
  return sweepCapacity(
    { leases: d.capacity.leases, control: d.capacity.control, runs: d.runs },
    capacities,
    at,
    options,
  );
}

/**
 * The workers follow the copies the live leases hold (and in-worker runs' own leases);
 * undefined when the deployment's workers do not follow them.
 */
async function sweepWorkEventSource(
  d: CapacitySweeperDeps,
  sweeps: readonly ComponentSweep[],
  now: () => Date,
): Promise<WorkersSweep | undefined> {
  if (!d.capacity.workers) return undefined;
  return sweepWorkers(
    { leases: d.capacity.leases, runs: d.runs },
    d.capacity.workers,
    sweeps.map((s) => ({ component: s.component, ...(s.liveCopies && { liveCopies: s.liveCopies }) })),
    now(),
  );
}

/** One log line per component, at the level of what the sweep found. */
function reportComponentSweep(logger: Logger, sweep: ComponentSweep): void {
  const fields = {
    component: sweep.component,
    liveLeases: sweep.liveLeases,
    desiredCopies: sweep.before?.desiredCopies,
    currentCopies: sweep.before?.currentCopies,
    status: sweep.before?.status,
    copies: sweep.copies,
    coolingDown: sweep.coolingDown,
    // Whether the last release keeps the cooldown, and why (capacity.cooldown).
    ...(sweep.cooldown && { cooldown: sweep.cooldown }),
    ...(sweep.set && { set: sweep.set }),
    // A copies set checked after it landed: raised again for a lease taken meanwhile (docs/capacity.md).
    ...(sweep.recheck && { recheck: sweep.recheck }),
    ...(sweep.leaked.length > 0 && { leaked: sweep.leaked }),
    ...(sweep.forgotten > 0 && { forgotten: sweep.forgotten }),
    // On-demand leases dated by this sweep (`raisedAt`: charged from here).
    ...(sweep.raised && { raised: sweep.raised }),
  };
  if (sweep.error !== undefined)
    logger.error('capacity sweep failed for this component', { ...fields, error: sweep.error });
  else if (sweep.capacityWithoutRun)
    logger.warn('copies up with no live run past the cooldown: scaling in', fields);
  else if (sweep.leaked.length > 0) logger.warn('released leaked capacity leases', fields);
  else if (sweep.set !== undefined && !sweep.set.outcome.applied)
    logger.info('component busy; copies set on a later sweep', fields);
  else if (sweep.set !== undefined) logger.info('copies set', fields);
  else logger.debug('capacity as it should be', fields);
}

/** One log line for the work event source's limit. */
function reportWorkersSweep(logger: Logger, sweep: WorkersSweep): void {
  const fields = {
    liveWorkerLeases: sweep.liveLeases,
    before: sweep.before,
    workers: sweep.workers,
    ...(sweep.set && { set: sweep.set }),
    ...(sweep.released.length > 0 && { released: sweep.released }),
    ...(sweep.keptHigher && { keptHigher: sweep.keptHigher }),
    // The limit checked after the set landed: raised again for a lease a plan took meanwhile.
    ...(sweep.recheck && { recheck: sweep.recheck }),
  };
  if (sweep.error !== undefined)
    logger.error('work event source limit could not be swept', { ...fields, error: sweep.error });
  else if (sweep.set !== undefined && !sweep.set.outcome.applied)
    logger.info('work event source busy; its limit is set on a later sweep', fields);
  else if (sweep.set !== undefined) logger.info('work event source limit set', fields);
  else logger.debug('work event source limit as it should be', fields);
}

/** `WorkerConcurrency` (when known), `CapacityWithoutRun` (the safety net's alarm), `LiveLeases`, `CapacitySweepErrors`. */
function publishSweepMetrics(
  metrics: Metrics,
  sweeps: readonly ComponentSweep[],
  workers: WorkersSweep | undefined,
  failures: number,
): void {
  // The limit the live leases call for (what the event source has once set).
  if (workers?.workers !== undefined)
    metrics.addMetric('WorkerConcurrency', MetricUnit.Count, workers.workers);
  metrics.addMetric('CapacityWithoutRun', MetricUnit.Count, sweeps.some((s) => s.capacityWithoutRun) ? 1 : 0);
  metrics.addMetric(
    'LiveLeases',
    MetricUnit.Count,
    sweeps.reduce((sum, s) => sum + s.liveLeases.length, 0),
  );
  metrics.addMetric('CapacitySweepErrors', MetricUnit.Count, failures);
}

/** What the invocation returns: per component, and the work event source when swept. */
function sweepResultOf(
  sweeps: readonly ComponentSweep[],
  workers: WorkersSweep | undefined,
): CapacitySweepResult {
  return {
    ...(workers && {
      workers: {
        live: workers.liveLeases.length,
        ...(workers.workers === undefined ? {} : { workers: workers.workers }),
        ...(workers.set === undefined ? {} : { set: workers.set.workers }),
      },
    }),
    components: sweeps.map((s) => ({
      component: s.component,
      liveLeases: s.liveLeases.length,
      ...(s.copies === undefined ? {} : { copies: s.copies }),
      ...(s.set === undefined ? {} : { set: s.set.copies }),
    })),
  };
}

/** The deployed handler: adapters built from the environment on the first invocation. */
// It sends no units: a split stack's compute queue is not in its environment.
export const handler = createCapacitySweeperHandler(() => deployedAdapters({ sendsUnits: false }));
