import type { CapacityConfig, PipelineConfig } from '../config/pipeline-config.ts';
import type { CapacityLease } from '../ports/capacity-leases.ts';

/**
 * The copies a run asks for: enough to do its estimated work within `targetRunSeconds` at
 * `workPerSecondPerCopy`, at least 1 and at most `maxCopies`. Without a per-copy figure
 * there is nothing to size by, so a run asks for 1.
 */
export function copiesForRun(estimatedWork: number, capacity: CapacityConfig): number {
  const perCopy = capacity.workPerSecondPerCopy;
  if (perCopy === undefined || !Number.isFinite(estimatedWork) || estimatedWork <= 0) return 1;
  const wanted = Math.ceil(estimatedWork / (perCopy * capacity.targetRunSeconds));
  return Math.max(1, Math.min(capacity.maxCopies, wanted));
}

/** Copies kept with no run at all: `minCopies` always-on (never above `maxCopies`), else 0. */
export function floorCopies(capacity: CapacityConfig): number {
  return capacity.mode === 'always-on' ? Math.min(capacity.minCopies, capacity.maxCopies) : 0;
}

/** What live leases need together: the sum of their copies, capped at `maxCopies`, never under the floor. */
export function neededCopies(capacity: CapacityConfig, liveCopies: readonly number[]): number {
  const sum = liveCopies.reduce((total, copies) => total + copies, 0);
  return Math.max(floorCopies(capacity), Math.min(capacity.maxCopies, sum));
}

export interface CopiesDecisionInput {
  readonly capacity: CapacityConfig;
  /** Copies of each live lease. */
  readonly liveCopies: readonly number[];
  /** What the component is asked to run now (DesiredCopyCount). */
  readonly desiredCopies: number;
  /** Epoch ms of the latest release of any lease of the component; undefined if none ever was. */
  readonly lastReleasedAt: number | undefined;
  /**
   * Whether that release keeps the copies for `cooldownSeconds` (see `cooldownAfterRelease`);
   * when false the cooldown ends at the release. @default true
   */
  readonly keepCooldown?: boolean;
  readonly now: number;
}

export interface CopiesDecision {
  /** The copies the component should be asked for. */
  readonly copies: number;
  /** Epoch ms the cooldown of the last release ends (undefined without a release). */
  readonly cooldownEndsAt: number | undefined;
  /** True while copies freed by a release are kept for a following run. */
  readonly coolingDown: boolean;
}

/**
 * The copies a component should have: what its live leases need; and, within
 * `cooldownSeconds` of the last release when that release keeps its cooldown, no fewer
 * than it has now (so back-to-back runs do not pay a second cold start), still never above
 * `maxCopies`. Once the cooldown has passed (or was not kept) with no live lease: 0
 * (`run-scoped`) or `minCopies` (`always-on`).
 */
export function decideCopies(input: CopiesDecisionInput): CopiesDecision {
  const { capacity } = input;
  const needed = neededCopies(capacity, input.liveCopies);
  const cooldownMs = input.keepCooldown === false ? 0 : capacity.cooldownSeconds * 1000;
  const cooldownEndsAt = input.lastReleasedAt === undefined ? undefined : input.lastReleasedAt + cooldownMs;
  const coolingDown = cooldownEndsAt !== undefined && input.now < cooldownEndsAt;
  const kept = coolingDown ? Math.min(capacity.maxCopies, Math.max(0, input.desiredCopies)) : 0;
  return { copies: Math.max(needed, kept), cooldownEndsAt, coolingDown };
}

/**
 * Whether a run of `config` takes its lease on demand where the workers can ask for copies:
 * an incremental embed run (`incremental.enabled`), whose units call the endpoint only for
 * chunks the chunk index does not carry forward, so a re-drop of unchanged text calls it
 * never (docs/capacity.md, "Copies on demand").
 */
export function copiesOnDemand(config: PipelineConfig): boolean {
  return config.kind === 'embed' && config.incremental.enabled;
}

/**
 * The copies a lease holds towards the component's count: its copies, or 0 for an on-demand
 * lease no worker has marked needed yet. (The workers that follow the copies count a lease's
 * `copies` either way: its units run, and compare their chunks, before any is embedded.)
 */
export function heldCopies(lease: CapacityLease): number {
  return lease.onDemand && lease.neededAt === undefined ? 0 : lease.copies;
}

/**
 * When the lease started holding copies: `takenAt`, or for an on-demand lease the later of
 * `takenAt` (a renewed lease is held again from its renewal) and when its copies were asked
 * for: `raisedAt` (the raise that first counted it, or its mark when copies already up
 * covered it: `noteCopiesRaised`), else `neededAt` (a lease stored before `raisedAt` was
 * recorded, or one no raise counted before its run ended: charged from its mark, the wait
 * for the sweeper included). Undefined for an on-demand lease never marked needed, which
 * held none.
 */
export function copiesHeldFrom(lease: CapacityLease): string | undefined {
  if (!lease.onDemand) return lease.takenAt;
  if (lease.neededAt === undefined) return undefined;
  const asked = lease.raisedAt ?? lease.neededAt;
  return Date.parse(asked) > Date.parse(lease.takenAt) ? asked : lease.takenAt;
}
