import type { WorkUnit } from '../domain/types.ts';

/** Carries unit descriptors to workers and finalize requests to the finalizer (SQS deployed). */
export interface WorkQueue {
  sendUnits(units: readonly WorkUnit[]): Promise<void>;
  requestFinalize(runId: string): Promise<void>;
}
