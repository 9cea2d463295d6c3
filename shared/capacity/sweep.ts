import { describeError } from '../errors/errors.ts';
import type { CapacityControl, ComponentCopies, SetCopiesOutcome } from '../ports/capacity-control.ts';
import type { CapacityLease, CapacityLeases, ComponentLeaseState } from '../ports/capacity-leases.ts';
import type { RunStore } from '../ports/run-store.ts';
import { type CooldownDecision, type CooldownReason, cooldownAfterRelease } from './cooldown.ts';
import {
  type CopiesDecision,
  copiesHeldFrom,
  decideCopies,
  floorCopies,
  heldCopies,
  neededCopies,
} from './copies.ts';
import { type LeaseLiveness, leaseLiveness } from './lease-liveness.ts';
import { type PipelineCapacity, schedulesOf } from './names.ts';
import type { ScheduleSpec } from './next-tick.ts';
import { type CopiesRaisedBy, coveredBy, noteCopiesRaised } from './raised.ts';
import { type CopiesRaised, heldSeconds, raiseCopiesToLeases } from './run-capacity.ts';
import { noteRunProgress } from './workers.ts';

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
  /**
   * Copies of each live lease, for the workers that follow them (`sweepWorkers`); absent
   * when the sweep failed before its leases were reviewed.
   */
  readonly liveCopies?: readonly number[];
  /** Leases this sweep released, each with why. */
  readonly leaked: readonly { readonly runId: string; readonly reason: LeaseLiveness }[];
  /** Released leases deleted as old. */
  readonly forgotten: number;
  /** Runs reopened by a redrive whose released lease this sweep held again. */
  readonly renewed: readonly string[];
  /**
   * Runs whose on-demand lease this sweep recorded as raised (`raisedAt`: by its set, or
   * covered by the copies asked for before it, `coveredBy`); absent when none. The check
   * after a set records its own and does not report them here.
   */
  readonly raised?: readonly string[];
  /** The copies as SageMaker reported them before any change (absent when describe failed). */
  readonly before?: ComponentCopies;
  /** The copies the component should have. */
  readonly copies?: number;
  /** When set, the copies asked for, and what SageMaker did. */
  readonly set?: { readonly copies: number; readonly outcome: SetCopiesOutcome };
  /** The check after an applied set, when it raised the copies again (a plan took a lease meanwhile). */
  readonly recheck?: CopiesRaised;
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

function sweepComponent(
  deps: SweepDeps,
  capacity: PipelineCapacity,
  schedules: readonly ScheduleSpec[],
  now: Date,
  options: SweepOptions,
): Promise<ComponentSweep> {
  return new ComponentSweeper(deps, capacity, schedules, now, options).sweep();
}

/**
 * One sweep of one component, its findings kept as they come so that a failure part way
 * reports what was already done: the leases reviewed (old released ones forgotten,
 * reopened runs held again, leaks released), the serving copies marked ready, the copies
 * decided, then asked for.
 */
class ComponentSweeper {
  private readonly component: string;
  private readonly nowMs: number;
  private readonly nowIso: string;
  private readonly live: CapacityLease[] = [];
  private readonly leaked: { runId: string; reason: LeaseLiveness }[] = [];
  private readonly renewed: string[] = [];
  private readonly raised: string[] = [];
  private forgotten = 0;
  private reviewed = false;
  private lastReleasedAt: number | undefined;
  /** Release times (epoch ms) of leases that held copies, and of on-demand leases never needed. */
  private readonly heldReleases = new Set<number>();
  private readonly idleReleases = new Set<number>();
  private leaseState: ComponentLeaseState | undefined;
  private before: ComponentCopies | undefined;
  private copies: number | undefined;
  private set: ComponentSweep['set'];
  private recheck: CopiesRaised | undefined;
  private coolingDown = false;
  private cooldown: CooldownReason | undefined;
  private capacityWithoutRun = false;

  constructor(
    private readonly deps: SweepDeps,
    private readonly capacity: PipelineCapacity,
    private readonly schedules: readonly ScheduleSpec[],
    now: Date,
    private readonly options: SweepOptions,
  ) {
    this.component = capacity.componentName;
    this.nowMs = now.getTime();
    this.nowIso = now.toISOString();
  }

  async sweep(): Promise<ComponentSweep> {
    try {
      await this.reviewLeases();
      this.reviewed = true;
      const before = await this.deps.control.describe(this.component);
      this.before = before;
      await this.markReady(before);
      const decision = this.decide(before);
      await this.applyCopies(before, decision);
      return this.report();
    } catch (error) {
      return this.report({ error });
    }
  }

