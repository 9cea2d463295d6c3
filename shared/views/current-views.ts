import { TABLE_COLUMNS } from '../output/parquet-tables.ts';

/**
 * The current state of the results, as views over the run-by-run tables: each run writes
 * every chunk of the sources it read (carried ones included) and every score again, so
 * after N runs a plain `select * from embeddings` holds up to N versions of a document.
 *
 * The SQL here is the one definition both engines run: DuckDB (`sluice query`,
 * cli/query/local-tables.ts) and Athena (Glue views, infra/constructs/current-views.ts).
 * It keeps to what Trino (Athena engine 3) and DuckDB both accept: CTEs, `UNION ALL`,
 * `NOT EXISTS`, inner joins, `rank()`/`row_number() OVER (PARTITION BY .. ORDER BY ..)`,
 * `IN` lists and string literals. It avoids what one of them lacks or reads differently:
 * DuckDB's `::` casts, `QUALIFY`, `SELECT * EXCLUDE` and list functions; Trino's `UNNEST`
 * and lambdas; `max_by` (which row wins a tie is not defined, so ties are broken here by
 * run id explicitly). Tables are named unqualified, so a view resolves them in its own
 * database (the Glue view records it) or DuckDB's default schema.
 */

/** A column of a view: its name and its type in each engine's catalog. */
export interface ViewColumn {
  readonly name: string;
  /** Glue/Hive type (`StorageDescriptor.Columns`). */
  readonly hiveType: string;
  /** Trino type, as a Presto view's JSON lists it. */
  readonly trinoType: string;
}

export interface CurrentView {
  readonly name: 'embeddings_current' | 'scores_current';
  /** What the view holds, for the catalog and docs. */
  readonly description: string;
  /** The SELECT that defines it: one statement, no trailing semicolon. */
  readonly sql: string;
  readonly columns: readonly ViewColumn[];
}

const TYPES = {
  string: { hiveType: 'string', trinoType: 'varchar' },
  int32: { hiveType: 'int', trinoType: 'integer' },
  int64: { hiveType: 'bigint', trinoType: 'bigint' },
  double: { hiveType: 'double', trinoType: 'double' },
  'float-list': { hiveType: 'array<float>', trinoType: 'array(real)' },
} as const;

/** The partition keys every table has, last, as both engines expose them. */
const PARTITION_COLUMNS: readonly ViewColumn[] = [
  { name: 'pipeline', ...TYPES.string },
  { name: 'run_date', ...TYPES.string },
];

function columnsOf(table: 'embeddings' | 'scores'): ViewColumn[] {
  return [...TABLE_COLUMNS[table].map((c) => ({ name: c.name, ...TYPES[c.type] })), ...PARTITION_COLUMNS];
}

const listed = (alias: string, columns: readonly ViewColumn[]): string =>
  columns.map((c) => `${alias}.${c.name}`).join(', ');

const EMBEDDINGS_COLUMNS = columnsOf('embeddings');
const SCORES_COLUMNS = columnsOf('scores');

/**
 * Every verdict on a source, one row per run that settled it: `pipeline, source_key, run_id,
 * status ('read' | 'deleted'), started_at`. An incremental run speaks through its `sources`
 * rows only (a source it read but left `skipped` gets no verdict from it); a succeeded run
 * with no `sources` row at all kept no manifests, and reads whole every source it wrote
 * chunks of. Whether a run kept manifests is asked of the run, not of the source: a
 * pipeline that turns `incremental.enabled` off after an incremental run has `sources`
 * rows for its sources, and its newer runs must still replace them (asked of the source,
 * they were ignored: the view kept the last incremental snapshot). The body of a CTE, shared
 * with gc (cli/gc/current-runs.ts), which must keep every run the view reads.
 */
export const SOURCE_VERDICTS_SQL = `
  SELECT s.pipeline, s.source_key, s.run_id, s.status, s.started_at
  FROM sources s
  WHERE s.status IN ('read', 'deleted')
  UNION ALL
  SELECT DISTINCT e.pipeline, e.source_key, e.run_id, 'read' AS status, r.started_at
  FROM embeddings e
  JOIN runs r ON r.pipeline = e.pipeline AND r.run_id = e.run_id
  WHERE r.status = 'succeeded'
    AND NOT EXISTS (
      SELECT 1 FROM sources k WHERE k.pipeline = e.pipeline AND k.run_id = e.run_id
    )
`;

