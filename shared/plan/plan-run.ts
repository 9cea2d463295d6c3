import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { RunState, RunTrigger, WorkUnit } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';
import { classifySource, estimateCost, planUnits, type SourceFile } from './plan-units.ts';

export interface PlanRunRequest {
  readonly runId: string;
  readonly trigger: RunTrigger;
  /** Object keys to read (an upload's key, or local files staged into the store). */
  readonly keys?: readonly string[];
  /** A dataset prefix to read whole (scheduled runs). */
  readonly prefix?: string;
  readonly now: Date;
}

export interface PlanRunResult {
  readonly run: RunState;
  readonly units: readonly WorkUnit[];
  /** Keys named by the request that no longer exist (deleted after upload); nothing to read. */
  readonly missing: readonly string[];
}

const HEAD_CONCURRENCY = 16;

/**
 * (primary adapter) -> planRun -> (object store, run store, work queue): sizes the
 * inputs, cuts them into units, records the run and its units, and sends one message
 * per unit. A run with no units is handed straight to finalize so it still ends.
 */
export async function planRun(
  deps: { store: ObjectStore; runs: RunStore; queue: WorkQueue },
  config: PipelineConfig,
  request: PlanRunRequest,
): Promise<PlanRunResult> {
  const keys = new Set(request.keys ?? []);
  if (request.prefix !== undefined) {
    for await (const object of deps.store.list(request.prefix)) {
      if (!object.key.endsWith('/')) keys.add(object.key);
    }
  }
  const sorted = [...keys].sort();
  const heads = await mapWithConcurrency(sorted, HEAD_CONCURRENCY, (key) => deps.store.head(key));
  const files: SourceFile[] = [];
  const missing: string[] = [];
  heads.forEach((info, i) => {
    if (!info) {
      missing.push(sorted[i]!);
      return;
    }
    const { format, compression } = classifySource(info.key, config.input.format);
    files.push({ ...info, format, compression, estCost: estimateCost(info.size, compression, config) });
  });

  const units = await planUnits(deps.store, config, request.runId, files);
  const run: RunState = {
    runId: request.runId,
    pipeline: config.name,
    trigger: request.trigger,
    startedAt: request.now.toISOString(),
    inputs: files.map((f) => f.key),
    status: 'running',
    finishedAt: null,
    totalUnits: units.length,
    doneUnits: 0,
    failedUnits: 0,
  };
  await deps.runs.createRun(run, units);
  if (units.length > 0) await deps.queue.sendUnits(units);
  else await deps.queue.requestFinalize(run.runId);
  return { run, units, missing };
}
