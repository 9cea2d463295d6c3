import type { SetWorkersOutcome, WorkerConcurrency } from '../../shared/capacity/worker-concurrency.ts';

/**
 * The work event source's limit, in memory, as Lambda holds it: the last set wins, whatever
 * it replaced. `sets` records every limit asked for; `busy` makes a set refused, as Lambda
 * refuses an update while an earlier one is under way.
 */
export class MemoryWorkerConcurrency implements WorkerConcurrency {
  readonly sets: number[] = [];
  busy = false;
  constructor(public maximum: number | undefined) {}
  async current(): Promise<number | undefined> {
    return this.maximum;
  }
  async set(maximum: number): Promise<SetWorkersOutcome> {
    if (this.busy) return { applied: false, reason: 'The operation cannot be performed at this time.' };
    this.sets.push(maximum);
    this.maximum = maximum;
    return { applied: true };
  }
}
