import type { CapacityConfig } from '../config/pipeline-config.ts';
import type { ComponentLeaseState } from '../ports/capacity-leases.ts';
import { type ScheduleSpec, ticksWithin } from './next-tick.ts';

/** Why copies are kept after the last release, or `none` when they go at once. */
export type CooldownReason =
  /** `cooldown: always`. */
  | 'always'
  /** A schedule of a pipeline on the component ticks within the cooldown. */
  | 'schedule'
  /** The previous release was followed by a new lease within the cooldown. */
  | 'back-to-back'
  /** A schedule on the component could not be read: kept, as a cold start costs more than a cooldown. */
  | 'schedule-unknown'
  | 'none';

export interface CooldownDecision {
  /** Whether copies are kept for `cooldownSeconds` after the release. */
  readonly keep: boolean;
  readonly reason: CooldownReason;
}

export interface CooldownInput {
  readonly capacity: CapacityConfig;
  /** The schedules of every pipeline whose endpoint is this component. */
  readonly schedules: readonly ScheduleSpec[];
  /** The component's state: its `followedRelease`/`followedAt` are its back-to-back history. */
  readonly state: Pick<ComponentLeaseState, 'followedRelease' | 'followedAt'>;
  /** Epoch ms of the release the cooldown would follow. */
  readonly releasedAt: number;
}

/**
 * Whether the last release of a component keeps its copies for `cooldownSeconds` (issue
 * 14: back-to-back runs must not pay two cold starts, and a nightly run must not pay a
 * cooldown no run uses). `always`: kept. `auto`: kept only when a following run is likely:
 * (a) a schedule of a pipeline on the component ticks within `cooldownSeconds` after the
 * release, or (b) the component's previous release was followed by a new lease within
 * `cooldownSeconds`. Otherwise the copies go at the release. A cooldown of 0 keeps nothing.
 *
 * Finalize (which prices the run's cooldown and scales in at once) and the sweeper (which
 * holds or ends the cooldown) both ask this with the same inputs, so they agree.
 */
export function cooldownAfterRelease(input: CooldownInput): CooldownDecision {
  const { capacity } = input;
  if (capacity.cooldownSeconds <= 0) return { keep: false, reason: 'none' };
  if (capacity.cooldown === 'always') return { keep: true, reason: 'always' };
  const after = new Date(input.releasedAt);
  let unknown = false;
  for (const schedule of input.schedules) {
    const ticks = ticksWithin(schedule, after, capacity.cooldownSeconds);
    if (ticks === true) return { keep: true, reason: 'schedule' };
    if (ticks === undefined) unknown = true;
  }
  if (backToBack(input.state, capacity.cooldownSeconds)) return { keep: true, reason: 'back-to-back' };
  if (unknown) return { keep: true, reason: 'schedule-unknown' };
  return { keep: false, reason: 'none' };
}

/** The previous release was followed by a lease within `cooldownSeconds`. */
export function backToBack(
  state: Pick<ComponentLeaseState, 'followedRelease' | 'followedAt'>,
  cooldownSeconds: number,
): boolean {
  if (state.followedRelease === undefined || state.followedAt === undefined) return false;
  const gap = Date.parse(state.followedAt) - Date.parse(state.followedRelease);
  return Number.isFinite(gap) && gap >= 0 && gap <= cooldownSeconds * 1000;
}
