import { type ScorePipelineConfig, scorePipelineConfigSchema } from '../../config/pipeline-config.ts';
import { TABLE_COLUMNS } from '../../output/parquet-tables.ts';
import { pinModel } from '../../scoring/model-pin.ts';
import { fitDecisionFor } from '../../scoring/scoring-context.ts';
import type { JobKind } from '../job-kind.ts';
import { mergeFitStage, workFitUnit } from './fit-stage.ts';
import { checkRunModelSchema } from './model-schema-gate.ts';
import { scoreConfigOfNewRun } from './run-config.ts';
import { mergeScoreStage, planScoreUnits, workScoreUnit } from './score-stage.ts';

/**
 * Batch inference: `fit` (feature statistics in one mergeable pass, merged into the
 * versioned artifact at the end of the stage), then `score` over the same units. A run
 * fits only when the stored statistics cannot be reused (shared/scoring fitDecisionFor).
 */
export const scoreJob: JobKind<ScorePipelineConfig> = {
  kind: 'score',
  configSchema: scorePipelineConfigSchema,
  stages: [
    {
      name: 'fit',
      workUnit: workFitUnit,
      mergeStage: mergeFitStage,
      describeUnit: (c) => `${c.records} records observed for feature statistics`,
    },
    {
      name: 'score',
      planUnits: planScoreUnits,
      workUnit: workScoreUnit,
      idTable: 'scores',
      // The summary's `model` is the version the units pinned (in-worker scoring reads it).
      mergeNeedsDescriptors: (config) => config.model.hosting === 'in-worker',
      mergeStage: mergeScoreStage,
      describeUnit: (c) => `${c.scored} rows scored`,
    },
  ],
  stagesOfRun: async (deps, config) => {
    const decision = await fitDecisionFor(deps.store, config);
    // Plan time: a spec that disagrees with the model stops the run before any unit is sent.
    const checked = await checkRunModelSchema(
      deps.store,
      config,
      decision.action === 'reuse' ? decision.fitted : undefined,
    );
    if (checked.warning) console.warn(`warning: ${checked.warning}`);
    return decision.action === 'fit' ? ['fit', 'score'] : ['score'];
  },
  // In-worker scoring reads the model itself: every unit reads the version planned on.
  pinsOfRun: async (deps, config) => {
    if (config.model.hosting !== 'in-worker') return {};
    const modelPin = await pinModel(deps.store, config);
    return modelPin === undefined ? {} : { modelPin };
  },
  // Plan prices units by the resolved spec and checks its columns against the inputs.
  configOfRun: scoreConfigOfNewRun,
  tables: { scores: TABLE_COLUMNS.scores, segment_stats: TABLE_COLUMNS.segment_stats },
  summaryCounts: ['scored'],
};
