/**
 * What a request for a new worker limit did: applied, or not applied because the event
 * source is busy with an earlier change (no fault: the next sweep asks again).
 */
export type SetWorkersOutcome =
  | { readonly applied: true }
  | { readonly applied: false; readonly reason: string };

/**
 * (secondary port) The most workers the work queue's event source runs at once (deployed:
 * the SQS event source mapping's `ScalingConfig.MaximumConcurrency`, through
 * `lambda:GetEventSourceMapping` / `lambda:UpdateEventSourceMapping` on that one mapping).
 * Plan raises it when a run takes a lease; the capacity sweeper sets it to what the live
 * leases need, down to the floor when none is live (docs/capacity.md, "Workers follow the
 * copies"). Locally there is no event source: nothing implements it and nothing is set.
 */
export interface WorkerConcurrency {
  /**
   * The limit now; undefined when the event source has none (it then scales up to the
   * account's unreserved concurrency).
   * @throws WorkerConcurrencyError
   */
  current(): Promise<number | undefined>;
  /** @throws WorkerConcurrencyError for anything but a busy event source (see {@link SetWorkersOutcome}) */
  set(maximum: number): Promise<SetWorkersOutcome>;
}
