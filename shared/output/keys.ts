import { createHash } from 'node:crypto';

/**
 * Object key layout, shared by the local object store and S3 so Athena and DuckDB
 * read the same Hive-style partitions (`pipeline=`, `run_date=`).
 */
export const INCOMING_PREFIX = 'incoming/';
export const RESULTS_PREFIX = 'results/';

export type TableName =
  | 'embeddings'
  | 'scores'
  | 'segment_stats'
  | 'sources'
  | 'rejects'
  | 'runs'
  | 'generations'
  | 'recommendations';

/** `incoming/<pipeline>/<rest>` -> pipeline name, or undefined when the key is outside incoming/. */
export function pipelineOfIncomingKey(key: string): string | undefined {
  const match = /^incoming\/([a-z0-9][a-z0-9-]*)\/.+/.exec(key);
  return match?.[1];
}

/** Run ids start with their UTC date, so a run's partition is known from its id alone. */
export function runDateOf(runId: string): string {
  const match = /^r-(\d{4})(\d{2})(\d{2})T/.exec(runId);
  if (!match) throw new Error(`run id ${runId} does not start with r-YYYYMMDDT`);
  return `${match[1]}-${match[2]}-${match[3]}`;
}

export function tablePartitionPrefix(table: TableName, pipeline: string, runId: string): string {
  return `${RESULTS_PREFIX}${table}/pipeline=${pipeline}/run_date=${runDateOf(runId)}/`;
}

/** One Parquet part per unit and table; deterministic so a retried unit overwrites its own part. */
export function unitPartKey(table: TableName, pipeline: string, runId: string, unitId: string): string {
  return `${tablePartitionPrefix(table, pipeline, runId)}${runId}-${unitId}.parquet`;
}

export function runRowKey(pipeline: string, runId: string): string {
  return `${tablePartitionPrefix('runs', pipeline, runId)}${runId}.parquet`;
}

export function runSummaryKey(pipeline: string, runId: string): string {
  return `runs/${pipeline}/${runId}/summary.json`;
}

/**
 * The documents an embed unit wrote to `embeddings`, per source (incremental pipelines):
 * `runs/<p>/<runId>/docs/<unitId>.tsv`. Deterministic, so a retried unit overwrites it.
 */
export function unitDocListKey(pipeline: string, runId: string, unitId: string): string {
  return `runs/${pipeline}/${runId}/docs/${unitId}.tsv`;
}

/**
 * Where a source's document manifest lives: `runs/<p>/sources/<sha256 of the key>/`.
 * Hashed, because a source key can be long and hold any character.
 */
export function sourceManifestPrefix(pipeline: string, sourceKey: string): string {
  return `runs/${pipeline}/sources/${createHash('sha256').update(sourceKey).digest('hex')}/`;
}

/** The pointer to a source's current manifest: which slot, how many segments, written by which run. */
export function sourceManifestPointerKey(pipeline: string, sourceKey: string): string {
  return `${sourceManifestPrefix(pipeline, sourceKey)}current.json`;
}

/** Segment `index` of the manifest held in `slot` (0 or 1: the pointer names the current one). */
export function sourceManifestSegmentKey(
  pipeline: string,
  sourceKey: string,
  slot: 0 | 1,
  index: number,
): string {
  return `${sourceManifestPrefix(pipeline, sourceKey)}slot-${slot}/${String(index).padStart(6, '0')}.tsv`;
}

/** A sortable, unique run id: `r-20261128T235108Z-3f9a1c`. */
export function newRunId(now: Date, random: () => number = Math.random): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  const suffix = Math.floor(random() * 0xffffff)
    .toString(16)
    .padStart(6, '0');
  return `r-${stamp}-${suffix}`;
}
