/**
 * `sluice search`'s local exact scan at 100,000 current chunks of 384 dimensions, three
 * variants on the same queries: the nearest-chunks SQL over `embeddings_current` as the
 * command runs it (a fresh sandboxed DuckDB per search, every view created) with the view
 * as it is (the current-version rule on narrow keys, then the current chunks joined in),
 * the same with the view as it was (baseline: `rank()` over every chunk row, vector
 * included), their results checked identical; and the bare scan over one run's
 * `embeddings` on an open connection (no view, no start-up), the floor.
 *
 * Two homes: one run (100,000 rows, all current), and two runs that each wrote every
 * chunk (200,000 rows, 100,000 current), which is what a home holds after an
 * incremental re-run that changed nothing. The Parquet parts are written by DuckDB in the
 * results layout with the writer's column types (shared/output/parquet-tables.ts);
 * vectors are random (cosine normalises them itself). Embedding the query is not included (one call to
 * the model server).
 *
 * `npm run bench -- search`
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { searchLocalChunks } from '../cli/commands/search.ts';
import { queryLocalTables } from '../cli/query/local-tables.ts';
import { CURRENT_VIEWS } from '../shared/views/current-views.ts';
import { nearestChunkOf, nearestChunksDuckDbSql } from '../shared/views/nearest-chunks.ts';

const PIPELINE = 'bench';
const MODEL = 'bench-model';
const DIMENSIONS = 384;
const CHUNKS = 100_000;
const CHUNKS_PER_DOC = 4;
const SOURCES = 10;
const QUERIES = 5;
const K = 10;

interface Latency {
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

interface Case {
  readonly runs: number;
  readonly rowsInEmbeddings: number;
  readonly currentChunks: number;
  /** Baseline: the search SQL over the view as it was before (rank() over every chunk row, vector included), as the command runs it. */
  readonly searchBeforeWideRankView: Latency;
  /** `sluice search`'s path now: the view ranks narrow version keys, then joins the chunks of the current versions. */
  readonly searchNarrowKeysView: Latency;
  /** The same scan over one run's `embeddings` rows on an open connection: no view, no start-up (the floor). */
  readonly scanOneRunOpenConnection: Latency;
  /** Queries whose before and after results (chunk ids, order, scores) were identical: all of them, or the bench fails. */
  readonly sameResults: number;
}

interface SearchBenchResult {
  readonly name: 'search';
  readonly workload: string;
  readonly engine: string;
  readonly vss: string;
  readonly rerun: string;
  readonly cases: readonly Case[];
}

/**
 * The baseline: `embeddings_current` as it was defined before the narrow-keys rewrite (commit
 * c66dbd1): `rank()` over each document's chunk rows with all their columns, vector included.
 */
function wideRankViewSql(): string {
  const columns = CURRENT_VIEWS.find((v) => v.name === 'embeddings_current')!.columns.map((c) => c.name);
  const listed = (alias: string) => columns.map((c) => `${alias}.${c}`).join(', ');
  return `WITH source_verdicts AS (
  SELECT s.pipeline, s.source_key, s.run_id, s.status, s.started_at
  FROM sources s
  WHERE s.status IN ('read', 'deleted')
  UNION ALL
  SELECT DISTINCT e.pipeline, e.source_key, e.run_id, 'read' AS status, r.started_at
  FROM embeddings e
  JOIN runs r ON r.pipeline = e.pipeline AND r.run_id = e.run_id
  WHERE r.status = 'succeeded'
    AND NOT EXISTS (
      SELECT 1 FROM sources k WHERE k.pipeline = e.pipeline AND k.source_key = e.source_key
    )
),
latest_verdicts AS (
  SELECT pipeline, source_key, run_id, status, started_at,
    row_number() OVER (PARTITION BY pipeline, source_key ORDER BY started_at DESC, run_id DESC) AS verdict_rank
  FROM source_verdicts
),
live_chunks AS (
  SELECT ${listed('e')},
    rank() OVER (PARTITION BY e.pipeline, e.doc_id ORDER BY v.started_at DESC, e.run_id DESC, e.source_key DESC) AS version_rank
  FROM embeddings e
  JOIN latest_verdicts v ON v.pipeline = e.pipeline AND v.source_key = e.source_key AND v.run_id = e.run_id
  WHERE v.verdict_rank = 1 AND v.status = 'read'
)
SELECT ${listed('c')}
FROM live_chunks c
WHERE c.version_rank = 1`;
}

const runIdOf = (n: number) => `r-20260101T00000${n}Z-00000${n}`;

