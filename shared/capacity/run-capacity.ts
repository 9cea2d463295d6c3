import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { RunCapacitySummary } from '../domain/types.ts';
import { describeError } from '../errors/errors.ts';
import type { CapacityControl, ComponentCopies } from '../ports/capacity-control.ts';
import type { CapacityLease, CapacityLeases } from '../ports/capacity-leases.ts';
import { type CooldownDecision, cooldownAfterRelease } from './cooldown.ts';
import {
  copiesForRun,
  copiesHeldFrom,
  copiesOnDemand,
  floorCopies,
  heldCopies,
  neededCopies,
} from './copies.ts';
import type { PipelineCapacity } from './names.ts';
import type { ScheduleSpec } from './next-tick.ts';
import { coveredBy, noteCopiesRaised } from './raised.ts';
import {
  MAX_RAISES,
  raiseWorkers,
  WORKERS_LEASE_COMPONENT,
  type WorkerScaling,
  type WorkersRaised,
  workersOfRun,
} from './workers.ts';

/** The ports run-scoped capacity needs: the lease store and the component's control plane. */
export interface RunCapacityDeps {
  readonly leases: CapacityLeases;
  readonly control: CapacityControl;
  /**
   * The work event source's limit, which follows the copies (deployed with a capacity
   * sweeper; docs/capacity.md, "Workers follow the copies"). Without it no workers lease is
   * taken and the limit is left as deployed (local runs).
   */
  readonly workers?: WorkerScaling;
  /**
   * The work function marks an on-demand lease needed before its first endpoint call
   * (`demandRunCapacity`), so plan may leave the copies of an incremental embed run to it
   * ({@link onDemandOf}). Without it every run's copies are raised at plan.
   */
  readonly onDemandCopies?: boolean;
}

/** Whether plan takes a run of `config` on demand: the workers can ask, and the run may embed nothing. */
export function onDemandOf(deps: Pick<RunCapacityDeps, 'onDemandCopies'>, config: PipelineConfig): boolean {
  return deps.onDemandCopies === true && copiesOnDemand(config);
}

/**
 * A run's estimated work in the unit `workPerSecondPerCopy` counts: the units' estimated
 * cost for embedding (tokens), rows for scoring (a scoring unit's cost is rows x features).
 */
export function runWorkOf(config: PipelineConfig, estimatedCost: number): number {
  if (config.kind !== 'score') return estimatedCost;
  return estimatedCost / Math.max(1, config.featureSpec.features.length);
}

/** What taking a run's capacity did, for the caller to log. */
export interface CapacityAcquired {
  readonly lease: CapacityLease;
  /** The component's copies before any change; undefined when they could not be read. */
  readonly before?: ComponentCopies;
  /** Copies last asked for (only when raised). */
  readonly raisedTo?: number;
  /**
   * Times the copies were found below what the leases need right after a raise (a
   * concurrent set lowered them) and raised again; absent when none.
   */
  readonly raisedAgain?: number;
  /**
   * Why the raise is left to the sweeper: the component was busy (an update under way, not
   * waited on: {@link componentBusyDeferral}), or concurrent sets kept lowering the copies.
   */
  readonly deferred?: string;
  /** Why copies could not be read or raised (the run goes on; the sweeper retries). */
  readonly error?: string;
  /** What raising the work event source's limit did (with `RunCapacityDeps.workers`). */
  readonly workers?: WorkersRaised;
  /**
   * The lease is on demand and no worker needed it yet: no copies were raised; the run's
   * first unit with chunks to embed asks for them ({@link onDemandOf}).
   */
  readonly onDemand?: true;
}

/** What raising a component's copies to its unreleased leases did ({@link raiseCopiesToLeases}). */
export type CopiesRaised = Omit<CapacityAcquired, 'lease' | 'workers' | 'onDemand'>;

/**
 * Plan's step: takes the run's lease (idempotent: a retried plan gets the lease it took
 * before) and raises the component's copies to what the unreleased leases need. It never
 * lowers copies (that is the sweeper's, after the cooldown), and a control-plane failure
 * does not fail the plan: it is reported, and the next sweep raises the copies.
 *
 * With `onDemand` ({@link onDemandOf}) the lease is taken on demand and no copies are raised:
 * the lease counts its copies for the workers only, until the run's first unit with chunks
 * to embed marks it needed (`demandRunCapacity`). A retried plan follows the lease it took
 * before: one taken at plan, or one already needed, is raised as any.
 *
 * @throws the lease store's errors: without a lease nothing would keep the capacity up
 */
