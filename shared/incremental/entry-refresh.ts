/**
 * How long a chunk index entry may keep pointing at an older run's `embeddings` part.
 *
 * A document carried whole (every chunk's vector read back from the part its entry names)
 * needs no new entry: the old one is still right. Rewriting it anyway costs a DynamoDB
 * write per document per run, which on an unchanged nightly re-run of one-chunk documents
 * is most of the index's cost. But gc removes superseded runs' parts, so an entry may not
 * point at one run forever: a run rewrites the entries of documents it carried once their
 * run is {@link ENTRY_REFRESH_DAYS} old, and gc keeps a run's `embeddings` parts for
 * {@link EMBEDDINGS_HOLD_DAYS} after it started (docs/decisions.md, "Unchanged chunks are
 * carried, their vectors read from the run that wrote them").
 */
export const ENTRY_REFRESH_DAYS = 7;

/**
 * Days gc keeps a run's `embeddings` parts after the run started: the refresh period and
 * one day more, for the length of the run that last carried from them (it compares run
 * start times, and gc the clock) and for clocks that disagree.
 */
export const EMBEDDINGS_HOLD_DAYS = ENTRY_REFRESH_DAYS + 1;

const DAY_MS = 86_400_000;

/**
 * When a run started, in ms since the epoch, from its id (`r-YYYYMMDDTHHMMSSZ-xxxxxx`,
 * shared/output/keys.ts `newRunId`); undefined for an id not of that form.
 */
export function runStartOf(runId: string): number | undefined {
  const match = /^r-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(runId);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Date.UTC rolls a 31 February over into March: such an id names no time.
  if (
    back.getUTCMonth() !== month - 1 ||
    back.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  )
    return undefined;
  return ms;
}

/**
 * Whether run `runId` may leave an entry written by run `entryRunId` as it is: the entry's
 * run started less than {@link ENTRY_REFRESH_DAYS} before this one (or after it). Either
 * id unparseable: stale, so the entry is rewritten as it always was.
 */
export function entryIsFresh(runId: string, entryRunId: string): boolean {
  const now = runStartOf(runId);
  const then = runStartOf(entryRunId);
  if (now === undefined || then === undefined) return false;
  return now - then < ENTRY_REFRESH_DAYS * DAY_MS;
}

/**
 * Until when gc keeps the `embeddings` parts of run `runId`: {@link EMBEDDINGS_HOLD_DAYS}
 * after it started. Undefined for an id that gives no time: no entry is fresh against it.
 */
export function embeddingsHeldUntil(runId: string): Date | undefined {
  const started = runStartOf(runId);
  return started === undefined ? undefined : new Date(started + EMBEDDINGS_HOLD_DAYS * DAY_MS);
}