  private async reviewLeases(): Promise<void> {
    const leases = await this.deps.leases.list(this.component);
    this.leaseState = await this.deps.leases.state(this.component);
    for (const lease of leases) {
      if (lease.releasedAt === undefined) await this.reviewHeld(lease);
      else await this.reviewReleased(lease, lease.releasedAt);
    }
    this.lastReleasedAt = this.latestRelease(msOf(this.leaseState.lastReleasedAt));
  }

  /**
   * The release the cooldown runs from: the latest of a lease that held copies. An on-demand
   * lease never needed kept none, so its release neither starts nor extends a cooldown:
   * otherwise a stream of unchanged re-drops, each released within the cooldown of the one
   * before, would keep copies another run left up for good, charged to no run and never
   * past a cooldown for the safety net to see. The state's `lastReleasedAt` counts unless
   * only such a lease was released then (a release this sweep did not list counts).
   */
  private latestRelease(stateLast: number | undefined): number | undefined {
    const idle =
      stateLast !== undefined && this.idleReleases.has(stateLast) && !this.heldReleases.has(stateLast);
    const times = [...this.heldReleases, ...(stateLast === undefined || idle ? [] : [stateLast])];
    return times.length === 0 ? undefined : Math.max(...times);
  }

  private cooldownAfter(releasedAt: number): CooldownDecision {
    const { capacity } = this.capacity;
    return cooldownAfterRelease({ capacity, schedules: this.schedules, state: this.leaseState!, releasedAt });
  }

  private noteRelease(lease: CapacityLease | undefined): void {
    const at = msOf(lease?.releasedAt);
    if (at === undefined) return;
    if (copiesHeldFrom(lease!) === undefined) this.idleReleases.add(at);
    else this.heldReleases.add(at);
  }

  /** A released lease: forgotten when old, held again when a redrive reopened its run. */
  private async reviewReleased(lease: CapacityLease, releasedAt: string): Promise<void> {
    this.noteRelease(lease);
    const keep = (this.options.keepReleasedSeconds ?? 7 * DAY_SECONDS) * 1000;
    const age = this.nowMs - (msOf(releasedAt) ?? this.nowMs);
    if (age > keep) {
      await this.deps.leases.forget(this.component, lease.runId);
      this.forgotten += 1;
      return;
    }
    // A run whose finalize released its lease runs again only when a redrive reopened it.
    if (lease.releasedBy !== 'finalize' || age > (this.options.renewWindowSeconds ?? DAY_SECONDS) * 1000)
      return;
    if ((await this.deps.runs.getRun(lease.runId))?.status !== 'running') return;
    // The earlier hold is charged as its finalize charged it: with the cooldown only if kept
    // (and only if it held copies at all: an on-demand lease never needed held none).
    const charged =
      copiesHeldFrom(lease) !== undefined && this.cooldownAfter(msOf(releasedAt) ?? this.nowMs).keep
        ? this.capacity.capacity.cooldownSeconds
        : 0;
    const prior = (lease.priorSeconds ?? 0) + heldSeconds(lease) + charged;
    const again = await this.deps.leases.renew(lease, this.nowIso, prior);
    if (again !== undefined && again.releasedAt === undefined) {
      this.live.push(again);
      this.renewed.push(lease.runId);
    }
  }

  /** A held lease: live, or released as leaked (a finished run's from when it finished, any other from now). */
  private async reviewHeld(lease: CapacityLease): Promise<void> {
    const run = await this.deps.runs.getRun(lease.runId);
    const seen = await noteRunProgress(this.deps.leases, lease, run, this.nowIso);
    const liveness = leaseLiveness(seen, run, this.capacity.capacity, this.nowMs);
    if (liveness === 'live') {
      this.live.push(seen);
      return;
    }
    const at =
      liveness === 'run-finished' && run?.finishedAt && Date.parse(run.finishedAt) <= this.nowMs
        ? run.finishedAt
        : this.nowIso;
    const released = await this.deps.leases.release(this.component, lease.runId, at, 'sweeper');
    if (released?.releasedBy === 'sweeper') this.leaked.push({ runId: lease.runId, reason: liveness });
    this.noteRelease(released);
  }

  /** Once a copy serves, the live leases holding copies are ready (their runs' waits end). */
  private async markReady(before: ComponentCopies): Promise<void> {
    if (before.currentCopies < 1) return;
    for (const lease of this.live)
      if (lease.readyAt === undefined && heldCopies(lease) > 0)
        await this.deps.leases.markReady(this.component, lease.runId, this.nowIso);
  }

