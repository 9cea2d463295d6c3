import type { ComponentCopies } from '../ports/capacity-control.ts';
import type { CapacityLease, CapacityLeases } from '../ports/capacity-leases.ts';

/**
 * How copies came to count a needed on-demand lease, as a look at the component tells:
 * - `{ at }`: a raise that counted it was applied at `at`; or the desired copies covered it
 *   but are not all serving yet, so a raise this look cannot date asked for them, no later
 *   than `at` (a concurrent sweep's or plan's, whose own record may not have landed yet);
 * - `serving`: copies serving covered it (another run's, or a kept cooldown's): it was held
 *   from its mark, and no raise was needed.
 */
export type CopiesRaisedBy = { readonly at: Date } | 'serving';

/**
 * What a look whose desired copies cover the leases' need (`needed`) says of when they were
 * asked for: as many copies serving as needed were up before the leases' marks could be
 * served (`serving`: held from the mark); copies still starting were asked for by a raise
 * this look cannot date, no later than `now` (a concurrent sweep's or plan's, whose own
 * record may not have landed yet: dating it at the mark would charge the wait for it again).
 */
export function coveredBy(copies: ComponentCopies, needed: number, now: Date = new Date()): CopiesRaisedBy {
  return copies.currentCopies >= needed ? 'serving' : { at: now };
}

/**
 * Records on each needed on-demand lease of `leases` without one when its copies were first
 * asked for (`raisedAt`, docs/capacity.md, "What a run is charged"), so the run is charged
 * from then rather than from its mark: SageMaker bills a copy from the set that asks for it,
 * not from the unit that asked the sweeper. Never before the mark: covered by serving copies
 * it is the mark (`neededAt`); otherwise the later of the mark and `by.at`.
 *
 * Call it only once the control plane answered: after a set it applied, or a description
 * whose desired count covers the leases. A refused (busy) or failed set records nothing, and
 * the lease keeps waiting for the raise that lands. One conditional write per lease, tied to
 * the mark read (`markRaised`): concurrent sweeps, plans and retries record the first time
 * only, and a lease released, or renewed and marked again since `leases` was read, is left.
 *
 * @returns the run ids whose lease this call recorded
 * @throws the lease store's errors
 */
export async function noteCopiesRaised(
  store: CapacityLeases,
  leases: readonly CapacityLease[],
  by: CopiesRaisedBy,
): Promise<string[]> {
  const recorded: string[] = [];
  for (const lease of leases) {
    const { neededAt } = lease;
    if (!lease.onDemand || neededAt === undefined || lease.raisedAt !== undefined) continue;
    if (lease.releasedAt !== undefined) continue;
    const raisedAt =
      by === 'serving' || by.at.getTime() < Date.parse(neededAt) ? neededAt : by.at.toISOString();
    if (await store.markRaised(lease.component, lease.runId, neededAt, raisedAt)) recorded.push(lease.runId);
  }
  return recorded;
}
