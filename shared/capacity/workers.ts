import type { CapacityConfig, PipelineConfig } from '../config/pipeline-config.ts';
import type { RunState } from '../domain/types.ts';
import { describeError } from '../errors/errors.ts';
import type { CapacityLease, CapacityLeases } from '../ports/capacity-leases.ts';
import type { RunStore } from '../ports/run-store.ts';
import { type BusyRetryPolicy, BusyWaits } from './busy-retry.ts';
import { neededCopies } from './copies.ts';
import { type LeaseLiveness, leaseLiveness } from './lease-liveness.ts';
import type { PipelineCapacity } from './names.ts';
import { workPoolsOf } from './work-pools.ts';
import type { SetWorkersOutcome, WorkerConcurrency } from './worker-concurrency.ts';

/**
 * Lambda's least `ScalingConfig.MaximumConcurrency` for an SQS event source (CloudFormation
 * `AWS::Lambda::EventSourceMapping ScalingConfig`: minimum 2, maximum 1000). The floor the
 * workers return to when no run holds a lease.
 */
export const MIN_WORKERS = 2;
/** Lambda's largest `MaximumConcurrency`. */
export const MAX_WORKERS = 1000;
/**
 * Workers per copy when `capacity.workersPerCopy` is not set: one worker, with the endpoint's
 * adaptive concurrency, keeps a GPU copy busy (it needs ~0.2 vCPU to stay fed; Lambda gives
 * 0.4 vCPU at 704 MiB: bench/results/pipeline-share.json `sizing`).
 */
export const DEFAULT_WORKERS_PER_COPY = 1;

/**
 * The lease "component" of runs that call no run-scoped endpoint (in-worker or serverless
 * scoring): they hold workers, not copies. Inference component names end in `-model`
 * (`inferenceComponentNameOf`), so this never names one.
 */
export const WORKERS_LEASE_COMPONENT = 'sluice-workers';

/**
 * How the work event source follows the copies: the stack's run-scoped components (all
 * pipelines, not only the one being planned), the largest `workers.maxConcurrency` (the
 * ceiling, what the event source had before it followed the copies), and the port.
 */
export interface WorkerScaling {
  readonly concurrency: WorkerConcurrency;
  /** Every run-scoped capacity of the stack's pipelines (`pipelineCapacityOf`); duplicates allowed. */
  readonly capacities: readonly PipelineCapacity[];
  /** Most workers at once: the largest `workers.maxConcurrency` of the work queue's pipelines (`workPoolsOf`). */
  readonly ceiling: number;
  /** A workers lease whose run shows no progress for this long has leaked: the stack's largest `leaseStaleSeconds`. */
  readonly leaseStaleSeconds: number;
  /**
   * How a raise waits out a mapping busy with an earlier update before leaving it to the
   * sweeper (`busy-retry.ts`). @default DEFAULT_BUSY_RETRY (10 s in all)
   */
  readonly busyRetry?: BusyRetryPolicy;
}

/** The workers scaling of a stack serving `pipelines` (plan and the sweeper build the same one). */
export function workerScalingOf(
  concurrency: WorkerConcurrency,
  pipelines: readonly PipelineConfig[],
  capacities: readonly PipelineCapacity[],
  busyRetry?: BusyRetryPolicy,
): WorkerScaling {
  return {
    concurrency,
    capacities,
    ...(busyRetry && { busyRetry }),
    // The work queue's mapping only: a split stack's compute pool has its own, fixed limit.
    ceiling: Math.max(MIN_WORKERS, ...workPoolsOf(pipelines).work.map((p) => p.workers.maxConcurrency)),
    // Workers leases are judged as strictly as the most patient component's leases.
    leaseStaleSeconds: Math.max(3600, ...capacities.map((c) => c.capacity.leaseStaleSeconds)),
  };
}

