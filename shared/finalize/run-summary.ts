import {
  addCounts,
  emptyCounts,
  type RunStageSummary,
  type RunState,
  type RunSummary,
  type UnitCounts,
} from '../domain/types.ts';
import type { StageMerged } from '../jobs/job-kind.ts';
import type { StoredUnit } from '../ports/run-store.ts';
import { rejectFailureOf } from './tolerated-rejects.ts';

/** The units' counts summed. */
export function totalCounts(units: readonly StoredUnit[]): UnitCounts {
  const total = emptyCounts();
  for (const unit of units) if (unit.counts) addCounts(total, unit.counts);
  return total;
}

/** A stage as the summary lists it. */
export function stageSummaryOf(name: string, units: readonly StoredUnit[]): RunStageSummary {
  const total = totalCounts(units);
  return {
    name,
    units: units.length,
    failedUnits: units.filter((u) => u.status === 'failed').length,
    records: total.records,
    rejected: total.rejected,
  };
}

/** What the summary is built from: the stage the run ends in, and every unit of the run. */
export interface RunOutcome {
  readonly run: RunState;
  /** The units of the stage the run ends in; its counts are the summary's. */
  readonly stageUnits: readonly StoredUnit[];
  /** `stageUnits` counts after the duplicate-id rule. */
  readonly stageTotal: UnitCounts;
  /** Every unit of every stage; their measurements are the summary's `stats`. */
  readonly allUnits: readonly StoredUnit[];
  readonly stages: readonly RunStageSummary[];
  readonly merged: StageMerged;
  readonly finishedAt: Date;
  /**
   * The pipeline's `run.toleratedRejectPercent`; absent when finalize has no config for the
   * run's pipeline (one removed since the run started): the rule is then not applied, since
   * failing a run on a guessed setting is worse than reporting its rejects.
   */
  readonly toleratedRejectPercent?: number;
}

/** The summary's counts: the stage the run ended in, with what its merge removed. */
function countsOf(outcome: RunOutcome): RunSummary['counts'] {
  const { stageTotal: total, stageUnits: units, merged } = outcome;
  const removedDocuments = merged.summary?.removedDocuments;
  return {
    records: merged.inputCounts?.records ?? total.records,
    rejected: merged.inputCounts?.rejected ?? total.rejected,
    units: units.length,
    failedUnits: units.filter((u) => u.status === 'failed').length,
    chunks: total.chunks,
    embedded: total.embedded,
    skippedUnchanged: total.skippedUnchanged,
    removedChunks: total.removedChunks + (merged.removedChunks ?? 0),
    ...(removedDocuments === undefined ? {} : { removedDocuments }),
    scored: total.scored,
    ...(total.generated === undefined ? {} : { generated: total.generated, cached: total.cached ?? 0 }),
  };
}

/** The summary's stats: every stage's endpoint work. */
function statsOf(units: readonly StoredUnit[]): RunSummary['stats'] {
  const total = totalCounts(units);
  return {
    realTokens: total.realTokens,
    paddedTokens: total.paddedTokens,
    endpointCalls: total.endpointCalls,
    throttled: total.throttled,
    retries: total.retries,
    warmingDeferrals: total.warmingDeferrals ?? 0,
    ...(total.promptTokens === undefined
      ? {}
      : { promptTokens: total.promptTokens, completionTokens: total.completionTokens ?? 0 }),
  };
}

/**
 * The run summary before cost and capacity: `succeeded` unless a unit of the stage the
 * run ended in failed, or (every unit done) its rejects exceed the tolerated share of its
 * records, which `failureReason` then says in one line.
 */
export function runSummaryOf(outcome: RunOutcome): RunSummary {
  const { run, stageUnits, merged, finishedAt } = outcome;
  const failed = stageUnits.filter((u) => u.status === 'failed');
  const { removedDocuments: _removed, ...owned } = merged.summary ?? {};
  const counts = countsOf(outcome);
  const tolerated = outcome.toleratedRejectPercent;
  const rejectFailure =
    failed.length > 0 || tolerated === undefined ? undefined : rejectFailureOf(counts, tolerated);
  return {
    runId: run.runId,
    pipeline: run.pipeline,
    status: failed.length > 0 || rejectFailure !== undefined ? 'failed' : 'succeeded',
    ...(rejectFailure === undefined ? {} : { failureReason: rejectFailure }),
    trigger: run.trigger,
    startedAt: run.startedAt,
    finishedAt: finishedAt.toISOString(),
    counts,
    stats: statsOf(outcome.allUnits),
    failedUnits: failed.map((u) => ({ unitId: u.unitId, lastError: u.lastError })),
    timings: { runMs: finishedAt.getTime() - Date.parse(run.startedAt) },
    stages: [...outcome.stages],
    ...owned,
  };
}
