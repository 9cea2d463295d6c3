/**
 * The SQL of a nearest-chunks search over `embeddings_current` (shared/views/current-views.ts):
 * exact cosine similarity between the query vector and every current chunk of one pipeline
 * embedded by the query's model, best first.
 */

/** One chunk a search found. */
export interface NearestChunk {
  readonly rank: number;
  readonly docId: string;
  readonly chunkId: string;
  readonly chunkIndex: number;
  /** Cosine similarity with the query, from -1 to 1 (1: same direction). */
  readonly score: number;
  readonly text: string;
  readonly sourceKey: string;
  readonly runId: string;
  readonly model: string;
}

export interface NearestChunksQuery {
  readonly pipeline: string;
  /** Only chunks this model embedded are comparable with the query vector. */
  readonly model: string;
  readonly vector: readonly number[];
  readonly k: number;
}

/** The most results a search returns. */
export const MAX_K = 1000;

const sqlString = (value: string): string => `'${value.replaceAll("'", "''")}'`;

/** A float as SQL reads it back exactly (no exponent DuckDB or Trino could misread). */
function sqlNumber(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`the query vector holds ${value}: not a finite number`);
  return String(value);
}

/**
 * DuckDB: `list_cosine_similarity` over the stored `FLOAT[]` and the query as a `FLOAT[]`
 * literal, a full scan of the pipeline's current chunks with a top-k sort (DuckDB's vss
 * extension, with an HNSW index, is not shipped in the npm package: see docs/search.md).
 * Ties are broken by chunk id so the order is stable. The view applies the current-version
 * rule to narrow key columns and joins in only current chunks, so every row scored is
 * current and a top k over them is exactly k when the pipeline has k current chunks of
 * the model (no top-k-then-filter that could return fewer); nothing sorts the vectors but
 * the top-k heap over the scores.
 */
export function nearestChunksDuckDbSql(query: NearestChunksQuery): string {
  if (!Number.isInteger(query.k) || query.k < 1 || query.k > MAX_K)
    throw new RangeError(`k must be an integer from 1 to ${MAX_K}, got ${query.k}`);
  const vector = `[${query.vector.map(sqlNumber).join(', ')}]::FLOAT[]`;
  return `SELECT doc_id, chunk_id, chunk_index, chunk_text, source_key, run_id, model,
  list_cosine_similarity(embedding, ${vector}) AS score
FROM embeddings_current
WHERE pipeline = ${sqlString(query.pipeline)} AND model = ${sqlString(query.model)}
ORDER BY score DESC, chunk_id
LIMIT ${query.k}`;
}

/** A float as a Trino DOUBLE literal (`1.5E-2`: a plain `0.015` would be a DECIMAL in Trino). */
function trinoDouble(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`the query vector holds ${value}: not a finite number`);
  return value.toExponential().toUpperCase().replace('E+', 'E');
}

/**
 * Athena (Trino): the same scan with Trino's array functions, since Athena has no cosine
 * of two arrays: the dot product by `zip_with` and `reduce`, over the chunk's norm times the
 * query's. Chunks are those of the query's dimension, not of a named model: a deployed
 * pipeline's `model` column records the model its endpoint serves (context
 * `sluice:hfModelId`), which the command line does not know.
 */
export function nearestChunksAthenaSql(query: Omit<NearestChunksQuery, 'model'>): string {
  if (!Number.isInteger(query.k) || query.k < 1 || query.k > MAX_K)
    throw new RangeError(`k must be an integer from 1 to ${MAX_K}, got ${query.k}`);
  const norm = Math.hypot(...query.vector);
  if (norm === 0) throw new RangeError('the query vector is all zeros: it has no direction to compare');
  const vector = `ARRAY[${query.vector.map(trinoDouble).join(', ')}]`;
  return `SELECT doc_id, chunk_id, chunk_index, chunk_text, source_key, run_id, model,
  reduce(zip_with(embedding, ${vector}, (a, b) -> a * b), 0.0E0, (s, x) -> s + x, s -> s)
    / (sqrt(reduce(embedding, 0.0E0, (s, x) -> s + x * x, s -> s)) * ${trinoDouble(norm)}) AS score
FROM embeddings_current
WHERE pipeline = ${sqlString(query.pipeline)} AND cardinality(embedding) = ${query.vector.length}
ORDER BY score DESC, chunk_id
LIMIT ${query.k}`;
}

/** The models of a pipeline's current chunks and how many each embedded (to explain an empty search). */
export function currentModelsSql(pipeline: string): string {
  return `SELECT model, count(*) AS chunks FROM embeddings_current WHERE pipeline = ${sqlString(pipeline)} GROUP BY model ORDER BY chunks DESC`;
}

/** A result row (as `sluice query` returns rows) as a {@link NearestChunk}. */
export function nearestChunkOf(row: Record<string, unknown>, index: number): NearestChunk {
  return {
    rank: index + 1,
    docId: String(row.doc_id),
    chunkId: String(row.chunk_id),
    chunkIndex: Number(row.chunk_index),
    score: Number(row.score),
    text: row.chunk_text === null || row.chunk_text === undefined ? '' : String(row.chunk_text),
    sourceKey: String(row.source_key),
    runId: String(row.run_id),
    model: String(row.model),
  };
}
