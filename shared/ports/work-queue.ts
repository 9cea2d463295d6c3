import type { WorkUnit } from '../domain/types.ts';

/** Carries unit descriptors to workers and finalize requests to the finalizer (SQS deployed). */
export interface WorkQueue {
  sendUnits(units: readonly WorkUnit[]): Promise<void>;
  requestFinalize(runId: string): Promise<void>;
  /**
   * Sends one unit again as a new message, delivered after `delaySeconds` (0 to 900, SQS's
   * `DelaySeconds` range): how a unit waits for a cold endpoint without a worker sleeping
   * and without spending the receive count of its current message. Optional so that test
   * doubles need not have it; a worker whose queue lacks it lets the warming error through
   * as an ordinary failed delivery.
   */
  sendUnitLater?(unit: WorkUnit, delaySeconds: number): Promise<void>;
}

/** The longest delay SQS takes on one message (`DelaySeconds`). */
export const MAX_SEND_DELAY_SECONDS = 900;
