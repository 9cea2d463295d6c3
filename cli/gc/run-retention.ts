import {
  EMBEDDINGS_HOLD_DAYS,
  ENTRY_REFRESH_DAYS,
  embeddingsHeldUntil,
  entryIsFresh,
} from '../../shared/incremental/entry-refresh.ts';
import { runRef } from './current-runs.ts';

/** What retention needs to know of a run; local run state and the `runs` table both give it. */
export interface RetainedRun {
  readonly runId: string;
  readonly pipeline: string;
  readonly status: string;
  readonly startedAt: string;
}

/**
 * Which runs give up their parts, one rule for a local home and a deployed stack: per
 * pipeline, newest first (`startedAt`, then run id), the newest `keepRuns` are kept; of
 * the rest, a run that is not `succeeded` is kept (a failed one is redriven from its
 * parts, a running one is in use), and so is any run the current state reads
 * (`current`, keys from {@link runRef}); every other run is superseded.
 */
export function retainRuns<R extends RetainedRun>(
  runs: readonly R[],
  current: ReadonlySet<string>,
  keepRuns: number,
): { run: R; remove: boolean; reason: string }[] {
  const byPipeline = new Map<string, R[]>();
  for (const run of runs) byPipeline.set(run.pipeline, [...(byPipeline.get(run.pipeline) ?? []), run]);
  const out: { run: R; remove: boolean; reason: string }[] = [];
  for (const [pipeline, list] of [...byPipeline].sort(([a], [b]) => a.localeCompare(b))) {
    const newestFirst = [...list].sort(
      (a, b) => b.startedAt.localeCompare(a.startedAt) || b.runId.localeCompare(a.runId),
    );
    for (const [rank, run] of newestFirst.entries()) {
      const kept =
        rank < keepRuns
          ? `among the newest ${keepRuns}`
          : run.status !== 'succeeded'
            ? `${run.status}: ${run.status === 'failed' ? 'redrive reads its parts' : 'in use or waiting for redrive --resume'}`
            : current.has(runRef(pipeline, run.runId))
              ? 'the current state reads it'
              : undefined;
      out.push({
        run,
        remove: kept === undefined,
        reason: kept ?? 'superseded: every source and record it wrote has a newer version',
      });
    }
  }
  return out;
}

/**
 * Why a superseded run that wrote `embeddings` parts keeps them at `now`, or undefined
 * once it may give them up: chunk index entries may still point at them. A run that
 * carries a document whole leaves its entry pointing at the run that last wrote it while
 * that run is under ENTRY_REFRESH_DAYS older (shared/incremental/entry-refresh.ts), so:
 *
 * - for {@link EMBEDDINGS_HOLD_DAYS} after it started, whatever else holds: a run started
 *   since may be carrying from it now, and its own verdicts are not written yet;
 * - after that, while `refreshedBy` (current-runs.ts `REFRESHED_BY_SQL`: the earliest of
 *   the latest runs to read each of its sources again) started under ENTRY_REFRESH_DAYS
 *   after it: the documents of that source were carried without being rewritten, and
 *   their entries point here until a run reads them a week or more after this one. Without
 *   this, a gap in runs (two in one week, then none past gc) would turn those entries
 *   into misses and embed them all again.
 *
 * Applied to any run with `embeddings` parts, incremental pipeline or not: gc does not
 * know a run's pipeline settings (the deployed one reads only the `runs` table), entries
 * written while a pipeline was incremental outlive a change of setting, and a
 * non-incremental run's parts only stay {@link EMBEDDINGS_HOLD_DAYS} days longer (it reads
 * its sources again every run, so the second rule then lets go).
 */
export function embeddingsHold(runId: string, now: Date, refreshedBy?: string): string | undefined {
  const until = embeddingsHeldUntil(runId);
  if (until === undefined) return undefined;
  if (until.getTime() > now.getTime())
    return `its embeddings may still be read by the chunk index until ${until.toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
  if (refreshedBy !== undefined && entryIsFresh(refreshedBy, runId))
    return `its embeddings may still be read by the chunk index: no run has read all its sources again ${ENTRY_REFRESH_DAYS} days or more after it`;
  return undefined;
}
