/**
 * Where a recommend run keeps what its stages hand on, under the run's own prefix
 * (`runs/<pipeline>/<runId>/recommend/`): each ingest unit's interactions, the index and
 * holdout its merge builds, the shard plan, and each shard's evaluation partial. Every key
 * is deterministic, so a retried unit or merge overwrites its own files.
 */
export function recommendStagingPrefix(pipeline: string, runId: string): string {
  return `runs/${pipeline}/${runId}/recommend/`;
}

/** An ingest unit's valid interactions, deduplicated within the unit (log codec). */
export const ingestPartKey = (pipeline: string, runId: string, unitId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}ingest/${unitId}.bin`;

/** The training interactions of the whole run, both ways (index codec). */
export const indexKey = (pipeline: string, runId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}index.bin`;

/** The held-out interactions per user (holdout codec); only with `evaluation.holdoutFraction`. */
export const holdoutKey = (pipeline: string, runId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}holdout.bin`;

/** The user shards: their user indices as little-endian int32, shard after shard. */
export const shardsKey = (pipeline: string, runId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}shards.bin`;

/** What the ingest merge found and planned (JSON, {@link IngestManifest}). */
export const ingestManifestKey = (pipeline: string, runId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}ingest.json`;

/** What a similarity unit left for the merge: users, rows, evaluation partial (JSON). */
export const shardResultKey = (pipeline: string, runId: string, unitId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}shards/${unitId}.json`;