export interface WorkersDecisionInput {
  /** Each run-scoped component once: its capacity config and the copies of each live lease. */
  readonly components: readonly {
    readonly capacity: CapacityConfig;
    readonly liveCopies: readonly number[];
  }[];
  /** Workers of each live workers lease (runs that call no run-scoped endpoint). */
  readonly workerLeases: readonly number[];
  /** Most workers at once (the stack's largest `workers.maxConcurrency`). */
  readonly ceiling: number;
}

/**
 * The workers the live leases need: for each component with a live lease, the copies they
 * hold (`neededCopies`: their sum, capped at `maxCopies`, at least `minCopies` always-on)
 * times its `workersPerCopy`; plus each workers lease's workers. Never under
 * {@link MIN_WORKERS} (Lambda's least, and what keeps a run whose lease leaked moving),
 * never over the ceiling. A component with copies but no live lease (a kept cooldown,
 * always-on at rest) needs no workers: no unit waits for them.
 */
export function decideWorkers(input: WorkersDecisionInput): number {
  const forCopies = input.components.reduce(
    (sum, { capacity, liveCopies }) =>
      liveCopies.length === 0
        ? sum
        : sum + neededCopies(capacity, liveCopies) * (capacity.workersPerCopy ?? DEFAULT_WORKERS_PER_COPY),
    0,
  );
  const total = forCopies + input.workerLeases.reduce((sum, workers) => sum + workers, 0);
  const ceiling = Math.min(MAX_WORKERS, Math.max(MIN_WORKERS, input.ceiling));
  return Math.max(MIN_WORKERS, Math.min(ceiling, total));
}

/** The workers a run that holds no copies takes a lease on: its pipeline's `workers.maxConcurrency`. */
export function workersOfRun(config: PipelineConfig): number {
  return config.workers.maxConcurrency;
}

/**
 * Most sets one raise makes before it leaves the rest to the sweeper. Each set past the
 * first answers a concurrent writer (another plan, the sweeper) whose stale set lowered the
 * limit after this one raised it; four covers four such writers in a row.
 */
export const MAX_RAISES = 4;

/** What raising the workers did, for the caller to log. */
export interface WorkersRaised {
  /** The limit before any change (undefined: none set, or it could not be read). */
  readonly before?: number;
  /** The limit last asked for (only when raised). */
  readonly raisedTo?: number;
  /**
   * Times the limit was found below what the leases need right after a raise (a concurrent
   * set lowered it) and raised again; absent when none.
   */
  readonly raisedAgain?: number;
  /**
   * Times a set was refused because the mapping was busy (an earlier update under way) and
   * waited out before reading and setting again; absent when none.
   */
  readonly busyWaits?: number;
  /**
   * Why the raise is left to the sweeper: the mapping stayed busy through the wait budget,
   * or concurrent sets kept lowering the limit.
   */
  readonly deferred?: string;
  /** Why the limit could not be read or raised (the run goes on; the sweeper retries). */
  readonly error?: string;
}

/**
 * Plan's step once its lease is taken: raises the work event source's limit to what every
 * unreleased lease of the stack needs (liveness is the sweeper's to judge, so plan may ask
 * for more than the sweeper keeps, never less). Never lowers, never throws: a failure is
 * reported and the next sweep, at most a minute later, sets the limit.
 *
 * `UpdateEventSourceMapping` has no conditional form (no revision id or expected value, and
 * `GetEventSourceMapping` returns none), so two writers can interleave read and set: a plan
 * that read the leases before another plan took its lease sets a limit that is stale by the
 * time it lands, and can lower what the other plan raised. So every raise is checked: after
 * a set, the limit and the leases are read again and the limit raised again while it is
 * below what they need, up to {@link MAX_RAISES} sets. The last writer's check then sees
 * every lease taken before it, and a plan that takes its lease later reads the limit after
 * that set: whatever the interleaving, the limit ends no lower than what every unreleased
 * lease needs (docs/capacity.md, "Concurrent raises"). The sweeper checks its own sets the
 * same way.
 *
 * A set refused because the mapping is busy (an earlier update, a concurrent writer's or a
 * deploy's, still under way) is waited out: the limit and the leases are read again after a
 * jittered, growing wait (that update may have raised it enough) and the set made again,
 * within `scaling.busyRetry`'s budget (10 s); past it the raise is `deferred` to the sweeper.
 * Errors are never retried here.
 */
