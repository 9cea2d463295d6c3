import { addCounts, emptyCounts, type RunSummary } from '../domain/types.ts';
import { SluiceError } from '../errors/errors.ts';
import { runRowKey, runSummaryKey } from '../output/keys.ts';
import { runsParquet } from '../output/parquet-tables.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';

export class RunNotReady extends SluiceError {}

/**
 * (primary adapter) -> finalizeRun -> (run store, object store): merges the units'
 * counts into the run summary, writes `summary.json` and the `runs` table row, then
 * moves the run to its final status with a conditional write. Returns the summary for
 * the one caller that made the move, undefined for a duplicate request.
 */
export async function finalizeRun(
  deps: { store: ObjectStore; runs: RunStore },
  runId: string,
  now: Date,
): Promise<RunSummary | undefined> {
  const run = await deps.runs.getRun(runId);
  if (!run) throw new RunNotReady(`run ${runId} does not exist`);
  if (run.status !== 'running') return undefined;
  const units = await deps.runs.listUnits(runId);
  const open = units.filter((u) => u.status !== 'succeeded' && u.status !== 'failed');
  if (open.length > 0) throw new RunNotReady(`run ${runId} still has ${open.length} unfinished units`);

  const total = emptyCounts();
  for (const unit of units) if (unit.counts) addCounts(total, unit.counts);
  const failed = units.filter((u) => u.status === 'failed');
  const summary: RunSummary = {
    runId,
    pipeline: run.pipeline,
    status: failed.length > 0 ? 'failed' : 'succeeded',
    trigger: run.trigger,
    startedAt: run.startedAt,
    finishedAt: now.toISOString(),
    counts: {
      records: total.records,
      rejected: total.rejected,
      units: units.length,
      failedUnits: failed.length,
      chunks: total.chunks,
      embedded: total.embedded,
      skippedUnchanged: total.skippedUnchanged,
      removedChunks: total.removedChunks,
    },
    stats: {
      realTokens: total.realTokens,
      paddedTokens: total.paddedTokens,
      endpointCalls: total.endpointCalls,
      throttled: total.throttled,
      retries: total.retries,
    },
    failedUnits: failed.map((u) => ({ unitId: u.unitId, lastError: u.lastError })),
    timings: { runMs: Date.parse(now.toISOString()) - Date.parse(run.startedAt) },
  };
  await deps.store.put(
    runSummaryKey(run.pipeline, runId),
    `${JSON.stringify(summary, null, 2)}\n`,
    'application/json',
  );
  await deps.store.put(
    runRowKey(run.pipeline, runId),
    runsParquet(summary),
    'application/vnd.apache.parquet',
  );
  const moved = await deps.runs.finishRun(runId, summary);
  return moved ? summary : undefined;
}
