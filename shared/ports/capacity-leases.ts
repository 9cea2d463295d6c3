/**
 * A run's hold on an inference component's copies (issue 14): taken when the run is
 * planned, released when it is finalized (or by the sweeper when the run leaked it).
 * Timestamps are ISO 8601.
 */
export interface CapacityLease {
  readonly runId: string;
  readonly component: string;
  /** Copies the run asked for (see `copiesForRun`). */
  readonly copies: number;
  readonly takenAt: string;
  /** First time plan or the sweeper saw at least one copy serving while the lease was held. */
  readonly readyAt?: string;
  readonly releasedAt?: string;
  /** Who released it: the run's finalize, or the sweeper that found the lease leaked. */
  readonly releasedBy?: 'finalize' | 'sweeper';
  /** Units of the run that were terminal when the sweeper last looked (its progress mark). */
  readonly seenTerminalUnits?: number;
  /** When the sweeper last saw the run progress (a unit finished); `takenAt` until then. */
  readonly progressAt?: string;
  /**
   * Instance-seconds per copy charged for the run's earlier hold, cooldown included, when a
   * redrive reopened the run after its finalize released the lease (see `renew`).
   */
  readonly priorSeconds?: number;
  /**
   * Plan took the lease without raising copies (an incremental embed run, which may find
   * every chunk unchanged): the lease holds none until a worker with chunks to embed marks
   * it needed (`neededAt`, {@link CapacityLeases.markNeeded}). docs/capacity.md, "Copies on demand".
   */
  readonly onDemand?: boolean;
  /** When a worker of an on-demand lease's run first had chunks to send to the endpoint. */
  readonly neededAt?: string;
  /**
   * When copies counting a needed on-demand lease were first asked for: the time a raise
   * that counted it was applied, or `neededAt` when the copies asked for already covered it
   * (no raise needed). The lease is charged from here (`copiesHeldFrom`); absent on leases
   * stored before it was recorded, and while no raise has counted the lease.
   */
  readonly raisedAt?: string;
}

/** Per-component state that outlives the leases. */
export interface ComponentLeaseState {
  readonly component: string;
  /** The latest release of any lease: the cooldown runs from here. */
  readonly lastReleasedAt?: string;
  /**
   * The latest release some lease was taken after, and when the first such lease was taken
   * (`followedAt`): the gap between them tells back-to-back runs (capacity `cooldown: auto`).
   */
  readonly followedRelease?: string;
  readonly followedAt?: string;
}

export interface NewLease {
  readonly runId: string;
  readonly component: string;
  readonly copies: number;
  readonly takenAt: string;
  /** Holds no copies until marked needed (see {@link CapacityLease.onDemand}). */
  readonly onDemand?: boolean;
}

/**
 * (secondary port) Leases on inference component capacity, kept beside the runs (the runs
 * table deployed, a file locally). Every change is conditional, so plans, finalizes and
 * sweepers racing on the same lease never lose or double one.
 */
export interface CapacityLeases {
  /**
   * Takes the run's lease unless it has one: returns the lease as stored, which is the
   * earlier one for a retried plan (its copies and takenAt win). The first lease taken at
   * or after the component's `lastReleasedAt` records that release and its `takenAt` in the
   * state (`followedRelease`, `followedAt`); later takes leave them.
   */
  take(lease: NewLease): Promise<CapacityLease>;
  get(component: string, runId: string): Promise<CapacityLease | undefined>;
  /** Every lease of the component still stored, released ones included, by run id. */
  list(component: string): Promise<CapacityLease[]>;
  /** Sets `readyAt` once (the first caller's time stays); nothing for a lease that does not exist. */
  markReady(component: string, runId: string, readyAt: string): Promise<void>;
  /**
   * Marks an unreleased on-demand lease needed at `neededAt`, once (one conditional write):
   * true only for the call that marked it; false when it was marked already, is released,
   * is not on demand, or does not exist.
   */
  markNeeded(component: string, runId: string, neededAt: string): Promise<boolean>;
  /**
   * Records `raisedAt` on an unreleased on-demand lease still marked needed at `neededAt`
   * (the mark the caller read: a lease renewed and marked again since is left alone), once
   * (one conditional write): true only for the call that set it; false when set already,
   * released, marked at another time or not at all, not on demand, or missing.
   */
  markRaised(component: string, runId: string, neededAt: string, raisedAt: string): Promise<boolean>;
  /** Records that the sweeper saw the run at `terminalUnits` at `at` (only when it changed). */
  markProgress(component: string, runId: string, terminalUnits: number, at: string): Promise<void>;
  /**
   * Releases the lease once and moves the component's `lastReleasedAt` forward to it.
   * Returns the lease as stored: for a second release, the first one's `releasedAt`, so a
   * redelivered finalize reports the same numbers. Undefined when the run holds no lease.
   */
  release(
    component: string,
    runId: string,
    releasedAt: string,
    by: 'finalize' | 'sweeper',
  ): Promise<CapacityLease | undefined>;
  /**
   * Holds a released lease again, from `takenAt`, for a run that is running again (a
   * redrive reopened it): conditional on the release read (`released.releasedAt`), so of
   * racing sweeps one renews and the others get its lease back. `priorSeconds` replaces the
   * lease's (the caller adds the earlier hold to it). An on-demand lease is not needed again
   * (`neededAt` and `raisedAt` go with `readyAt`). Undefined when the lease is gone.
   */
  renew(released: CapacityLease, takenAt: string, priorSeconds: number): Promise<CapacityLease | undefined>;
  /** Deletes a released lease (old ones are pruned); a lease not released is kept. */
  forget(component: string, runId: string): Promise<void>;
  state(component: string): Promise<ComponentLeaseState>;
}