export async function raiseWorkers(leases: CapacityLeases, scaling: WorkerScaling): Promise<WorkersRaised> {
  return raiseWorkersWithin(leases, scaling, new BusyWaits(scaling.busyRetry));
}

/** {@link raiseWorkers} spending the waits of `waits` (the sweeper shares one budget between its set and this check). */
async function raiseWorkersWithin(
  leases: CapacityLeases,
  scaling: WorkerScaling,
  waits: BusyWaits,
): Promise<WorkersRaised> {
  let looked = false;
  let before: number | undefined;
  let raisedTo: number | undefined;
  let sets = 0;
  const waitsBefore = waits.waits;
  const report = (extra: Partial<WorkersRaised> = {}): WorkersRaised => ({
    ...(before === undefined ? {} : { before }),
    ...(raisedTo === undefined ? {} : { raisedTo }),
    ...(sets > 1 ? { raisedAgain: sets - 1 } : {}),
    ...(waits.waits > waitsBefore ? { busyWaits: waits.waits - waitsBefore } : {}),
    ...extra,
  });
  try {
    for (;;) {
      const current = await scaling.concurrency.current();
      if (!looked) {
        looked = true;
        before = current;
      }
      // No limit set: the event source already runs as many workers as there are messages.
      if (current === undefined) return report();
      const needed = decideWorkers(await unreleasedLeasesOf(leases, scaling));
      // Plan only raises: a limit at or above the need (a kept higher one included) stays.
      if (needed <= current) return report();
      if (sets === MAX_RAISES)
        return report({
          deferred: `the limit was lowered ${sets} times while plans raised it (concurrent sets); the capacity sweeper raises it`,
        });
      const outcome = await scaling.concurrency.set(needed);
      if (!outcome.applied) {
        // Busy, not failed: wait for the update under way, then look again.
        if (await waits.wait()) continue;
        return report({ deferred: busyDeferral(outcome.reason, waits.waits - waitsBefore, waits) });
      }
      sets += 1;
      raisedTo = needed;
    }
  } catch (error) {
    return report({ error: describeError(error) });
  }
}

/** The reason of a raise left to the sweeper because the mapping stayed busy. */
function busyDeferral(reason: string, waited: number, waits: BusyWaits): string {
  const seconds = (waits.elapsedMs() / 1000).toFixed(1);
  const after = waited === 0 ? '' : ` through ${waited} wait${waited === 1 ? '' : 's'} (${seconds} s)`;
  return `the work event source stayed busy${after}: ${reason}; the capacity sweeper raises the limit`;
}

/** The decision's input from every unreleased lease of the stack (plan's view, and the sweeper's re-check). */
async function unreleasedLeasesOf(
  leases: CapacityLeases,
  scaling: WorkerScaling,
): Promise<WorkersDecisionInput> {
  const unreleased = async (component: string) =>
    (await leases.list(component)).filter((lease) => lease.releasedAt === undefined);
  const components = [];
  for (const capacity of distinctCapacities(scaling.capacities))
    components.push({
      capacity: capacity.capacity,
      liveCopies: (await unreleased(capacity.componentName)).map((l) => l.copies),
    });
  const workerLeases = (await unreleased(WORKERS_LEASE_COMPONENT)).map((l) => l.copies);
  return { components, workerLeases, ceiling: scaling.ceiling };
}

function distinctCapacities(capacities: readonly PipelineCapacity[]): PipelineCapacity[] {
  const seen = new Map<string, PipelineCapacity>();
  for (const capacity of capacities)
    if (!seen.has(capacity.componentName)) seen.set(capacity.componentName, capacity);
  return [...seen.values()];
}