export async function acquireRunCapacity(
  deps: RunCapacityDeps,
  capacity: PipelineCapacity,
  runId: string,
  estimatedWork: number,
  now: Date,
  onDemand = false,
): Promise<CapacityAcquired> {
  const component = capacity.componentName;
  const lease = await deps.leases.take({
    runId,
    component,
    copies: copiesForRun(estimatedWork, capacity.capacity),
    takenAt: now.toISOString(),
    ...(onDemand ? { onDemand: true } : {}),
  });
  const copies: CapacityAcquired =
    lease.onDemand && lease.neededAt === undefined
      ? { lease, onDemand: true }
      : await raiseCopies(deps, capacity, lease, now);
  return deps.workers === undefined
    ? copies
    : { ...copies, workers: await raiseWorkers(deps.leases, deps.workers) };
}

/**
 * Plan's step for a run that calls no run-scoped endpoint (in-worker or serverless
 * scoring) in a stack whose workers follow the copies: a lease on `workers.maxConcurrency`
 * workers of its own (idempotent, like a copies lease), then the limit raised to what every
 * unreleased lease needs. The sweeper releases the lease once the run has finished.
 * Undefined without `deps.workers`.
 *
 * @throws the lease store's errors: without a lease the sweeper would take the workers back
 */
export async function acquireRunWorkers(
  deps: RunCapacityDeps,
  config: PipelineConfig,
  runId: string,
  now: Date,
): Promise<CapacityAcquired | undefined> {
  if (deps.workers === undefined) return undefined;
  const lease = await deps.leases.take({
    runId,
    component: WORKERS_LEASE_COMPONENT,
    copies: workersOfRun(config),
    takenAt: now.toISOString(),
  });
  return { lease, workers: await raiseWorkers(deps.leases, deps.workers) };
}

async function raiseCopies(
  deps: RunCapacityDeps,
  capacity: PipelineCapacity,
  lease: CapacityLease,
  now: Date,
): Promise<CapacityAcquired> {
  const raised = await raiseCopiesToLeases(deps, capacity, {
    now,
    firstLook: async (before) => {
      // Copies already serving (a run just before this one, or always-on): no warm-up.
      if (before.currentCopies >= 1 && lease.readyAt === undefined)
        await deps.leases.markReady(capacity.componentName, lease.runId, now.toISOString());
    },
  });
  return { lease, ...raised };
}

/** How {@link raiseCopiesToLeases} is called. */
export interface RaiseOptions {
  /** Called with the first description (plan marks its lease ready there). */
  readonly firstLook?: (before: ComponentCopies) => Promise<void>;
  /**
   * The time an applied set is recorded at on the on-demand leases it counted (`raisedAt`):
   * the caller's clock (plan's, the sweeper's, the worker's). @default the current time
   */
  readonly now?: Date;
}

/**
 * Raises the component's desired copies to what its unreleased leases need
 * (`neededCopies`), never lowering them; plan's step, and the check after every set the
 * sweeper and finalize make. Never throws: a failure is reported, the sweeper retries.
 *
 * `UpdateInferenceComponentRuntimeConfig` takes only the component and the copy count: no
 * condition on the count it replaces. So a writer that read the leases before another plan
 * took its lease can land a stale, lower count after that plan raised them. Every set is
 * therefore checked: the copies and the leases are read again, and the copies raised again
 * while below what the leases need, up to {@link MAX_RAISES} sets. Whichever set lands last,
 * its writer's check sees every lease taken before it, and a plan taking its lease later
 * reads the copies after it: the copies end no lower than the unreleased leases need.
 *
 * A set SageMaker refuses because the component is busy (`Updating`) is not waited on, unlike
 * the work event source's ({@link raiseWorkers}): the change under way can be an instance
 * launching for a component scaled from 0 copies, which takes minutes, longer than plan or
 * finalize should hold a Lambda. The raise is `deferred`, and the sweeper, which sets the
 * copies the live leases need every minute, raises it once the component is `InService`
 * (docs/decisions.md, "A busy inference component is left to the sweeper").
 *
 * Every look records, on the needed on-demand leases it counted, when their copies were asked
 * for (`noteCopiesRaised`): the time of an applied set that counted them, or, when the
 * desired copies already covered them, their mark if those copies serve ({@link coveredBy}).
 * A refused or failed set records nothing.
 */
