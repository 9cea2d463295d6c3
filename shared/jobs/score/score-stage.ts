import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import type { RunState, UnitState, WorkUnit } from '../../domain/types.ts';
import { tablePartitionPrefix } from '../../output/keys.ts';
import { scoresPartWriter, segmentStatsParquet } from '../../output/parquet-tables.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { StoredUnit } from '../../ports/run-store.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import {
  finalizeSegments,
  type SegmentAggregatesState,
  SegmentAggregator,
} from '../../scoring/aggregates/segment-aggregates.ts';
import { modelSummaryOf, modelVersionOf } from '../../scoring/model-pin.ts';
import { scoreConfigOfRun } from '../../scoring/run-feature-spec.ts';
import { intoStreamedPart, putIdList, putRejects, streamedTablePart } from '../../work/unit-output.ts';
import type { Checkpoint } from '../../work/unit-records.ts';
import { continuationIdOf, trimToContinuation } from '../../work/unit-records.ts';
import { withoutWarming } from '../../work/warming.ts';
import type { StageMergeDeps, StageMerged, UnitWork, UnitWorkDeps } from '../job-kind.ts';
import { modelSchemaWarning } from './model-schema-gate.ts';
import { readPartial } from './read-partial.ts';
import { type ScoreSink, scoreUnit, segmentPartialKey } from './score-unit.ts';

/** The scoring model of the worker, or a one-line reason why there is none. */
function endpointOf(deps: UnitWorkDeps, config: ScorePipelineConfig): ScoringEndpoint {
  if (!deps.scoringEndpoint)
    throw new Error(`pipeline ${config.name}: no scoring endpoint configured for this worker`);
  return deps.scoringEndpoint;
}

/**
 * The worker's model at the version the run pinned (in-worker scoring reads exactly it),
 * and the `model_version` its rows carry: null where the model is not read by the worker
 * (an endpoint serves what it was deployed with) or the unit has no pin (older planners).
 */
function pinnedEndpointOf(
  endpoint: ScoringEndpoint,
  unit: WorkUnit,
): { endpoint: ScoringEndpoint; modelVersion: string | null } {
  const pin = unit.modelPin;
  if (pin === undefined || endpoint.atVersion === undefined) return { endpoint, modelVersion: null };
  return { endpoint: endpoint.atVersion(pin.version), modelVersion: modelVersionOf(pin.version) };
}

/** The sink with each row stamped with the model version that scored it. */
function withModelVersion(sink: ScoreSink, modelVersion: string | null): ScoreSink {
  return {
    add: (rows) => {
      for (const row of rows) row.model_version = modelVersion;
      return sink.add(rows);
    },
  };
}

/**
 * The score stage's work on one unit: its rows scored into the unit's `scores` part, then
 * its id list, rejects and segment partial. Cost: rows x features.
 */
export async function workScoreUnit(
  deps: UnitWorkDeps,
  config: ScorePipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  const { endpoint, modelVersion } = pinnedEndpointOf(endpointOf(deps, config), unit);
  const part = streamedTablePart(
    deps.store,
    'scores',
    unit,
    scoresPartWriter(unit.runId, config.output.passThrough),
  );
  const { result: scored, key } = await intoStreamedPart(part, (sink) =>
    scoreUnit(
      { store: deps.store, endpoint },
      config,
      unit,
      withModelVersion(sink, modelVersion),
      checkpoint,
    ),
  );
  await putIdList(deps.store, unit, scored.idList);
  const rejectsKey = await putRejects(deps.store, unit, scored.rejects);
  const segmentsKey = segmentPartialKey(unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(segmentsKey, JSON.stringify(scored.segments), 'application/json');
  const outputKeys = [key, rejectsKey, segmentsKey].filter((k): k is string => k !== undefined);
  return {
    counts: scored.counts,
    outputKeys,
    // Rows x the columns of the spec the run applies (an inferred one's, not its exceptions').
    actualCost:
      scored.counts.records *
      (await scoreConfigOfRun(deps.store, config, unit.runId)).featureSpec.features.length,
  };
}

/** Unit ids of the score stage: the fit stage's, prefixed, so the two stages' ids never meet. */
export const scoreUnitIdOf = (fitUnitId: string): string => `score-${fitUnitId}`;

/**
 * The score stage's units from the fit stage's: the same records cut the same way (the
 * pinned source versions the statistics were fitted on, the same re-staged gzip parts),
 * a unit that handed the rest on trimmed to where its continuation starts, and the
 * continuation a unit of its own. Deterministic: a finalize that dies halfway plans the
 * same units again.
 */
export function planScoreUnits(fitUnits: readonly WorkUnit[]): WorkUnit[] {
  const byId = new Map(fitUnits.map((unit) => [unit.unitId, unit]));
  return [...fitUnits]
    .sort((a, b) => (a.unitId < b.unitId ? -1 : a.unitId > b.unitId ? 1 : 0))
    .map((unit) => {
      const continuation = byId.get(continuationIdOf(unit.unitId));
      const trimmed = continuation
        ? {
            ...trimToContinuation(unit, continuation),
            estCost: Math.max(1, unit.estCost - continuation.estCost),
          }
        : unit;
      const { task: _task, ...rest } = withoutWarming(trimmed);
      return { ...rest, unitId: scoreUnitIdOf(unit.unitId), stage: 'score' };
    });
}

/** The units' segment partials merged (units that did not succeed left none). */
async function mergedSegments(
  store: ObjectStore,
  config: ScorePipelineConfig,
  run: RunState,
  units: readonly UnitState[],
): Promise<SegmentAggregator> {
  const merged = new SegmentAggregator({
    segmentColumns: config.segments.columns,
    maxSegments: config.segments.maxSegments,
  });
  for (const unit of units) {
    if (unit.status !== 'succeeded') continue;
    const key = segmentPartialKey(run.pipeline, run.runId, unit.unitId);
    merged.merge(await readPartial<SegmentAggregatesState>(store, key));
  }
  return merged;
}

/**
 * The end of the score stage: the units' segment partials merged into the
 * `segment_stats` table (one part per run, rewritten whole by a retry) and the segment
 * statistics store. Returns the number of segments for the summary, and the schema
 * check's warning when the model's feature order could not be checked.
 */
export async function mergeScoreStage(
  deps: StageMergeDeps,
  config: ScorePipelineConfig,
  run: RunState,
  units: readonly StoredUnit[],
): Promise<StageMerged> {
  const merged = await mergedSegments(deps.store, config, run, units);
  const { prior, segments } = finalizeSegments(merged, { quantiles: config.segments.quantiles });
  if (segments.length > 0) {
    const key = `${tablePartitionPrefix('segment_stats', run.pipeline, run.runId)}${run.runId}.parquet`;
    await deps.store.put(
      key,
      segmentStatsParquet(run.runId, prior, segments),
      'application/vnd.apache.parquet',
    );
    await deps.segmentStats?.recordSegments(run.pipeline, run.runId, prior, segments);
  }
  const warning = await modelSchemaWarning(deps.store, config);
  const pin = units.find((unit) => unit.descriptor?.modelPin !== undefined)?.descriptor?.modelPin;
  return {
    summary: {
      segments: segments.length,
      ...(warning === undefined ? {} : { warnings: [warning] }),
      ...(pin === undefined ? {} : { model: modelSummaryOf(config.model.modelKey, pin) }),
    },
  };
}
