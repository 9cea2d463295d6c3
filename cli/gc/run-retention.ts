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
