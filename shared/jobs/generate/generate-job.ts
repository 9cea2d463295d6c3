import { type GeneratePipelineConfig, generatePipelineConfigSchema } from '../../config/pipeline-config.ts';
import type { JobKind } from '../job-kind.ts';
import { generateJobFor, workGenerateUnit } from './generate-stage.ts';
import { GENERATIONS_COLUMNS } from './generations-table.ts';

/**
 * Batch LLM generation: one stage over record-aligned units. Each record's prompt is
 * rendered from its fields, answered (or carried from the prompt cache), validated and
 * repaired against `output.jsonSchema`, and written to `generations`; a record that
 * cannot be answered goes to `rejects` with the reason. One row per record id: finalize's
 * duplicate-id rule keeps the last record of an id in (source key, byte offset) order.
 */
export const generateJob: JobKind<GeneratePipelineConfig> = {
  kind: 'generate',
  configSchema: generatePipelineConfigSchema,
  stages: [
    {
      name: 'generate',
      workUnit: workGenerateUnit,
      idTable: 'generations',
      describeUnit: (c) => `${c.generated ?? 0} generated, ${c.cached ?? 0} from the prompt cache`,
    },
  ],
  // Plan time: a template or output schema that does not compile stops the run before any unit.
  stagesOfRun: async (_deps, config) => {
    generateJobFor(config);
    return ['generate'];
  },
  tables: { generations: GENERATIONS_COLUMNS },
  summaryCounts: ['generated', 'cached'],
};