/** What one component's sweep found live, for the workers decision. */
export interface ComponentLiveCopies {
  readonly component: string;
  /** Copies of each live lease; undefined when the component's sweep failed before it knew. */
  readonly liveCopies?: readonly number[];
}

export interface WorkersSweepDeps {
  readonly leases: CapacityLeases;
  readonly runs: Pick<RunStore, 'getRun'>;
}

/** What the sweep did with the workers. */
export interface WorkersSweep {
  /** Runs whose workers leases count. */
  readonly liveLeases: readonly string[];
  /** Workers leases released (their run finished, is gone, or went silent), with why. */
  readonly released: readonly { readonly runId: string; readonly reason: LeaseLiveness }[];
  /** The limit before any change (absent when it could not be read, or none is set). */
  readonly before?: number;
  /** The limit the live leases call for. */
  readonly workers?: number;
  /** When set, the limit asked for and what Lambda did (a raise's last try, after any busy waits). */
  readonly set?: { readonly workers: number; readonly outcome: SetWorkersOutcome };
  /** Times this sweep's raise was refused as busy and waited out before it set again; absent when none. */
  readonly busyWaits?: number;
  /** Why a lower limit was not set this time (a component's sweep failed, or a lease appeared meanwhile). */
  readonly keptHigher?: 'component-unknown' | 'new-lease';
  /**
   * The check after an applied set (as plan's raise): present when it found the limit below
   * what the unreleased leases need (a plan took a lease, or raised, while the sweep set)
   * and raised it, or could not.
   */
  readonly recheck?: WorkersRaised;
  readonly error?: string;
}

const RELEASED_KEPT_MS = 7 * 86_400 * 1000;

/**
 * The sweeper's step after the components: reviews the workers leases (a finished run's is
 * released as of its `finishedAt`, which is the normal end of such a lease: finalize leaves
 * it to this step; a missing or silent run's as of now; released ones older than 7 days are
 * deleted), then sets the limit to {@link decideWorkers} of what is live. Lowering only when
 * every component's live leases are known, and after reading the leases once more: a plan
 * that took a lease (and raised the limit) while the sweep looked is not undone. A plan can
 * still take its lease and find the old, higher limit enough between that read and the set,
 * and any set can land after a plan's raise: so an applied set is checked as plan checks its
 * own ({@link raiseWorkers}), and raised again to what the unreleased leases need. A raise
 * refused as busy is waited out as plan's is, the set and its check sharing one budget (so a
 * pass waits at most `busyRetry.budgetMs`); a lowering refused as busy waits for the next
 * sweep (a late lowering costs nothing).
 */
