import type { CapacityControl } from '../ports/capacity-control.ts';
import type { CapacityLeases } from '../ports/capacity-leases.ts';
import type { PipelineCapacity } from './names.ts';
import { type CopiesRaised, raiseCopiesToLeases } from './run-capacity.ts';

/**
 * What a worker needs to ask for its run's copies (docs/capacity.md, "Copies on demand"):
 * the leases, and the control plane where its role may set copies. Deployed, the work
 * function has no control plane (its role grants no SageMaker control call): its mark is the
 * request, and the capacity sweeper's next pass raises the copies.
 */
export interface CapacityDemandDeps {
  readonly leases: CapacityLeases;
  readonly control?: CapacityControl;
}

/** What asking for a run's copies did. */
export interface CapacityDemanded {
  /** This call marked the lease needed (false: marked before, released, not on demand, or no lease). */
  readonly marked: boolean;
  /** With a control plane, what the raise after marking did (only the marking call raises). */
  readonly raised?: CopiesRaised;
}

/**
 * The step before a unit of an on-demand run sends its first chunks to the endpoint: marks
 * the run's lease needed (one conditional write, a no-op once marked), so from then on the
 * lease counts its copies wherever copies are decided (plan's raises, the sweeper, finalize's
 * check after a scale-in). Of units marking at once, exactly one wins, and only it raises the
 * copies (with `deps.control`); the others, and a raise that was deferred or failed, leave it
 * to the sweeper, which sets what the needed leases call for within a minute. Whoever raises
 * records on the lease when (`raisedAt`): the run is charged from then, not from this mark.
 *
 * @throws the lease store's errors (the delivery fails and is retried, as for any run-store write)
 */
export async function demandRunCapacity(
  deps: CapacityDemandDeps,
  capacity: PipelineCapacity,
  runId: string,
  now: Date,
): Promise<CapacityDemanded> {
  const marked = await deps.leases.markNeeded(capacity.componentName, runId, now.toISOString());
  if (!marked || deps.control === undefined) return { marked };
  return {
    marked,
    raised: await raiseCopiesToLeases({ leases: deps.leases, control: deps.control }, capacity, { now }),
  };
}
