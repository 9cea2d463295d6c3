import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import { emptyCounts, type UnitCounts, type WorkUnit } from '../../domain/types.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { FeatureSpec } from '../../scoring/features/feature-spec.ts';
import { type FeatureFitPartial, FeatureStatsAccumulator } from '../../scoring/features/fit-features.ts';
import { scoreConfigOfRun } from '../../scoring/run-feature-spec.ts';
import { type Checkpoint, unitRecords } from '../../work/unit-records.ts';

/** Where a fit unit leaves its partial statistics for finalize to merge. */
export function fitPartialKey(pipeline: string, runId: string, unitId: string): string {
  return `runs/${pipeline}/${runId}/fit/${unitId}.json`;
}

/**
 * The first pass of a scoring pipeline without stored statistics: observes every row of
 * the unit (mean and variance by Welford, quantile sketch, category counts) and returns
 * the mergeable partial. Nothing is written to the tables: the scoring run that follows
 * reads the same records again and reports their rejects.
 */
export async function fitUnit(
  deps: { store: ObjectStore },
  config: ScorePipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<{ counts: UnitCounts; partial: FeatureFitPartial }> {
  const counts = emptyCounts();
  const { featureSpec } = await scoreConfigOfRun(deps.store, config, unit.runId);
  const accumulator = new FeatureStatsAccumulator(featureSpec as FeatureSpec);
  for await (const { record } of unitRecords(
    deps.store,
    unit,
    { ...config.input, shape: 'row' },
    checkpoint,
  )) {
    counts.records += 1;
    if (record.kind === 'row') accumulator.observe(record.values);
    else counts.rejected += 1;
  }
  return { counts, partial: accumulator.toJSON() };
}
