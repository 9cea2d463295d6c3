import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { RunState, UnitState, WorkUnit } from '../domain/types.ts';
import { ConfigError } from '../errors/errors.ts';
import type { ClassifiedFile } from '../plan/sample-cost.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { JobKind, JobStage, RunPins } from './job-kind.ts';
import { jobKindOf } from './registry.ts';

/**
 * How the engine reads stages off runs and units, old records included: a run or unit
 * stored before stages has none, and is in the stage its `task` names (`fit`), else in
 * its kind's last stage (the one stage a run had then).
 */
function lastStageName<C extends PipelineConfig>(kind: JobKind<C>): string {
  return kind.stages[kind.stages.length - 1]!.name;
}

/** The stage a run is in now. */
export function currentStageName<C extends PipelineConfig>(kind: JobKind<C>, run: RunState): string {
  return run.stage ?? run.task ?? lastStageName(kind);
}

/** The stages the run goes through, in order (older runs: from their stage to the kind's last). */
export function stageNamesOf<C extends PipelineConfig>(kind: JobKind<C>, run: RunState): readonly string[] {
  if (run.stages) return run.stages;
  const names = kind.stages.map((stage) => stage.name);
  // An older run began in the stage its `task` names, else in the one it is in.
  return names.slice(Math.max(0, names.indexOf(run.task ?? currentStageName(kind, run))));
}

/** The stage after the run's current one, if any. */
export function nextStageName<C extends PipelineConfig>(kind: JobKind<C>, run: RunState): string | undefined {
  const names = stageNamesOf(kind, run);
  return names[names.indexOf(currentStageName(kind, run)) + 1];
}

/** The stage a stored unit belongs to: its own, else the stage its run was in when stored (older records). */
export function unitStageName<C extends PipelineConfig>(
  kind: JobKind<C>,
  run: RunState,
  unit: Pick<UnitState, 'stage'>,
): string {
  return unit.stage ?? run.task ?? lastStageName(kind);
}

/** The stages a new run of the pipeline goes through: its kind's choice, else every stage. */
export async function stagesOfNewRun(store: ObjectStore, config: PipelineConfig): Promise<readonly string[]> {
  const kind = jobKindOf(config);
  const names = kind.stagesOfRun
    ? await kind.stagesOfRun({ store }, config)
    : kind.stages.map((stage) => stage.name);
  if (names.length === 0) throw new ConfigError(`the ${kind.kind} job kind chose no stage for the run`);
  return names;
}

/** What every unit of a new run carries pinned (the model version a scoring run reads), by its kind. */
export async function pinsOfNewRun(store: ObjectStore, config: PipelineConfig): Promise<RunPins> {
  const kind = jobKindOf(config);
  return kind.pinsOfRun ? await kind.pinsOfRun({ store }, config) : {};
}

/** The config a new run of the pipeline applies: its kind's (see JobKind.configOfRun), else the config as is. */
export async function configOfNewRun(
  store: ObjectStore,
  config: PipelineConfig,
  inputs: readonly ClassifiedFile[],
): Promise<PipelineConfig> {
  const kind = jobKindOf(config);
  return kind.configOfRun ? await kind.configOfRun({ store }, config, inputs) : config;
}

/** The stage a unit descriptor is worked by. */
export function stageOfUnit<C extends PipelineConfig>(kind: JobKind<C>, unit: WorkUnit): JobStage<C> {
  return stageNamed(kind, unit.stage ?? unit.task ?? lastStageName(kind));
}

/** @throws ConfigError when the kind has no such stage (a unit of another version, or a corrupt record) */
export function stageNamed<C extends PipelineConfig>(kind: JobKind<C>, name: string): JobStage<C> {
  const stage = kind.stages.find((s) => s.name === name);
  if (!stage) throw new ConfigError(`the ${kind.kind} job kind has no stage "${name}"`);
  return stage;
}
