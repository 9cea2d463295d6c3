import type { RunState, RunSummary } from '../domain/types.ts';
import type { StoredUnit } from '../ports/run-store.ts';

/**
 * One unit as the report draws it: what the planner estimated, what the unit measured, and,
 * where its usage record has them (usage stored since the run report), when and where it ran.
 */
export interface ReportUnit {
  readonly unitId: string;
  /** The run's stage the unit belongs to (`fit`, `score`, ...); absent in units of older planners. */
  readonly stage?: string;
  readonly sourceKey: string;
  readonly status: StoredUnit['status'];
  readonly attempts: number;
  /** The planner's estimate (tokens for embedding, rows x features for scoring). */
  readonly estCost: number;
  /** The same measure as the unit counted it; null until the unit succeeded. */
  readonly actualCost: number | null;
  readonly records: number;
  readonly rejected: number;
  readonly realTokens: number;
  readonly paddedTokens: number;
  readonly endpointCalls: number;
  readonly throttled: number;
  readonly retries: number;
  /** Epoch ms the completing delivery started; absent in older usage records. */
  readonly startedAt?: number;
  /** Its duration in the worker, ms. */
  readonly workerMs?: number;
  /** The worker that ran it (see UnitUsage.worker). */
  readonly worker?: number;
  /** Summed endpoint call time, ms. */
  readonly endpointCallMs?: number;
  /** The longest single endpoint call, ms. */
  readonly endpointMaxCallMs?: number;
}

/** Rejected records of one kind (the reason with its per-record details taken out). */
export interface RejectKind {
  readonly kind: string;
  readonly count: number;
  /** One full reason of this kind, as stored in `rejects`. */
  readonly example: string;
}

/** Everything the run report draws: read through the ports by loadRunReportData. */
export interface RunReportData {
  readonly run: RunState;
  /** Absent while the run is still running (the report then draws what units finished). */
  readonly summary?: RunSummary;
  readonly units: readonly ReportUnit[];
  readonly rejects: readonly RejectKind[];
  /** When the report was made, ISO 8601. */
  readonly generatedAt: string;
}

/** A stored unit as the report needs it; the timing fields only where its usage has them. */
export function reportUnitOf(unit: StoredUnit): ReportUnit {
  const counts = unit.counts;
  const usage = counts?.usage;
  return {
    unitId: unit.unitId,
    ...(unit.stage !== undefined && { stage: unit.stage }),
    sourceKey: unit.sourceKey,
    status: unit.status,
    attempts: unit.attempts,
    estCost: unit.estCost,
    actualCost: unit.actualCost,
    records: counts?.records ?? unit.records ?? 0,
    rejected: counts?.rejected ?? 0,
    realTokens: counts?.realTokens ?? 0,
    paddedTokens: counts?.paddedTokens ?? 0,
    endpointCalls: counts?.endpointCalls ?? 0,
    throttled: counts?.throttled ?? 0,
    retries: counts?.retries ?? 0,
    ...(usage?.startedAt !== undefined && { startedAt: usage.startedAt, workerMs: usage.workerMs }),
    ...(usage?.worker !== undefined && { worker: usage.worker }),
    ...(usage && { endpointCallMs: usage.endpointCallMs }),
    ...(usage?.endpointMaxCallMs !== undefined && { endpointMaxCallMs: usage.endpointMaxCallMs }),
  };
}
