import type { GeneratePipelineConfig } from '../../config/pipeline-config.ts';
import type { WorkUnit } from '../../domain/types.ts';
import { intoStreamedPart, putIdList, putRejects, streamedTablePart } from '../../work/unit-output.ts';
import type { Checkpoint } from '../../work/unit-records.ts';
import type { UnitWork, UnitWorkDeps } from '../job-kind.ts';
import type { ChatEndpoint } from './chat-endpoint.ts';
import { compileGenerateJob, type GenerateJob } from './generate-config.ts';
import { generateUnit } from './generate-unit.ts';
import { generationsPartWriter } from './generations-table.ts';
import { ObjectStorePromptCache } from './prompt-cache.ts';

/** Compiled templates and output schema, once per config object (a worker keeps its config). */
const compiled = new WeakMap<GeneratePipelineConfig, GenerateJob>();

/** The pipeline's templates and output schema, compiled; a ConfigError names the key. */
export function generateJobFor(config: GeneratePipelineConfig): GenerateJob {
  let job = compiled.get(config);
  if (!job) {
    job = compileGenerateJob(config);
    compiled.set(config, job);
  }
  return job;
}

/** The LLM endpoint of the worker, or a one-line reason why there is none. */
function endpointOf(deps: UnitWorkDeps, config: GeneratePipelineConfig): ChatEndpoint {
  if (!deps.chatEndpoint)
    throw new Error(`pipeline ${config.name}: no LLM endpoint configured for this worker`);
  return deps.chatEndpoint;
}

/**
 * The generate stage's work on one unit: its records answered into the unit's
 * `generations` part, then the ids it holds (the duplicate-id rule), its rejects, then its fresh answers in the prompt cache, only
 * once the part holding them is written. Cost: the tokens the endpoint processed.
 */
export async function workGenerateUnit(
  deps: UnitWorkDeps,
  config: GeneratePipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  const endpoint = endpointOf(deps, config);
  const job = generateJobFor(config);
  const cache = deps.promptCache ?? new ObjectStorePromptCache(deps.store);
  const part = streamedTablePart(deps.store, 'generations', unit, generationsPartWriter(unit.runId));
  const { result, key } = await intoStreamedPart(part, (sink) =>
    generateUnit({ store: deps.store, endpoint, cache }, config, job, unit, sink, checkpoint),
  );
  await putIdList(deps.store, unit, result.idList);
  const rejectsKey = await putRejects(deps.store, unit, result.rejects);
  await cache.record(unit.pipeline, result.fresh);
  const outputKeys = [key, rejectsKey].filter((k): k is string => k !== undefined);
  return {
    counts: result.counts,
    outputKeys,
    actualCost: result.counts.promptTokens + result.counts.completionTokens,
  };
}
