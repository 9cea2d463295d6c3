import type { Compression, InputFormat } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { EstimateMethod } from './sample-cost.ts';

/** One input of a run, as the manifest lists it. */
export interface ManifestEntry {
  readonly key: string;
  readonly size: number;
  readonly format: InputFormat;
  readonly compression: Compression;
  readonly estCost: number;
  readonly method: EstimateMethod;
  /** Parts the input was re-staged into (big gzip sources). */
  readonly stagedParts?: number;
}

/**
 * The run item names at most this many bytes of input keys; the manifest object names
 * them all. A DynamoDB item holds 400 KB, and a drop of 10,000 files has more than that
 * in keys alone.
 */
export const MAX_LISTED_INPUT_BYTES = 32 * 1024;

/** `runs/<pipeline>/<runId>/inputs.jsonl`, beside the run's summary. */
export function runManifestKey(pipeline: string, runId: string): string {
  return `runs/${pipeline}/${runId}/inputs.jsonl`;
}

/** The first keys, in order, whose total size stays within {@link MAX_LISTED_INPUT_BYTES}. */
export function listedInputs(keys: readonly string[]): string[] {
  const out: string[] = [];
  let bytes = 0;
  for (const key of keys) {
    bytes += Buffer.byteLength(key, 'utf8') + 3;
    if (bytes > MAX_LISTED_INPUT_BYTES) break;
    out.push(key);
  }
  return out;
}

/** Writes every input of a run with its estimate, one JSON object per line. */
export async function writeRunManifest(
  store: ObjectStore,
  pipeline: string,
  runId: string,
  entries: readonly ManifestEntry[],
): Promise<string> {
  const key = runManifestKey(pipeline, runId);
  const body = entries.map((entry) => JSON.stringify(entry)).join('\n');
  await store.put(key, entries.length > 0 ? `${body}\n` : '', 'application/x-ndjson');
  return key;
}

/** Every input key of a run, from its manifest (the run item lists only the first). */
export async function readRunManifestKeys(
  store: ObjectStore,
  pipeline: string,
  runId: string,
): Promise<string[]> {
  const bytes = await store.get(runManifestKey(pipeline, runId));
  if (!bytes) throw new Error(`run ${runId} has no input manifest at ${runManifestKey(pipeline, runId)}`);
  return new TextDecoder()
    .decode(bytes)
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => (JSON.parse(line) as ManifestEntry).key);
}
