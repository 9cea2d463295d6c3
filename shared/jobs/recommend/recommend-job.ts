import { type RecommendPipelineConfig, recommendPipelineConfigSchema } from '../../config/pipeline-config.ts';
import { TABLE_COLUMNS } from '../../output/parquet-tables.ts';
import type { JobKind } from '../job-kind.ts';
import { mergeIngestStage, workIngestUnit } from './ingest-stage.ts';
import { mergeSimilarityStage, planSimilarityUnits, workSimilarityUnit } from './similarity-stage.ts';

/**
 * User-based collaborative filtering (docs/recommendations.md): `ingest` reads and
 * validates the interaction log in record-aligned units, and its merge builds the run's
 * index and plans user shards by estimated similarity work; `similarity` computes each
 * shard's neighbours and top N into `recommendations`, and its merge evaluates.
 */
export const recommendJob: JobKind<RecommendPipelineConfig> = {
  kind: 'recommend',
  configSchema: recommendPipelineConfigSchema,
  stages: [
    {
      name: 'ingest',
      workUnit: workIngestUnit,
      mergeStage: mergeIngestStage,
      describeUnit: (c) => `${c.records - c.rejected} interactions read, ${c.rejected} rejected`,
    },
    {
      name: 'similarity',
      planUnits: planSimilarityUnits,
      workUnit: workSimilarityUnit,
      mergeStage: mergeSimilarityStage,
      describeUnit: (c) => `${c.records} users recommended`,
    },
  ],
  tables: { recommendations: TABLE_COLUMNS.recommendations },
  summaryCounts: [],
};