export async function raiseCopiesToLeases(
  deps: Pick<RunCapacityDeps, 'leases' | 'control'>,
  capacity: PipelineCapacity,
  options: RaiseOptions = {},
): Promise<CopiesRaised> {
  const component = capacity.componentName;
  let before: ComponentCopies | undefined;
  let raisedTo: number | undefined;
  let sets = 0;
  const report = (extra: Partial<CopiesRaised> = {}): CopiesRaised => ({
    ...(before === undefined ? {} : { before }),
    ...(raisedTo === undefined ? {} : { raisedTo }),
    ...(sets > 1 ? { raisedAgain: sets - 1 } : {}),
    ...extra,
  });
  try {
    for (;;) {
      const copies = await deps.control.describe(component);
      if (before === undefined) {
        before = copies;
        await options.firstLook?.(copies);
      }
      const unreleased = (await deps.leases.list(component)).filter((l) => l.releasedAt === undefined);
      const needed = neededCopies(capacity.capacity, unreleased.map(heldCopies));
      // Only raises: copies at or above the need (a kept cooldown included) stay. They cover
      // the needed on-demand leases no raise counted yet: from their marks when serving.
      if (needed <= copies.desiredCopies) {
        await noteCopiesRaised(deps.leases, unreleased, coveredBy(copies, needed, options.now));
        return report();
      }
      if (sets === MAX_RAISES)
        return report({
          deferred: `the copies were lowered ${sets} times while plans raised them (concurrent sets); the capacity sweeper raises them`,
        });
      const outcome = await deps.control.setCopies(component, needed);
      if (!outcome.applied) return report({ deferred: componentBusyDeferral(outcome.reason) });
      sets += 1;
      raisedTo = needed;
      await noteCopiesRaised(deps.leases, unreleased, { at: options.now ?? new Date() });
    }
  } catch (error) {
    return report({ error: describeError(error) });
  }
}

/**
 * The reason of a copies raise left to the sweeper because the component was busy: it says
 * so, and that it was not waited on (a change under way can take minutes).
 */
export function componentBusyDeferral(reason: string): string {
  return `the inference component is busy with a change that can take minutes (not waited on): ${reason}; the capacity sweeper raises the copies`;
}

/** What finalize prices a run's endpoint from, beside the summary's `capacity` block. */
export interface CapacityReleased {
  readonly summary: RunCapacitySummary;
  /**
   * Instance-seconds the run is charged: copies x (held + cooldown when kept); an on-demand
   * lease from when its copies were asked for (`copiesHeldFrom`), and 0 when never needed
   * (it raised no copies).
   */
  readonly endpointSeconds: number;
  readonly instanceType: string;
  /**
   * Whether the release keeps the copies for the cooldown (`cooldownAfterRelease`); when
   * not, finalize scales in at once ({@link scaleInAtRelease}) and the run is charged none.
   */
  readonly cooldown: CooldownDecision;
}

export interface ReleaseOptions {
  /**
   * The run handed its capacity over to a run it started (a fit run to its scoring run):
   * the copies stay busy, so this run is not charged the cooldown.
   */
  readonly handedOver?: boolean;
  /** The schedules of every pipeline on the component (`schedulesOf`): a tick within the cooldown keeps it. */
  readonly schedules?: readonly ScheduleSpec[];
}

/**
 * Finalize's first step, before the summary is written: what the run's lease comes to if
 * released `now` (or when it was released already: by the sweeper as leaked, or by an
 * earlier finalize). Reads only: finalize releases with {@link releaseRunCapacity} after
 * the run's move, so a lease released by finalize always belongs to a finished run, and a
 * released lease whose run is running again was reopened by a redrive (the sweeper holds it
 * again). Undefined for a run that holds no lease (planned before run-scoped capacity, or
 * by a plan that failed before taking it).
 */
export async function settleRunCapacity(
  leases: CapacityLeases,
  capacity: PipelineCapacity,
  runId: string,
  now: Date,
  options: ReleaseOptions = {},
): Promise<CapacityReleased | undefined> {
  const stored = await leases.get(capacity.componentName, runId);
  if (stored === undefined) return undefined;
  const lease = stored.releasedAt === undefined ? { ...stored, releasedAt: now.toISOString() } : stored;
  const summary = capacitySummaryOf(lease);
  const decision = cooldownAfterRelease({
    capacity: capacity.capacity,
    schedules: options.schedules ?? [],
    state: await leases.state(capacity.componentName),
    releasedAt: Date.parse(lease.releasedAt ?? now.toISOString()),
  });
  // A lease that never held copies (on demand, never needed) kept none after its release either.
  const raised = copiesHeldFrom(lease) !== undefined;
  const cooldown = options.handedOver || !decision.keep || !raised ? 0 : capacity.capacity.cooldownSeconds;
  return {
    summary: options.handedOver
      ? { ...summary, handedOver: true }
      : { ...summary, cooldown: { seconds: cooldown, reason: decision.reason } },
    endpointSeconds: lease.copies * ((lease.priorSeconds ?? 0) + heldSeconds(lease) + cooldown),
    instanceType: capacity.instanceType,
    cooldown: decision,
  };
}

/** What scaling in at release did, for the caller to log. */
export interface ScaledIn {
  /** Copies asked for (the floor: 0 run-scoped), when lowered. */
  readonly copies?: number;
  /**
   * The copies set again right after lowering: a plan took a lease (and found the copies
   * before the lowering enough) while finalize lowered them.
   */
  readonly raisedAgainTo?: number;
  /** Why that raise after lowering was not applied (the component busy): the next sweep raises. */
  readonly raiseDeferred?: string;
  /** Why nothing was lowered: an unreleased lease holds copies, or they are at the floor already. */
  readonly skipped?: 'leases-held' | 'at-floor' | 'deferred';
  /** Why the copies could not be read or set (the sweeper scales in on its next pass). */
  readonly error?: string;
}