/** Writes one run's embeddings (one part per source) and its `sources` rows into the results layout. */
async function writeRun(db: Awaited<ReturnType<DuckDBInstance['connect']>>, bucket: string, n: number) {
  const runId = runIdOf(n);
  const partition = (table: string) =>
    path.join(bucket, 'results', table, `pipeline=${PIPELINE}`, 'run_date=2026-01-01');
  await mkdir(partition('embeddings'), { recursive: true });
  await mkdir(partition('sources'), { recursive: true });
  const perSource = CHUNKS / SOURCES;
  for (let s = 0; s < SOURCES; s++) {
    const file = path.join(partition('embeddings'), `${runId}-u${s}.parquet`);
    await db.run(`COPY (
      WITH raw AS (
        SELECT i, list_transform(range(${DIMENSIONS}), d -> (random() * 2 - 1)::FLOAT) AS v
        FROM range(${s * perSource}, ${(s + 1) * perSource}) t(i)
      )
      SELECT '${runId}' AS run_id,
        'doc-' || (i // ${CHUNKS_PER_DOC}) AS doc_id,
        'doc-' || (i // ${CHUNKS_PER_DOC}) || '#' || (i % ${CHUNKS_PER_DOC}) AS chunk_id,
        (i % ${CHUNKS_PER_DOC})::INTEGER AS chunk_index,
        0::INTEGER AS char_start, 800::INTEGER AS char_end, 200::INTEGER AS token_count,
        sha256(i::VARCHAR) AS text_sha256, '${MODEL}' AS model,
        v AS embedding,
        'incoming/${PIPELINE}/part-${s}.jsonl' AS source_key,
        'chunk text of ' || i || repeat(' lorem ipsum', 60) AS chunk_text,
        NULL::VARCHAR AS metadata
      FROM raw
    ) TO '${file}' (FORMAT parquet)`);
  }
  await db.run(`COPY (
    SELECT '${runId}' AS run_id, 'incoming/${PIPELINE}/part-' || s || '.jsonl' AS source_key, 'read' AS status,
      '2026-01-01T00:00:0${n}.000Z' AS started_at, ${perSource / CHUNKS_PER_DOC}::BIGINT AS documents,
      ${perSource}::BIGINT AS chunks, 0::BIGINT AS removed_documents, 0::BIGINT AS removed_chunks, NULL::VARCHAR AS reason
    FROM range(${SOURCES}) t(s)
  ) TO '${path.join(partition('sources'), `${runId}.parquet`)}' (FORMAT parquet)`);
}

function randomVector(): number[] {
  const v = Array.from({ length: DIMENSIONS }, () => Math.random() * 2 - 1);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

function latencyOf(samples: number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    medianMs: round(sorted[Math.floor(sorted.length / 2)]!),
    minMs: round(sorted[0]!),
    maxMs: round(sorted.at(-1)!),
  };
}

async function measureCase(runs: number): Promise<Case> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-bench-search-'));
  try {
    const bucket = path.join(dir, 'bucket');
    const instance = await DuckDBInstance.create(':memory:');
    const db = await instance.connect();
    for (let n = 1; n <= runs; n++) await writeRun(db, bucket, n);
    const glob = path.join(bucket, 'results', 'embeddings', '**', '*.parquet');
    await db.run(
      `CREATE VIEW one_run AS SELECT * FROM read_parquet('${glob}', hive_partitioning = true) WHERE run_id = '${runIdOf(runs)}'`,
    );
    const query = { pipeline: PIPELINE, model: MODEL, k: K };

    const beforeSamples: number[] = [];
    const afterSamples: number[] = [];
    const scanSamples: number[] = [];
    let sameResults = 0;
    for (let q = 0; q < QUERIES; q++) {
      const vector = randomVector();
      const sql = nearestChunksDuckDbSql({ ...query, vector });
      let started = performance.now();
      const before = (
        await queryLocalTables(
          bucket,
          sql.replace('FROM embeddings_current', `FROM (${wideRankViewSql()}) embeddings_current`),
        )
      ).rows.map(nearestChunkOf);
      beforeSamples.push(performance.now() - started);
      started = performance.now();
      const found = await searchLocalChunks(bucket, { ...query, vector });
      afterSamples.push(performance.now() - started);
      if (found.length !== K) throw new Error(`search returned ${found.length} rows, not ${K}`);
      if (JSON.stringify(found) !== JSON.stringify(before))
        throw new Error(`query ${q}: the narrow-keys view returned other results than the baseline`);
      sameResults++;
      started = performance.now();
      await db.runAndReadAll(sql.replace('FROM embeddings_current', 'FROM one_run'));
      scanSamples.push(performance.now() - started);
    }
    const counted = await db.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${glob}')`);
    const rows = Number(counted.getRowObjectsJS()[0]?.n);
    db.closeSync();
    instance.closeSync();
    return {
      runs,
      rowsInEmbeddings: rows,
      currentChunks: CHUNKS,
      searchBeforeWideRankView: latencyOf(beforeSamples),
      searchNarrowKeysView: latencyOf(afterSamples),
      scanOneRunOpenConnection: latencyOf(scanSamples),
      sameResults,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runSearchBench(): Promise<SearchBenchResult> {
  const cases: Case[] = [];
  for (const runs of [1, 2]) cases.push(await measureCase(runs));
  return {
    name: 'search',
    workload: `${CHUNKS.toLocaleString('en-US')} current chunks x ${DIMENSIONS} float32 dims (${CHUNKS_PER_DOC} chunks per document, ${SOURCES} sources), top ${K} by cosine, ${QUERIES} random queries per case`,
    engine:
      'DuckDB (@duckdb/node-api) list_cosine_similarity, exact scan with a top-k sort; before: the view ranked every chunk row (vector included), after: it ranks narrow version keys and joins the current chunks',
    vss: 'not used: DuckDB vss (HNSW) is not in the npm package; INSTALL vss downloads it from extensions.duckdb.org (docs/search.md)',
    rerun: 'npm run bench -- search',
    cases,
  };
}
