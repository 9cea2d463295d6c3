import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import type { RunState, UnitState, WorkUnit } from '../../domain/types.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { FeatureSpec } from '../../scoring/features/feature-spec.ts';
import { type FeatureFitPartial, FeatureStatsAccumulator } from '../../scoring/features/fit-features.ts';
import { scoreConfigOfRun } from '../../scoring/run-feature-spec.ts';
import type { Checkpoint } from '../../work/unit-records.ts';
import type { StageMerged, UnitWork, UnitWorkDeps } from '../job-kind.ts';
import { fitPartialKey, fitUnit } from './fit-unit.ts';
import { checkRunModelSchema } from './model-schema-gate.ts';
import { readPartial } from './read-partial.ts';

/** The fit stage's work on one unit: its partial statistics, left for the stage's merge. Cost: records read. */
export async function workFitUnit(
  deps: UnitWorkDeps,
  config: ScorePipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  const { counts, partial } = await fitUnit(deps, config, unit, checkpoint);
  const key = fitPartialKey(unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(key, JSON.stringify(partial), 'application/json');
  return { counts, outputKeys: [key], actualCost: counts.records };
}

/** The units' partial statistics merged (units that did not succeed left none). */
export async function mergedFeatureStats(
  store: ObjectStore,
  config: ScorePipelineConfig,
  run: RunState,
  units: readonly UnitState[],
): Promise<FeatureStatsAccumulator> {
  const { featureSpec } = await scoreConfigOfRun(store, config, run.runId);
  const accumulator = new FeatureStatsAccumulator(featureSpec as FeatureSpec);
  for (const unit of units) {
    if (unit.status !== 'succeeded') continue;
    const key = fitPartialKey(run.pipeline, run.runId, unit.unitId);
    accumulator.merge(await readPartial<FeatureFitPartial>(store, key));
  }
  return accumulator;
}

/**
 * The end of the fit stage: the units' partial statistics merged into the versioned
 * artifact (`featureStats.key`) that the score stage applies. Rewritten whole by a retry.
 */
export async function mergeFitStage(
  deps: { readonly store: ObjectStore },
  config: ScorePipelineConfig,
  run: RunState,
  units: readonly UnitState[],
  now: Date,
): Promise<StageMerged> {
  const accumulator = await mergedFeatureStats(deps.store, config, run, units);
  const fitted = accumulator.finish(now);
  // The one-hot categories are known now: the whole schema is checked before the score stage is sent.
  await checkRunModelSchema(deps.store, config, fitted);
  await deps.store.put(config.featureStats.key, `${JSON.stringify(fitted, null, 2)}\n`, 'application/json');
  return {};
}