/**
 * Finalize's step after releasing a lease whose cooldown is not kept: when no unreleased
 * lease holds copies (an on-demand lease not yet needed holds none), the component goes to
 * its floor now instead of at the next sweep, which would set the same. The
 * same guard as the sweeper's: the leases are read again just before lowering, so a plan
 * that took a lease (and raised the copies) meanwhile is not undone. A plan that takes its
 * lease between that read and the set finds the copies still up and sets nothing, so the
 * lowering is checked after it lands, as plan checks its raises
 * ({@link raiseCopiesToLeases}). A control-plane failure is reported, never thrown: the
 * sweeper catches what this misses.
 *
 * @param now when a raise back after the lowering is recorded on the on-demand leases it
 *   counts (`raisedAt`); the current time by default
 */
export async function scaleInAtRelease(
  deps: RunCapacityDeps,
  capacity: PipelineCapacity,
  now?: Date,
): Promise<ScaledIn> {
  const component = capacity.componentName;
  // An on-demand lease no unit marked needed holds no copies (`heldCopies`), as the sweeper
  // counts it: it does not keep the copies up. One marked after this look is raised back by
  // the check after the lowering, or by the next sweep.
  const held = async () =>
    (await deps.leases.list(component)).some(
      (lease) => lease.releasedAt === undefined && heldCopies(lease) > 0,
    );
  try {
    if (await held()) return { skipped: 'leases-held' };
    const floor = floorCopies(capacity.capacity);
    const before = await deps.control.describe(component);
    if (before.desiredCopies <= floor) return { skipped: 'at-floor' };
    if (await held()) return { skipped: 'leases-held' };
    const outcome = await deps.control.setCopies(component, floor);
    if (!outcome.applied) return { skipped: 'deferred' };
    const recheck = await raiseCopiesToLeases(deps, capacity, now === undefined ? {} : { now });
    return {
      copies: floor,
      ...(recheck.raisedTo === undefined ? {} : { raisedAgainTo: recheck.raisedTo }),
      ...(recheck.deferred === undefined ? {} : { raiseDeferred: recheck.deferred }),
      ...(recheck.error === undefined ? {} : { error: recheck.error }),
    };
  } catch (error) {
    return { error: describeError(error) };
  }
}

/**
 * Finalize's last step, after the run's move: releases the lease at the time the summary
 * reports (idempotent: a redelivered finalize, or one that lost the move, changes nothing),
 * without touching the copies: a kept cooldown ends at the sweeper; otherwise finalize
 * scales in next ({@link scaleInAtRelease}).
 */
export async function releaseRunCapacity(
  leases: CapacityLeases,
  runId: string,
  reported: Pick<RunCapacitySummary, 'component' | 'releasedAt'>,
): Promise<void> {
  await leases.release(reported.component, runId, reported.releasedAt, 'finalize');
}

/**
 * Seconds a lease held copies, from taken (an on-demand lease: from when its copies were
 * asked for, `copiesHeldFrom`) to released; 0 while held, and for an on-demand lease never
 * needed.
 */
export function heldSeconds(lease: CapacityLease): number {
  const from = copiesHeldFrom(lease);
  if (lease.releasedAt === undefined || from === undefined) return 0;
  return Math.max(0, (Date.parse(lease.releasedAt) - Date.parse(from)) / 1000);
}

/** The summary's `capacity` block of a released lease. */
export function capacitySummaryOf(lease: CapacityLease): RunCapacitySummary {
  const releasedAt = lease.releasedAt ?? lease.takenAt;
  const heldFrom = copiesHeldFrom(lease);
  const warmupSeconds =
    lease.readyAt === undefined || heldFrom === undefined
      ? undefined
      : Math.max(0, (Date.parse(lease.readyAt) - Date.parse(heldFrom)) / 1000);
  return {
    component: lease.component,
    copies: lease.copies,
    takenAt: lease.takenAt,
    ...(lease.onDemand ? { copiesRaised: heldFrom === undefined ? 'never' : 'on-demand' } : {}),
    ...(lease.neededAt === undefined ? {} : { neededAt: lease.neededAt }),
    ...(lease.raisedAt === undefined ? {} : { raisedAt: lease.raisedAt }),
    ...(lease.readyAt === undefined ? {} : { readyAt: lease.readyAt }),
    releasedAt,
    ...(warmupSeconds === undefined ? {} : { warmupSeconds }),
    ...(lease.priorSeconds === undefined ? {} : { priorSeconds: lease.priorSeconds }),
  };
}
