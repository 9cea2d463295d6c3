import type { CapacityConfig } from '../config/pipeline-config.ts';
import type { RunState } from '../domain/types.ts';
import type { CapacityLease } from '../ports/capacity-leases.ts';

/** Why a lease counts, or why the sweeper may release it. */
export type LeaseLiveness =
  /** Its run is running and progressed within `leaseStaleSeconds`. */
  | 'live'
  /** Released already (by finalize or an earlier sweep). */
  | 'released'
  /** Its run finished but the lease was not released (a finalize that died halfway). */
  | 'run-finished'
  /** No such run in the run store. */
  | 'run-missing'
  /** The run is still `running` but nothing happened for `leaseStaleSeconds`. */
  | 'stale';

const ms = (iso: string | undefined): number => (iso === undefined ? 0 : Date.parse(iso) || 0);

/**
 * Last sign of life of a lease's run: taken, marked needed (an on-demand lease: its copies
 * start from then, so its warm-up, bounded by `warmupLimitSeconds`, must fit in
 * `leaseStaleSeconds` from the mark, as a lease raised at plan's does from `takenAt`),
 * capacity ready, or a unit finishing (seen by the sweeper).
 */
export function lastProgressAt(lease: CapacityLease): number {
  return Math.max(ms(lease.takenAt), ms(lease.neededAt), ms(lease.readyAt), ms(lease.progressAt));
}

/**
 * Whether a lease still holds capacity. A lease whose run is gone, finished, or silent for
 * `leaseStaleSeconds` has leaked: the sweeper releases it so that capacity goes to zero.
 * `leaseStaleSeconds` must exceed both the longest unit and `warmupLimitSeconds`, since a
 * run waiting for capacity shows no progress (docs/capacity.md).
 */
export function leaseLiveness(
  lease: CapacityLease,
  run: RunState | undefined,
  capacity: Pick<CapacityConfig, 'leaseStaleSeconds'>,
  now: number,
): LeaseLiveness {
  if (lease.releasedAt !== undefined) return 'released';
  if (run === undefined) return 'run-missing';
  if (run.status !== 'running') return 'run-finished';
  if (now - lastProgressAt(lease) > capacity.leaseStaleSeconds * 1000) return 'stale';
  return 'live';
}
