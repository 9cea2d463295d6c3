import type { RunState } from '../domain/types.ts';
import { describeError } from '../errors/errors.ts';
import type { CapacityControl, ComponentCopies, SetCopiesOutcome } from '../ports/capacity-control.ts';
import type { CapacityLease, CapacityLeases } from '../ports/capacity-leases.ts';
import type { RunStore } from '../ports/run-store.ts';
import { type CooldownReason, cooldownAfterRelease } from './cooldown.ts';
import { decideCopies, floorCopies } from './copies.ts';
import { type LeaseLiveness, leaseLiveness } from './lease-liveness.ts';
import { type PipelineCapacity, schedulesOf } from './names.ts';
import type { ScheduleSpec } from './next-tick.ts';
import { heldSeconds } from './run-capacity.ts';

export interface SweepDeps {
  readonly leases: CapacityLeases;
  readonly control: CapacityControl;
  readonly runs: Pick<RunStore, 'getRun'>;
}

export interface SweepOptions {
  /**
   * How long past the end of the cooldown copies may still be up with no live lease
   * before it counts as capacity without a run (`CapacityWithoutRun`): the sweep after the
   * cooldown sets 0 copies, and serving copies take a little while to go. The alarm then
   * waits for 3 such sweeps in a row (infra), so a net that does not scale in is seen
   * about 5 minutes after the cooldown ends.
   * @default 120
   */
  readonly graceSeconds?: number;
  /** Released leases older than this are deleted (finalize no longer needs them). @default 7 days */
  readonly keepReleasedSeconds?: number;
  /**
   * How long after its finalize a run reopened by a redrive gets its lease back: each sweep
   * reads the run of every lease finalize released within this window (one read each).
   * @default 1 day
   */
  readonly renewWindowSeconds?: number;
}

/** What one sweep found and did for one inference component. */
export interface ComponentSweep {
  readonly component: string;
  /** Runs whose leases count. */
  readonly liveLeases: readonly string[];
  /** Leases this sweep released, each with why. */
  readonly leaked: readonly { readonly runId: string; readonly reason: LeaseLiveness }[];
  /** Released leases deleted as old. */
  readonly forgotten: number;
  /** Runs reopened by a redrive whose released lease this sweep held again. */
  readonly renewed: readonly string[];
  /** The copies as SageMaker reported them before any change (absent when describe failed). */
  readonly before?: ComponentCopies;
  /** The copies the component should have. */
  readonly copies?: number;
  /** When set, the copies asked for, and what SageMaker did. */
  readonly set?: { readonly copies: number; readonly outcome: SetCopiesOutcome };
  readonly coolingDown: boolean;
  /** Whether the last release keeps the cooldown, and why (`cooldownAfterRelease`); absent before any release. */
  readonly cooldown?: CooldownReason;
  /**
   * Copies were up with no live lease past the cooldown and its grace: the safety net's
   * alarm signal (1 in `CapacityWithoutRun`). A sweep that fixes it still reports it.
   */
  readonly capacityWithoutRun: boolean;
  /** What failed (this component only; the others are still swept). */
  readonly error?: string;
}

const DAY_SECONDS = 86_400;

/**
 * The safety net, run every minute: for each inference component, releases leaked leases
 * (run gone, finished, or silent for `leaseStaleSeconds`), works out the copies the live
 * leases and the cooldown call for, and asks SageMaker for them when it has a different
 * desired count. One component's failure is reported in its entry and never stops the
 * others: a throw here would leave every other GPU billing.
 */
export async function sweepCapacity(
  deps: SweepDeps,
  capacities: readonly PipelineCapacity[],
  now: Date,
  options: SweepOptions = {},
): Promise<ComponentSweep[]> {
  const sweeps: ComponentSweep[] = [];
  for (const capacity of distinctComponents(capacities)) {
    sweeps.push(
      await sweepComponent(deps, capacity, schedulesOf(capacities, capacity.componentName), now, options),
    );
  }
  return sweeps;
}

/** One entry per component (pipelines sharing an endpoint share its component: the first one's config counts). */
export function distinctComponents(capacities: readonly PipelineCapacity[]): PipelineCapacity[] {
  const seen = new Map<string, PipelineCapacity>();
  for (const capacity of capacities)
    if (!seen.has(capacity.componentName)) seen.set(capacity.componentName, capacity);
  return [...seen.values()];
}

