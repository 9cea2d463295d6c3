import type { RunState, RunSummary, UnitCounts, UnitState, WorkUnit } from '../domain/types.ts';

export interface UnitCompletion {
  /** False when another delivery already completed this unit (nothing was counted). */
  readonly recorded: boolean;
  /** True for exactly one completion: the one that made every unit terminal. */
  readonly finishedRun: boolean;
  /**
   * The unit's terminal status after the call: the one this call set, or the one another
   * delivery set first. A completion that lost to `failed` wrote parts for a unit the run
   * does not count, and must take them back.
   */
  readonly unitStatus?: 'succeeded' | 'failed';
}

/** A unit's state plus, when asked for, the descriptor it was planned with. */
export interface StoredUnit extends UnitState {
  /** The unit as planned, so a failed unit can be delivered again (redrive). Absent for units stored without it. */
  readonly descriptor?: WorkUnit;
}

export interface RunReopening {
  /** True for exactly one caller: the one whose conditional write moved the run from `failed` back to `running`. */
  readonly reopened: boolean;
  /** The units brought back to `pending` (with their descriptors), for the caller to deliver again; empty unless reopened. */
  readonly units: StoredUnit[];
}

export interface ListUnitsOptions {
  /** Include each unit's descriptor (bigger reads: packed units list their files). @default false */
  readonly withDescriptors?: boolean;
}

export interface ListRunsOptions {
  /**
   * Include what plan records on each run for its work (`stage`, `stages`, `workPool`,
   * `splitStack`). Deployed, the index that lists runs does not hold them, so each listed run
   * costs one more read: ask only for a short list that shows them. @default false
   */
  readonly withPlan?: boolean;
}

/** Run and unit state (DynamoDB deployed; a local store or dynalite on one machine). */
export interface RunStore {
  /** Stores the run and its units; each unit keeps its full descriptor for redrive. */
  createRun(run: RunState, units: readonly WorkUnit[]): Promise<void>;
  getRun(runId: string): Promise<RunState | undefined>;
  listRuns(limit?: number, options?: ListRunsOptions): Promise<RunState[]>;
  listUnits(runId: string, options?: ListUnitsOptions): Promise<StoredUnit[]>;
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
  /** The summary stored by the finishRun that moved the run (undefined while it runs, or after a redrive reopened it). */
  getSummary(runId: string): Promise<RunSummary | undefined>;
  /**
   * Redrive: brings every failed unit of a `failed` run back to `pending` (no longer
   * counted, attempts and last error kept) and the run back to `running` with its finish
   * and finalize claim cleared, so the redriven units can finish it again. Conditional:
   * of concurrent callers exactly one gets `reopened: true`; a run that is not `failed`
   * is left alone. A call interrupted halfway leaves the run `failed` and the next call
   * completes it.
   */
  reopenFailedRun(runId: string): Promise<RunReopening>;
  /**
   * Checkpoint: adds the unit that continues `unit` (a worker stopping before its time
   * limit hands back the rest) and counts it in the run's `totalUnits`, exactly once, so
   * the run cannot finish before it. Returns the continuation as stored: when an earlier
   * attempt already added one under the same id, that one (its cut point wins).
   */
  addContinuation(runId: string, unit: WorkUnit): Promise<WorkUnit>;
  /** One unit with its descriptor (a point read), or undefined. */
  getUnit(runId: string, unitId: string): Promise<StoredUnit | undefined>;
  /**
   * Stages (shared/jobs): moves a running run from stage `from` to stage `to`, counts
   * `unitCount` more units in `totalUnits` and clears the finalize claim, so the last unit
   * of the new stage claims it again. Conditional: true for the one caller that moved it;
   * false when the run is not running or no longer in `from` (another finalize moved it).
   * A run stored before stages (no stage) is in whatever stage its caller says.
   */
  startStage(runId: string, stage: StageStart): Promise<boolean>;
  /**
   * Stores the units of the stage a run has started (startStage counted them). Units
   * already stored are left as they are, so a finalize that died halfway can store the
   * rest without resetting a unit a worker has taken up.
   */
  addStageUnits(runId: string, units: readonly WorkUnit[]): Promise<void>;
}

/** A run's move to its next stage. */
export interface StageStart {
  readonly from: string;
  readonly to: string;
  /** Units of the new stage. */
  readonly unitCount: number;
}
