import { type EmbedPipelineConfig, embedPipelineConfigSchema } from '../../config/pipeline-config.ts';
import { TABLE_COLUMNS } from '../../output/parquet-tables.ts';
import type { JobKind } from '../job-kind.ts';
import { comparesSources, mergeEmbedStage } from './compare-sources.ts';
import { workEmbedUnit } from './embed-stage.ts';

/**
 * Embedding: one stage. Each unit chunks its documents and embeds the chunks the chunk
 * index does not already hold unchanged; the stage's merge diffs incremental pipelines'
 * source manifests.
 */
export const embedJob: JobKind<EmbedPipelineConfig> = {
  kind: 'embed',
  configSchema: embedPipelineConfigSchema,
  stages: [
    {
      name: 'embed',
      workUnit: workEmbedUnit,
      idTable: 'embeddings',
      mergeNeedsDescriptors: comparesSources,
      mergeStage: mergeEmbedStage,
      describeUnit: (c) => `${c.embedded} chunks embedded, ${c.skippedUnchanged} unchanged`,
    },
  ],
  tables: { embeddings: TABLE_COLUMNS.embeddings },
  summaryCounts: ['chunks', 'embedded', 'skippedUnchanged', 'removedChunks'],
};