/**
 * The latest version of every live document's chunks, deletions applied.
 *
 * 1. Each source's verdicts ({@link SOURCE_VERDICTS_SQL}): an incremental run's `sources`
 *    rows `read` and `deleted` (a `skipped` source kept its earlier snapshot: its run did
 *    not read all of it), and a `read` by every succeeded run without `sources` rows (one
 *    of `incremental.enabled: false`, which keeps no manifests) of each source it wrote
 *    chunks of. A pipeline may turn incremental off and on again, so one source can have
 *    verdicts of both kinds.
 * 2. Its latest verdict by the run's `started_at` (then run id): `read` makes that run's
 *    chunks of it the source's snapshot; `deleted` leaves it nothing.
 * 3. A document in the snapshots of two sources (it moved, and its old file was not
 *    re-dropped) is taken from the one written last. Within a run a document id is in one
 *    source only (finalize's duplicate-id rule), so `rank()` keeps all chunks of that one
 *    version and nothing else.
 *
 * Steps 1-3 run on narrow key columns only (pipeline, doc_id, run_id, source_key: one row
 * per document version, no vector or text), and the chunks of each current version are
 * then joined in: a query that names a few columns (`sluice search`'s cosine) reads the
 * wide columns once, and no window sorts them. All key columns are required (non-null) in
 * `embeddings`, so the equality join keeps exactly the rows `rank() = 1` over the chunks
 * themselves would keep.
 */
const EMBEDDINGS_CURRENT_SQL = `WITH source_verdicts AS (${SOURCE_VERDICTS_SQL}),
latest_verdicts AS (
  SELECT pipeline, source_key, run_id, status, started_at,
    row_number() OVER (PARTITION BY pipeline, source_key ORDER BY started_at DESC, run_id DESC) AS verdict_rank
  FROM source_verdicts
),
live_versions AS (
  SELECT d.pipeline, d.doc_id, d.run_id, d.source_key,
    rank() OVER (PARTITION BY d.pipeline, d.doc_id ORDER BY d.started_at DESC, d.run_id DESC, d.source_key DESC) AS version_rank
  FROM (
    SELECT DISTINCT e.pipeline, e.doc_id, e.run_id, e.source_key, v.started_at
    FROM embeddings e
    JOIN latest_verdicts v ON v.pipeline = e.pipeline AND v.source_key = e.source_key AND v.run_id = e.run_id
    WHERE v.verdict_rank = 1 AND v.status = 'read'
  ) d
),
current_versions AS (
  SELECT pipeline, doc_id, run_id, source_key FROM live_versions WHERE version_rank = 1
)
SELECT ${listed('e', EMBEDDINGS_COLUMNS)}
FROM embeddings e
JOIN current_versions c
  ON c.pipeline = e.pipeline AND c.doc_id = e.doc_id AND c.run_id = e.run_id AND c.source_key = e.source_key`;

/**
 * The latest score of every record id per pipeline: the row of the finalized run (one
 * with a `runs` row) that started last, then the highest run id. Scoring keeps no
 * manifests, so a record gone from its input keeps its last score.
 */
const SCORES_CURRENT_SQL = `SELECT ${listed('c', SCORES_COLUMNS)}
FROM (
  SELECT ${listed('s', SCORES_COLUMNS)},
    row_number() OVER (PARTITION BY s.pipeline, s.record_id ORDER BY r.started_at DESC, s.run_id DESC) AS version_rank
  FROM scores s
  JOIN runs r ON r.pipeline = s.pipeline AND r.run_id = s.run_id
) c
WHERE c.version_rank = 1`;

/** Every current-state view, in the order they are created (none depends on another). */
export const CURRENT_VIEWS: readonly CurrentView[] = [
  {
    name: 'embeddings_current',
    description:
      'The latest version of every live document: each source as the last run that read it wrote it, deleted sources left out, a document in two sources taken from the newer',
    sql: EMBEDDINGS_CURRENT_SQL,
    columns: EMBEDDINGS_COLUMNS,
  },
  {
    name: 'scores_current',
    description: 'The latest score of every record id per pipeline, from the finalized run that started last',
    sql: SCORES_CURRENT_SQL,
    columns: SCORES_COLUMNS,
  },
];