export async function sweepWorkers(
  deps: WorkersSweepDeps,
  scaling: WorkerScaling,
  components: readonly ComponentLiveCopies[],
  now: Date,
): Promise<WorkersSweep> {
  const live: CapacityLease[] = [];
  const released: { runId: string; reason: LeaseLiveness }[] = [];
  let before: number | undefined;
  let workers: number | undefined;
  const report = (extra: Partial<WorkersSweep> = {}): WorkersSweep => ({
    liveLeases: live.map((l) => l.runId),
    released,
    ...(before === undefined ? {} : { before }),
    ...(workers === undefined ? {} : { workers }),
    ...extra,
  });
  try {
    for (const lease of await deps.leases.list(WORKERS_LEASE_COMPONENT)) {
      const outcome = await reviewWorkersLease(deps, scaling, lease, now);
      if (outcome === 'live') live.push(lease);
      else if (outcome !== 'released' && outcome !== 'forgotten')
        released.push({ runId: lease.runId, reason: outcome });
    }
    const byComponent = new Map(components.map((c) => [c.component, c.liveCopies]));
    const known = distinctCapacities(scaling.capacities).map((capacity) => ({
      capacity: capacity.capacity,
      liveCopies: byComponent.get(capacity.componentName),
    }));
    const unknown = known.some((c) => c.liveCopies === undefined);
    workers = decideWorkers({
      components: known.map((c) => ({ capacity: c.capacity, liveCopies: c.liveCopies ?? [] })),
      workerLeases: live.map((l) => l.copies),
      ceiling: scaling.ceiling,
    });
    before = await scaling.concurrency.current();
    if (workers === before) return report();
    if (before !== undefined && workers < before) {
      if (unknown) return report({ keptHigher: 'component-unknown' });
      // A plan may have taken a lease and raised the limit since the leases were read.
      const again = decideWorkers(await unreleasedLeasesOf(deps.leases, scaling));
      if (again > workers) return report({ keptHigher: 'new-lease' });
    }
    const waits = new BusyWaits(scaling.busyRetry);
    const raising = before !== undefined && workers > before;
    let outcome = await scaling.concurrency.set(workers);
    while (!outcome.applied && raising && (await waits.wait()))
      outcome = await scaling.concurrency.set(workers);
    const waited = waits.waits > 0 ? { busyWaits: waits.waits } : {};
    if (!outcome.applied) return report({ set: { workers, outcome }, ...waited });
    // This set may land after a plan's raise and its check: check it as plan checks its own.
    const recheck = await raiseWorkersWithin(deps.leases, scaling, waits);
    const changed =
      recheck.raisedTo !== undefined ||
      recheck.busyWaits !== undefined ||
      recheck.deferred !== undefined ||
      recheck.error !== undefined;
    return report({
      set: { workers, outcome },
      ...waited,
      ...(changed ? { recheck } : {}),
      // The limit may be below what a lease needs: fail the invocation so the alarm sees it.
      ...(recheck.error === undefined ? {} : { error: recheck.error }),
    });
  } catch (error) {
    return report({ error: describeError(error) });
  }
}

/** One workers lease: forgotten when long released, released when its run is over or silent. */
async function reviewWorkersLease(
  deps: WorkersSweepDeps,
  scaling: WorkerScaling,
  lease: CapacityLease,
  now: Date,
): Promise<LeaseLiveness | 'forgotten'> {
  const nowMs = now.getTime();
  if (lease.releasedAt !== undefined) {
    if (nowMs - Date.parse(lease.releasedAt) <= RELEASED_KEPT_MS) return 'released';
    await deps.leases.forget(WORKERS_LEASE_COMPONENT, lease.runId);
    return 'forgotten';
  }
  const run = await deps.runs.getRun(lease.runId);
  const seen = await noteRunProgress(deps.leases, lease, run, now.toISOString());
  const liveness = leaseLiveness(seen, run, { leaseStaleSeconds: scaling.leaseStaleSeconds }, nowMs);
  if (liveness === 'live') return liveness;
  const at =
    liveness === 'run-finished' && run?.finishedAt && Date.parse(run.finishedAt) <= nowMs
      ? run.finishedAt
      : now.toISOString();
  await deps.leases.release(WORKERS_LEASE_COMPONENT, lease.runId, at, 'sweeper');
  return liveness;
}

/**
 * Records a unit finishing since the last sweep as progress on the lease (so a long run is
 * not taken for silent); returns the lease as it now counts.
 */
export async function noteRunProgress(
  leases: CapacityLeases,
  lease: CapacityLease,
  run: RunState | undefined,
  nowIso: string,
): Promise<CapacityLease> {
  if (run === undefined) return lease;
  const terminal = run.doneUnits + run.failedUnits;
  if (lease.seenTerminalUnits === terminal) return lease;
  // A first look at a run with nothing finished only sets the mark; any change is progress.
  const progressAt =
    lease.seenTerminalUnits === undefined && terminal === 0 ? (lease.progressAt ?? lease.takenAt) : nowIso;
  await leases.markProgress(lease.component, lease.runId, terminal, progressAt);
  return { ...lease, seenTerminalUnits: terminal, progressAt };
}
