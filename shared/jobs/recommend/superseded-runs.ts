import type { RunState } from '../../domain/types.ts';
import type { RunStore } from '../../ports/run-store.ts';
import type { SupersededRuns } from './recommendation-lists.ts';

/** What the rule reads of a run: the runs table and the local run store both give it. */
export type RunOrderFacts = Pick<RunState, 'runId' | 'pipeline' | 'startedAt'> & {
  /** `succeeded`, `failed`, `running`, ... (the `runs` table's column is a string). */
  readonly status: string;
  readonly finishedAt?: string | null | undefined;
};

/**
 * How long a succeeded run must have been finished before it supersedes older runs'
 * lists: the deployed reader finds the served run through the runs table's `byStartedAt`
 * index, which is eventually consistent (a status change shows there within about a
 * second), so a reader may still serve the run before a run that has just succeeded.
 * @default 60 s for the deployed sweep (a local home reads its runs consistently: 0)
 */
export const SUPERSEDED_SETTLE_MS = 60_000;

/**
 * True when every reader puts run `a` before run `b`: the deployed one orders a pipeline's
 * runs by `<startedAt>#<runId>` (the `byStartedAt` index's sort key), the local run store
 * by run id; both take the newest succeeded run as the one served. Two runs started in the
 * same second may be ordered differently by the two, so such a pair is "before" only when
 * both agree.
 */
export function servedBefore(a: RunOrderFacts, b: RunOrderFacts): boolean {
  return `${a.startedAt}#${a.runId}` < `${b.startedAt}#${b.runId}` && a.runId < b.runId;
}

/**
 * The runs among `runs` (one pipeline's) whose lists no reader serves again: those that
 * started before a run among them that succeeded (and finished by `settledAt`, an ISO time,
 * when given). A reader serves the pipeline's newest succeeded run, which is that run or a
 * newer one, and a succeeded run stays succeeded (only a failed run is reopened), so the
 * served run itself, any run newer than it, and every run when none has succeeded are kept:
 * a failed or half-written newest run never costs a user the list being served. A run id
 * with no run state is not in `runs` and is never superseded.
 */
export function supersededAmong<R extends RunOrderFacts>(runs: readonly R[], settledAt?: string): R[] {
  const superseding = runs.filter(
    (r) =>
      r.status === 'succeeded' &&
      (settledAt === undefined || (typeof r.finishedAt === 'string' && r.finishedAt <= settledAt)),
  );
  return runs.filter((r) => superseding.some((s) => s.pipeline === r.pipeline && servedBefore(r, s)));
}

/**
 * (use case) The rule a similarity unit applies to each of its users' stored lists, with
 * the runs read from the run store (GetItem, consistent) once per run id and unit. A status
 * read while a run was still running says less is superseded, never more; the unit's own
 * run is never named (a unit does not undo its own writes: a later run's units take them
 * when they are superseded).
 */
export class SupersededRunsOfStore implements SupersededRuns {
  private readonly states = new Map<string, Promise<RunState | undefined>>();

  /**
   * @param now the clock the settle time is taken from. @default the system clock
   * @param settleMs see {@link SUPERSEDED_SETTLE_MS}. @default SUPERSEDED_SETTLE_MS
   */
  constructor(
    private readonly runs: Pick<RunStore, 'getRun'>,
    private readonly pipeline: string,
    private readonly ownRunId: string,
    private readonly now: () => Date = () => new Date(),
    private readonly settleMs: number = SUPERSEDED_SETTLE_MS,
  ) {}

  async of(runIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(runIds)];
    if (ids.length < 2) return []; // nothing supersedes a lone list
    const states = await Promise.all(ids.map((id) => this.stateOf(id)));
    const known = states.filter((r): r is RunState => r !== undefined && r.pipeline === this.pipeline);
    const settledAt = new Date(this.now().getTime() - this.settleMs).toISOString();
    return supersededAmong(known, settledAt)
      .map((r) => r.runId)
      .filter((id) => id !== this.ownRunId);
  }

  private stateOf(runId: string): Promise<RunState | undefined> {
    let state = this.states.get(runId);
    if (state === undefined) {
      state = this.runs.getRun(runId);
      // A failed read is not remembered: the unit fails and its next delivery asks again.
      state.catch(() => this.states.delete(runId));
      this.states.set(runId, state);
    }
    return state;
  }
}
