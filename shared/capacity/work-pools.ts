import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { WorkPool } from '../domain/types.ts';

/**
 * Which work function runs a pipeline's units (issue 14, the pipeline's own share).
 *
 * - `endpoint`: the worker mostly waits on an endpoint (embed, generate, score hosted on
 *   `serverless` or `instance`). Its Lambda time is billed beside a GPU's, so it runs at a
 *   small memory size, and its event source follows the endpoint copies.
 * - `compute`: the worker does the work itself (score `in-worker`, recommend). It may need
 *   much more memory, and scales by `workers.maxConcurrency` alone.
 */
export type { WorkPool } from '../domain/types.ts';

export function workPoolOf(pipeline: PipelineConfig): WorkPool {
  if (pipeline.kind === 'recommend') return 'compute';
  if (pipeline.kind === 'score' && pipeline.model.hosting === 'in-worker') return 'compute';
  return 'endpoint';
}

/**
 * How a stack's pipelines split between work functions. A stack whose pipelines are all in
 * one pool has one work function (`Work`, the work queue) for all of them, as before. A stack
 * with both has two: `Work` (the work queue) for the endpoint pool and `WorkCompute` (the
 * compute queue) for the compute pool, each sized by its own pipelines' `workers` settings,
 * so a memory-hungry recommend pipeline no longer raises the memory (and the bill) of the
 * workers that wait on a GPU.
 *
 * A pure function of the pipelines file: plan, work, finalize, the sweeper, the CLI and
 * synth all derive the same split from the same configs.
 */
export interface WorkPools {
  /** True when the stack has a compute queue and a `WorkCompute` function. */
  readonly split: boolean;
  /** Pipelines whose units go to the work queue (all of them when not split). */
  readonly work: readonly PipelineConfig[];
  /** Pipelines whose units go to the compute queue (none when not split). */
  readonly compute: readonly PipelineConfig[];
}

export function workPoolsOf(pipelines: readonly PipelineConfig[]): WorkPools {
  const compute = pipelines.filter((p) => workPoolOf(p) === 'compute');
  const split = compute.length > 0 && compute.length < pipelines.length;
  return split
    ? { split, work: pipelines.filter((p) => workPoolOf(p) === 'endpoint'), compute }
    : { split, work: pipelines, compute: [] };
}

/**
 * The queue a unit of `pipeline` goes to in a stack serving `pools`: `compute` only when the
 * stack is split and the pipeline is in the compute pool. An unknown pipeline goes to the
 * work queue (its worker rejects it with the usual one-line error).
 */
export function queueOfPipeline(pools: WorkPools, pipeline: string): 'work' | 'compute' {
  return pools.split && pools.compute.some((p) => p.name === pipeline) ? 'compute' : 'work';
}
