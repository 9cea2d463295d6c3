import { createHash } from 'node:crypto';
import type { RunState } from '../domain/types.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';

/** What names one tick of a pipeline's schedule. */
export interface ScheduledTick {
  readonly pipeline: string;
  readonly prefix: string;
  /** The time the schedule fired for (EventBridge Scheduler's `<aws.scheduler.scheduled-time>`), ISO 8601. */
  readonly scheduledTime: string;
}

/**
 * The run id of one schedule tick: `r-<scheduled time>-<hash>`, the same for every delivery
 * and retry of the tick, so a retried plan finds the run its first attempt recorded instead
 * of starting a second one. The hash covers the pipeline, the prefix and the time, so two
 * pipelines scheduled at the same minute get different runs; the time part keeps run ids
 * sortable and names the run's `run_date` partition, as for any run.
 *
 * @throws RangeError when `scheduledTime` is not a date
 */
export function scheduledRunId(tick: ScheduledTick): string {
  const time = new Date(tick.scheduledTime);
  if (Number.isNaN(time.getTime()))
    throw new RangeError(`scheduled time ${tick.scheduledTime} is not a date`);
  const stamp = time
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  const hash = createHash('sha256')
    .update(`${tick.pipeline}\u0000${tick.prefix}\u0000${time.toISOString()}`)
    .digest('hex')
    .slice(0, 12);
  return `r-${stamp}-${hash}`;
}

export interface ResumedRun {
  readonly run: RunState;
  /** Units sent again: recorded but never delivered (status `pending`, no attempt yet). */
  readonly resent: number;
  /** Whether finalize was asked for again (a running run with no units). */
  readonly finalizeRequested: boolean;
}

/**
 * Takes up a run an earlier attempt of the same plan recorded (same run id) instead of
 * planning it twice: a unit still waiting for its first delivery is sent again (the first
 * attempt may have failed before sending it; a unit delivered twice is worked once, as
 * completions are conditional), and a running run without units asks for finalize again
 * (finalize is idempotent). A run no longer running is left as it is.
 */
export async function resumeRun(
  deps: { readonly runs: RunStore; readonly queue: WorkQueue },
  run: RunState,
): Promise<ResumedRun> {
  if (run.status !== 'running') return { run, resent: 0, finalizeRequested: false };
  if (run.totalUnits === 0) {
    await deps.queue.requestFinalize(run.runId);
    return { run, resent: 0, finalizeRequested: true };
  }
  const units = await deps.runs.listUnits(run.runId, { withDescriptors: true });
  const waiting = units.filter((unit) => unit.status === 'pending' && unit.attempts === 0);
  const descriptors = waiting.flatMap((unit) => (unit.descriptor === undefined ? [] : [unit.descriptor]));
  if (descriptors.length > 0) await deps.queue.sendUnits(descriptors);
  return { run, resent: descriptors.length, finalizeRequested: false };
}