  /** The copies the live leases and the cooldown call for, and whether copies are up with no run. */
  private decide(before: ComponentCopies): CopiesDecision {
    const { capacity } = this.capacity;
    const kept = this.lastReleasedAt === undefined ? undefined : this.cooldownAfter(this.lastReleasedAt);
    this.cooldown = kept?.reason;
    const decision = decideCopies({
      capacity,
      // An on-demand lease no worker needed yet holds none (its workers still count, `liveCopies`).
      liveCopies: this.live.map(heldCopies),
      desiredCopies: before.desiredCopies,
      lastReleasedAt: this.lastReleasedAt,
      keepCooldown: kept?.keep ?? true,
      now: this.nowMs,
    });
    this.copies = decision.copies;
    this.coolingDown = decision.coolingDown;
    const graceMs = (this.options.graceSeconds ?? 120) * 1000;
    // A live on-demand lease no worker needed holds no copies: copies up for it alone are without a run.
    this.capacityWithoutRun =
      this.live.every((lease) => heldCopies(lease) === 0) &&
      Math.max(before.desiredCopies, before.currentCopies) > floorCopies(capacity) &&
      this.nowMs >= (decision.cooldownEndsAt ?? 0) + graceMs;
    return decision;
  }

  /**
   * Asks for the decided copies when they differ. Lowering: a plan may have taken a lease
   * (and raised the copies) since the leases were read; look again so this sweep does not
   * undo it (the next sweep counts the new lease). Any set can still land after a plan's
   * raise, so an applied one is checked and the copies raised again to what the unreleased
   * leases need (`raiseCopiesToLeases`).
   */
  private async applyCopies(before: ComponentCopies, decision: CopiesDecision): Promise<void> {
    await this.setCopies(before, decision);
    // Recorded after the set, so a lease store failure here never keeps copies from changing.
    // Decided copies are never below what the live leases need: unless this sweep raised
    // them, the desired copies covered every live lease already, and a needed on-demand lease
    // no raise counted was served from its mark when they serve (copies up for another run,
    // or a kept cooldown's: `coveredBy`). A raise refused (busy) records nothing: its leases
    // wait for the one that lands.
    const at = new Date(this.nowMs);
    if (decision.copies <= before.desiredCopies)
      await this.noteRaised(
        coveredBy(before, neededCopies(this.capacity.capacity, this.live.map(heldCopies)), at),
      );
    else if (this.set?.outcome.applied) await this.noteRaised({ at });
    if (this.set?.outcome.applied) await this.checkSet();
  }

  private async setCopies(before: ComponentCopies, decision: CopiesDecision): Promise<void> {
    if (decision.copies === before.desiredCopies) return;
    if (decision.copies < before.desiredCopies && (await this.newcomerLease())) return;
    this.set = {
      copies: decision.copies,
      outcome: await this.deps.control.setCopies(this.component, decision.copies),
    };
  }

  /** The set may land after a plan's raise and its check: check it as plan checks its own. */
  private async checkSet(): Promise<void> {
    const recheck = await raiseCopiesToLeases(this.deps, this.capacity, { now: new Date(this.nowMs) });
    if (recheck.error !== undefined) throw new Error(recheck.error);
    if (recheck.raisedTo !== undefined || recheck.deferred !== undefined) this.recheck = recheck;
  }

  /** Records when the copies of the live leases' needed on-demand leases were asked for (`raisedAt`). */
  private async noteRaised(by: CopiesRaisedBy): Promise<void> {
    this.raised.push(...(await noteCopiesRaised(this.deps.leases, this.live, by)));
  }

  private async newcomerLease(): Promise<boolean> {
    const known = new Set([...this.live.map((l) => l.runId), ...this.leaked.map((l) => l.runId)]);
    const leases = await this.deps.leases.list(this.component);
    return leases.some((l) => l.releasedAt === undefined && !known.has(l.runId));
  }

  /**
   * What the sweep found. After a failure, `capacityWithoutRun` is as worked out before the
   * failing call: a net that keeps failing raises the alarm after the grace.
   */
  private report(failure?: { readonly error: unknown }): ComponentSweep {
    const { before, copies, set, recheck, cooldown } = this;
    return {
      component: this.component,
      liveLeases: this.live.map((l) => l.runId),
      ...(this.reviewed ? { liveCopies: this.live.map((l) => l.copies) } : {}),
      leaked: this.leaked,
      forgotten: this.forgotten,
      renewed: this.renewed,
      ...(this.raised.length > 0 && { raised: this.raised }),
      ...(before && { before }),
      ...(copies === undefined ? {} : { copies }),
      ...(set && { set }),
      ...(recheck && { recheck }),
      coolingDown: this.coolingDown,
      ...(cooldown && { cooldown }),
      capacityWithoutRun: this.capacityWithoutRun,
      ...(failure && { error: describeError(failure.error) }),
    };
  }
}

function msOf(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}
