import type { RunState, RunSummary, UnitCounts, UnitState, WorkUnit } from '../domain/types.ts';

export interface UnitCompletion {
  /** False when another delivery already completed this unit (nothing was counted). */
  readonly recorded: boolean;
  /** True for exactly one completion: the one that made every unit terminal. */
  readonly finishedRun: boolean;
}

/** Run and unit state (DynamoDB deployed; a local store or dynalite on one machine). */
export interface RunStore {
  createRun(run: RunState, units: readonly WorkUnit[]): Promise<void>;
  getRun(runId: string): Promise<RunState | undefined>;
  listRuns(limit?: number): Promise<RunState[]>;
  listUnits(runId: string): Promise<UnitState[]>;
  /** Counts a delivery of the unit (attempts + 1) and marks it running unless already terminal. */
  startUnit(runId: string, unitId: string): Promise<UnitState | undefined>;
  /** Conditionally marks the unit succeeded and counts it toward the run, at most once. */
  completeUnit(
    runId: string,
    unitId: string,
    result: { counts: UnitCounts; actualCost: number; outputKeys: string[] },
  ): Promise<UnitCompletion>;
  /** Records the last error of an attempt (the unit stays retryable). */
  recordUnitError(runId: string, unitId: string, error: string): Promise<void>;
  /** Conditionally marks the unit failed for good (dead-lettered) and counts it toward the run, at most once. */
  failUnit(runId: string, unitId: string, error: string): Promise<UnitCompletion>;
  /** Moves the run from running to its final status; true only for the one caller that made the move. */
  finishRun(runId: string, summary: RunSummary): Promise<boolean>;
}
