import { TransitionConflict } from '../errors/errors.ts';
import { type TableName, unitPartKey } from '../output/keys.ts';
import {
  embeddingsParquet,
  ParquetPartWriter,
  rejectsParquet,
  scoresParquet,
  TABLE_COLUMNS,
} from '../output/parquet-tables.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';

export interface DeadLetterDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
}

/** The unit a dead-lettered message names (a work unit descriptor has these and more). */
export interface DeadLetteredUnit {
  readonly runId: string;
  readonly unitId: string;
  readonly pipeline: string;
}

export type DeadLetterOutcome =
  /** This call marked the unit failed; `finishedRun` when that made every unit of the run terminal. */
  | { readonly status: 'failed'; readonly finishedRun: boolean }
  /** The unit was already terminal (its last delivery failed it, or it succeeded late); nothing changed. */
  | { readonly status: 'already-terminal'; readonly unitStatus: 'succeeded' | 'failed' | undefined }
  /** No such unit (a stale message of a deleted run). */
  | { readonly status: 'unknown' };

/**
 * (dead-letter consumer) -> deadLetterUnit -> (run store, object store, queue).
 *
 * A unit's message reached the dead-letter queue. When its last delivery failed with an
 * error, processUnit has already marked it failed; when that worker died instead (timeout,
 * out of memory, a crash on the last delivery), nobody has, and without this call the run
 * would never finish. So: mark the unit failed (conditional: a unit that succeeded, or was
 * failed already, is left as it is), ask for finalize if that made every unit terminal or
 * if the run is stranded, and take back any table part an earlier attempt wrote before
 * dying (a failed unit's records are in neither table until it is redriven).
 * Idempotent: a redelivered dead letter changes nothing more.
 *
 * @param reason why the unit failed, when the caller knows it
 * @default reason: the worker stopped on its last delivery without reporting an error
 */
export async function deadLetterUnit(
  deps: DeadLetterDeps,
  unit: DeadLetteredUnit,
  options: { readonly receiveCount?: number; readonly reason?: string } = {},
): Promise<DeadLetterOutcome> {
  const deliveries = options.receiveCount === undefined ? '' : ` after ${options.receiveCount} deliveries`;
  const reason =
    options.reason ??
    `dead-lettered${deliveries}: the worker stopped on its last delivery without reporting an error (timed out or ran out of memory?)`;
  let completion: Awaited<ReturnType<RunStore['failUnit']>>;
  try {
    completion = await deps.runs.failUnit(unit.runId, unit.unitId, reason);
  } catch (error) {
    if (error instanceof TransitionConflict) return { status: 'unknown' };
    throw error;
  }
  // Finalize first: finishing the run matters more than the retraction, which a redelivery repeats.
  if (completion.finishedRun) await deps.queue.requestFinalize(unit.runId);
  else if (!completion.recorded) await requestFinalizeIfStranded(deps, unit.runId);
  if (completion.unitStatus === 'failed') await retractUnitParts(deps.store, unit);
  return completion.recorded
    ? { status: 'failed', finishedRun: completion.finishedRun }
    : { status: 'already-terminal', unitStatus: completion.unitStatus };
}

const EMPTY_PARTS: Partial<Record<TableName, (runId: string) => Uint8Array>> = {
  embeddings: (runId) => embeddingsParquet(runId, []),
  rejects: (runId) => rejectsParquet(runId, []),
  scores: (runId) => scoresParquet(runId, []),
  // A generate unit's answers: without this a dead unit's rows stayed in `generations` while the run counted them out.
  generations: () => new ParquetPartWriter(TABLE_COLUMNS.generations, () => ({})).finish(),
  // A recommend similarity unit's lists: the same rule for the same reason.
  recommendations: () => new ParquetPartWriter(TABLE_COLUMNS.recommendations, () => ({})).finish(),
};

/**
 * Replaces the unit's table parts with empty ones (same key, same columns, no rows): the
 * ObjectStore port has no delete, and an empty part reads as nothing in Athena and DuckDB.
 * A failed unit's records are then in neither table, as the run's counts say, until a
 * redrive writes the parts again under the same keys. Parts that do not exist are left absent.
 */
export async function retractUnitParts(store: ObjectStore, unit: DeadLetteredUnit): Promise<string[]> {
  const retracted: string[] = [];
  for (const [table, empty] of Object.entries(EMPTY_PARTS) as [TableName, (runId: string) => Uint8Array][]) {
    const key = unitPartKey(table, unit.pipeline, unit.runId, unit.unitId);
    if (!(await store.head(key))) continue;
    await store.put(key, empty(unit.runId), 'application/vnd.apache.parquet');
    retracted.push(key);
  }
  return retracted;
}

/**
 * A delivery that finds its unit already terminal may follow the one whose worker died
 * between claiming the run's finish and asking for finalize. Every unit is terminal but
 * the run is still running: ask again. Finalize moves the run with a conditional write,
 * so an extra request is harmless.
 */
export async function requestFinalizeIfStranded(
  deps: { readonly runs: RunStore; readonly queue: WorkQueue },
  runId: string,
): Promise<void> {
  const run = await deps.runs.getRun(runId);
  if (run?.status === 'running' && run.doneUnits + run.failedUnits >= run.totalUnits) {
    await deps.queue.requestFinalize(runId);
  }
}