async function sweepComponent(
  deps: SweepDeps,
  capacity: PipelineCapacity,
  schedules: readonly ScheduleSpec[],
  now: Date,
  options: SweepOptions,
): Promise<ComponentSweep> {
  const component = capacity.componentName;
  const nowMs = now.getTime();
  const nowIso = now.toISOString();
  const live: CapacityLease[] = [];
  const leaked: { runId: string; reason: LeaseLiveness }[] = [];
  const renewed: string[] = [];
  let forgotten = 0;
  let before: ComponentCopies | undefined;
  let copies: number | undefined;
  let set: ComponentSweep['set'];
  let coolingDown = false;
  let cooldown: CooldownReason | undefined;
  let capacityWithoutRun = false;
  try {
    const leases = await deps.leases.list(component);
    const state = await deps.leases.state(component);
    let lastReleasedAt = msOf(state.lastReleasedAt);
    const cooldownAfter = (releasedAt: number) =>
      cooldownAfterRelease({ capacity: capacity.capacity, schedules, state, releasedAt });
    for (const lease of leases) {
      if (lease.releasedAt !== undefined) {
        lastReleasedAt = Math.max(lastReleasedAt ?? 0, msOf(lease.releasedAt) ?? 0);
        const keep = (options.keepReleasedSeconds ?? 7 * DAY_SECONDS) * 1000;
        const age = nowMs - (msOf(lease.releasedAt) ?? nowMs);
        if (age > keep) {
          await deps.leases.forget(component, lease.runId);
          forgotten += 1;
          continue;
        }
        // A run whose finalize released its lease runs again only when a redrive reopened it.
        if (lease.releasedBy !== 'finalize' || age > (options.renewWindowSeconds ?? DAY_SECONDS) * 1000)
          continue;
        if ((await deps.runs.getRun(lease.runId))?.status !== 'running') continue;
        // The earlier hold is charged as its finalize charged it: with the cooldown only if kept.
        const charged = cooldownAfter(msOf(lease.releasedAt) ?? nowMs).keep
          ? capacity.capacity.cooldownSeconds
          : 0;
        const prior = (lease.priorSeconds ?? 0) + heldSeconds(lease) + charged;
        const again = await deps.leases.renew(lease, nowIso, prior);
        if (again !== undefined && again.releasedAt === undefined) {
          live.push(again);
          renewed.push(lease.runId);
        }
        continue;
      }
      const run = await deps.runs.getRun(lease.runId);
      const seen = await noteProgress(deps.leases, lease, run, nowIso);
      const liveness = leaseLiveness(seen, run, capacity.capacity, nowMs);
      if (liveness === 'live') {
        live.push(seen);
        continue;
      }
      // A finished run's lease ends when the run did; any other leak ends now.
      const at =
        liveness === 'run-finished' && run?.finishedAt && Date.parse(run.finishedAt) <= nowMs
          ? run.finishedAt
          : nowIso;
      const released = await deps.leases.release(component, lease.runId, at, 'sweeper');
      if (released?.releasedBy === 'sweeper') leaked.push({ runId: lease.runId, reason: liveness });
      lastReleasedAt = Math.max(lastReleasedAt ?? 0, msOf(released?.releasedAt) ?? 0);
    }

    before = await deps.control.describe(component);
    if (before.currentCopies >= 1)
      for (const lease of live)
        if (lease.readyAt === undefined) await deps.leases.markReady(component, lease.runId, nowIso);

    const kept = lastReleasedAt === undefined ? undefined : cooldownAfter(lastReleasedAt);
    cooldown = kept?.reason;
    const decision = decideCopies({
      capacity: capacity.capacity,
      liveCopies: live.map((l) => l.copies),
      desiredCopies: before.desiredCopies,
      lastReleasedAt,
      keepCooldown: kept?.keep ?? true,
      now: nowMs,
    });
    copies = decision.copies;
    coolingDown = decision.coolingDown;
    const floor = floorCopies(capacity.capacity);
    const graceMs = (options.graceSeconds ?? 120) * 1000;
    capacityWithoutRun =
      live.length === 0 &&
      Math.max(before.desiredCopies, before.currentCopies) > floor &&
      nowMs >= (decision.cooldownEndsAt ?? 0) + graceMs;
    // Lowering: a plan may have taken a lease (and raised the copies) since the leases were
    // read; look again so this sweep does not undo it (the next sweep counts the new lease).
    const lowering = decision.copies < before.desiredCopies;
    const known = new Set([...live.map((l) => l.runId), ...leaked.map((l) => l.runId)]);
    const newcomer =
      lowering &&
      (await deps.leases.list(component)).some((l) => l.releasedAt === undefined && !known.has(l.runId));
    if (decision.copies !== before.desiredCopies && !newcomer) {
      set = { copies: decision.copies, outcome: await deps.control.setCopies(component, decision.copies) };
    }
    return {
      component,
      liveLeases: live.map((l) => l.runId),
      leaked,
      forgotten,
      renewed,
      before,
      copies,
      ...(set && { set }),
      coolingDown,
      ...(cooldown && { cooldown }),
      capacityWithoutRun,
    };
  } catch (error) {
    return {
      component,
      liveLeases: live.map((l) => l.runId),
      leaked,
      forgotten,
      renewed,
      ...(before && { before }),
      ...(copies === undefined ? {} : { copies }),
      ...(set && { set }),
      coolingDown,
      ...(cooldown && { cooldown }),
      // Worked out before the failing call: a net that keeps failing raises the alarm after the grace.
      capacityWithoutRun,
      error: describeError(error),
    };
  }
}

/** Records a unit finishing since the last sweep as progress on the lease; returns the lease as it now counts. */
async function noteProgress(
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

function msOf(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}
