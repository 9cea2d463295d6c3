import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { RunState, WorkUnit } from '../domain/types.ts';
import { ConfigError } from '../errors/errors.ts';
import type { JobKind } from '../jobs/job-kind.ts';
import { stageNamed, stageNamesOf, unitStageName } from '../jobs/run-stages.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore, StoredUnit } from '../ports/run-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';

export interface NextStageDeps {
  /** What a stage's planning reads (files the stage before wrote). */
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue?: WorkQueue | undefined;
}

/** The descriptors of stored units; a unit stored without one cannot seed a later stage. */
function descriptorsOf(runId: string, units: readonly StoredUnit[]): WorkUnit[] {
  return units.map((unit) => {
    if (!unit.descriptor)
      throw new ConfigError(
        `run ${runId}: unit ${unit.unitId} has no stored descriptor to plan the next stage from`,
      );
    return unit.descriptor;
  });
}

/** The units of `stage`, planned from the units of the stage before it and what its merge wrote (deterministic). */
export async function planStageUnits<C extends PipelineConfig>(
  context: { readonly store: ObjectStore; readonly config: C },
  kind: JobKind<C>,
  run: RunState,
  stage: string,
  units: readonly StoredUnit[],
): Promise<WorkUnit[]> {
  const names = stageNamesOf(kind, run);
  const previous = names[names.indexOf(stage) - 1];
  const plan = stageNamed(kind, stage).planUnits;
  if (previous === undefined || !plan)
    throw new ConfigError(`the ${kind.kind} job kind cannot plan its ${stage} stage from an earlier one`);
  const before = units.filter((unit) => unitStageName(kind, run, unit) === previous);
  const planned = await plan(descriptorsOf(run.runId, before), { ...context, run });
  return planned.map((unit) => ({ ...unit, stage }));
}

function queueOf(deps: NextStageDeps, runId: string): WorkQueue {
  if (!deps.queue) throw new ConfigError(`run ${runId}: finalize has no work queue to start the next stage`);
  return deps.queue;
}

/**
 * Moves the run into its next stage and delivers the stage's units: the move first (a
 * conditional write, so a retried or concurrent finalize plans the stage once), then the
 * units stored, then sent. A finalize that dies after the move is taken up by
 * {@link resumeStage}. A stage with no units asks for its own finalize, so the run still ends.
 * Returns whether this call made the move.
 */
export async function startNextStage(
  deps: NextStageDeps,
  run: RunState,
  move: { readonly from: string; readonly to: string; readonly units: readonly WorkUnit[] },
): Promise<boolean> {
  const queue = queueOf(deps, run.runId);
  const moved = await deps.runs.startStage(run.runId, {
    from: move.from,
    to: move.to,
    unitCount: move.units.length,
  });
  if (!moved) return false;
  await deps.runs.addStageUnits(run.runId, move.units);
  if (move.units.length > 0) await queue.sendUnits(move.units);
  else await queue.requestFinalize(run.runId);
  return true;
}

/**
 * A finalize asked for while a later stage's units are open (or not all stored): the
 * finalize that started the stage died after the move. The stage is planned again (the
 * same units), the missing ones stored, and every unit never delivered sent (a unit
 * delivered twice is worked once: completions are conditional). Returns the number of
 * units the stage has (0: it has none, and ends at once).
 */
export async function resumeStage<C extends PipelineConfig>(
  deps: NextStageDeps,
  config: C,
  kind: JobKind<C>,
  run: RunState,
  stage: string,
  units: readonly StoredUnit[],
): Promise<number> {
  const planned = await planStageUnits({ store: deps.store, config }, kind, run, stage, units);
  if (planned.length === 0) return 0;
  await deps.runs.addStageUnits(run.runId, planned);
  const stored = new Map(units.map((unit) => [unit.unitId, unit]));
  const waiting = planned.filter((unit) => {
    const state = stored.get(unit.unitId);
    return state === undefined || (state.status === 'pending' && state.attempts === 0);
  });
  if (waiting.length > 0) await queueOf(deps, run.runId).sendUnits(waiting);
  return planned.length;
}
