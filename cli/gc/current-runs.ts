import { SOURCE_VERDICTS_SQL } from '../../shared/views/current-views.ts';
import { queryLocalTables } from '../query/local-tables.ts';

/**
 * The runs whose results the current state still reads, per pipeline: removing any part of
 * one of them could change `embeddings_current` or `scores_current`.
 *
 * - **Embeddings**: every run that gives the latest verdict on some source (the steps 1-2
 *   of `embeddings_current`, over the view's own `SOURCE_VERDICTS_SQL` from
 *   shared/views/current-views.ts: a `sources` row `read` or `deleted`, or a succeeded run
 *   without `sources` rows that wrote the source's chunks; latest by `started_at`, then run
 *   id). A run holding a `deleted` verdict is
 *   kept too: without it an older `read` of the source would become the latest again.
 *   Taken from the verdicts rather than from the view's rows, because a run whose chunks
 *   were all superseded by a newer source still decides what its own source holds.
 * - **Scores**: every run that holds the latest score of some record id (the rule of
 *   `scores_current`).
 *
 * Both are computed over the same local tables the views read; test/cli/gc.test.ts checks
 * that the views read the same rows before and after a gc.
 */
export const CURRENT_RUNS_SQL = `WITH source_verdicts AS (${SOURCE_VERDICTS_SQL}),
latest_verdicts AS (
  SELECT pipeline, run_id,
    row_number() OVER (PARTITION BY pipeline, source_key ORDER BY started_at DESC, run_id DESC) AS verdict_rank
  FROM source_verdicts
),
latest_scores AS (
  SELECT s.pipeline, s.run_id,
    row_number() OVER (PARTITION BY s.pipeline, s.record_id ORDER BY r.started_at DESC, s.run_id DESC) AS version_rank
  FROM scores s
  JOIN runs r ON r.pipeline = s.pipeline AND r.run_id = s.run_id
)
SELECT DISTINCT pipeline, run_id FROM latest_verdicts WHERE verdict_rank = 1
UNION
SELECT DISTINCT pipeline, run_id FROM latest_scores WHERE version_rank = 1`;

/** `<pipeline>\t<runId>` of every run the current state reads (see {@link CURRENT_RUNS_SQL}). */
export async function runsTheCurrentStateReads(bucketDir: string): Promise<Set<string>> {
  const { rows } = await queryLocalTables(bucketDir, CURRENT_RUNS_SQL);
  return new Set(rows.map((row) => runRef(String(row.pipeline), String(row.run_id))));
}

export const runRef = (pipeline: string, runId: string): string => `${pipeline}\t${runId}`;

/**
 * Per run that read a source (a `sources` row `read`, or `skipped`: its units read the
 * source but finalize did not compare it, out of time, its stored manifest unreadable, or a
 * later-started run's manifest there first; the run succeeded): the earliest of the latest
 * runs to give a verdict (`read` or `deleted`, succeeded) on each of its sources, as
 * `refreshed_by`. A chunk index entry left pointing at the run is rewritten only by a run
 * that reads its document again at least ENTRY_REFRESH_DAYS after it
 * (shared/incremental/entry-refresh.ts), so while `refreshed_by` started sooner than that
 * after the run, some source's entries may still point at its `embeddings` parts
 * (run-retention.ts `embeddingsHold`). A skipped row counts as the run's read, never as a
 * verdict (gc cannot tell it from a deleted source finalize had no time for); a source with
 * no verdict yet, or whose latest verdict is older than a skipped read, names a run no later
 * than the reader, which holds it. A source deleted after the run holds nothing: that
 * deletion's finalize forgot its documents' entries (chunk count 0, no chunks), so none
 * points at a run that read it before, even once the source is added again (its documents
 * are embedded anew); a run all of whose sources are deleted since has no row. Run ids sort
 * by start time to the second, which is all the comparison needs; the same SQL runs in
 * DuckDB and Athena.
 */
export const REFRESHED_BY_SQL = `WITH succeeded_rows AS (
  SELECT s.pipeline, s.source_key, s.run_id, s.status
  FROM sources s
  JOIN runs r ON r.pipeline = s.pipeline AND r.run_id = s.run_id
  WHERE r.status = 'succeeded'
),
latest AS (
  SELECT pipeline, source_key,
    max(CASE WHEN status IN ('read', 'deleted') THEN run_id END) AS latest_run_id,
    max(CASE WHEN status = 'deleted' THEN run_id END) AS deleted_run_id
  FROM succeeded_rows
  GROUP BY pipeline, source_key
)
SELECT v.pipeline, v.run_id, min(coalesce(l.latest_run_id, v.run_id)) AS refreshed_by
FROM succeeded_rows v
JOIN latest l ON l.pipeline = v.pipeline AND l.source_key = v.source_key
WHERE v.status IN ('read', 'skipped') AND (l.deleted_run_id IS NULL OR l.deleted_run_id < v.run_id)
GROUP BY v.pipeline, v.run_id`;

/** `refreshed_by` of each run (see {@link REFRESHED_BY_SQL}), by {@link runRef}. */
export function refreshedByOf(rows: readonly Record<string, unknown>[]): Map<string, string> {
  return new Map(
    rows.map((row) => [runRef(String(row.pipeline), String(row.run_id)), String(row.refreshed_by)]),
  );
}

/** {@link REFRESHED_BY_SQL} over a local home's tables. */
export async function localRefreshedBy(bucketDir: string): Promise<Map<string, string>> {
  return refreshedByOf((await queryLocalTables(bucketDir, REFRESHED_BY_SQL)).rows);
}
