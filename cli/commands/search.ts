import { ConfigError } from '../../shared/errors/errors.ts';
import {
  currentModelsSql,
  MAX_K,
  type NearestChunk,
  nearestChunkOf,
  nearestChunksDuckDbSql,
} from '../../shared/views/nearest-chunks.ts';
import { queryLocalTables } from '../query/local-tables.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import { MODEL_OPTIONS, queryTextOf, startQueryEmbedder } from './embed.ts';
import type { CommandIo } from './io.ts';

/** @default 10 */
const DEFAULT_K = 10;
/** Characters of a chunk's text shown per result (the whole text is in `--json`). */
const EXCERPT_CHARS = 100;

/** A search that cannot compare: no current chunk of the pipeline was embedded by the query's model. */
export class NothingToSearch extends ConfigError {}

/**
 * The `k` chunks of `embeddings_current` nearest to `vector` (cosine), from DuckDB over
 * the home's results, sandboxed as `sluice query` is.
 * @throws NothingToSearch when the pipeline has no current chunk from `model`
 */
export async function searchLocalChunks(
  bucketDir: string,
  query: { pipeline: string; model: string; vector: readonly number[]; k: number },
): Promise<NearestChunk[]> {
  const { rows } = await queryLocalTables(bucketDir, nearestChunksDuckDbSql(query));
  if (rows.length > 0) return rows.map(nearestChunkOf);
  const models = (await queryLocalTables(bucketDir, currentModelsSql(query.pipeline))).rows;
  if (models.length === 0)
    throw new NothingToSearch(
      `pipeline ${query.pipeline} has no current embeddings: run it first (sluice run PATH --pipeline ${query.pipeline})`,
    );
  const found = models.map((m) => `${m.model} (${m.chunks} chunks)`).join(', ');
  throw new NothingToSearch(
    `pipeline ${query.pipeline}'s current chunks were embedded by ${found}, not ${query.model}: search with the model the run used (--model-dir DIR or --endpoint-url URL as given to sluice run)`,
  );
}

function excerptOf(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS - 1)}…` : flat;
}

/**
 * `sluice search "text" --pipeline NAME [-k N]`: embeds the text with the pipeline's model
 * (as `sluice run` calls it) and prints the `k` nearest current chunks with their document
 * id, cosine score and an excerpt; `--json` prints them as one JSON array.
 */
export async function searchCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    ...MODEL_OPTIONS,
    k: { type: 'string', short: 'k' },
  });
  const k = values.k === undefined ? DEFAULT_K : Number(values.k);
  if (!Number.isInteger(k) || k < 1 || k > MAX_K)
    throw new UsageError(`-k must be an integer from 1 to ${MAX_K}, got "${values.k}"`);
  const text = queryTextOf(positionals, 'search');
  const embedder = await startQueryEmbedder(values, 'search', (line) => io.err(line));
  let results: NearestChunk[];
  try {
    const vector = await embedder.embed(text);
    results = await searchLocalChunks(embedder.home.bucketDir, {
      pipeline: embedder.config.name,
      model: embedder.model,
      vector,
      k,
    });
  } catch (error) {
    if (error instanceof NothingToSearch) throw new UsageError(error.message);
    throw error;
  } finally {
    await embedder.close();
  }
  if (values.json) {
    io.out(JSON.stringify(results));
    return 0;
  }
  const width = Math.max(...results.map((r) => r.docId.length), 'doc'.length);
  io.out(`${'#'.padStart(3)}  score   ${'doc'.padEnd(width)}  chunk  excerpt`);
  for (const r of results)
    io.out(
      `${String(r.rank).padStart(3)}  ${r.score.toFixed(4)}  ${r.docId.padEnd(width)}  ${String(r.chunkIndex).padStart(5)}  ${excerptOf(r.text)}`,
    );
  io.out(
    `(${results.length} nearest of pipeline ${embedder.config.name}'s current chunks, model ${embedder.model})`,
  );
  return 0;
}
