import { createHash } from 'node:crypto';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { DocListError } from './doc-lines.ts';

/**
 * Whether a run keeps per-source manifests, and so counts documents that vanished: an
 * incremental embed pipeline's work run (not a scoring pipeline's fitting pass).
 */
export function tracksSources(config: PipelineConfig | undefined, task?: 'fit' | 'work'): boolean {
  return config?.kind === 'embed' && config.incremental.enabled && task !== 'fit';
}

const FORMAT = 'sluice-deleted-sources/1';

/** `runs/<pipeline>/<runId>/deleted-sources.json`, beside the run's input manifest. */
export function deletedSourcesKey(pipeline: string, runId: string): string {
  return `runs/${pipeline}/${runId}/deleted-sources.json`;
}

/**
 * Records the sources a run was told about (an upload or a deletion notice) that did not
 * exist when it was planned. Finalize treats each as a source that now holds no document:
 * every document its last manifest listed, and no source of the run holds, is removed.
 * Written before the run is recorded, so finalize never looks for it too early; nothing is
 * written when there are none.
 */
export async function writeDeletedSources(
  store: ObjectStore,
  pipeline: string,
  runId: string,
  keys: readonly string[],
): Promise<void> {
  if (keys.length === 0) return;
  const body = JSON.stringify({ format: FORMAT, keys: [...new Set(keys)].sort() });
  await store.put(deletedSourcesKey(pipeline, runId), body, 'application/json');
}

/** The sources {@link writeDeletedSources} recorded for a run; none when it recorded nothing. */
export async function readDeletedSources(
  store: ObjectStore,
  pipeline: string,
  runId: string,
): Promise<string[]> {
  const stored = await readKeyList(store, deletedSourcesKey(pipeline, runId), FORMAT, 'source keys');
  return stored?.keys ?? [];
}

/**
 * A stored `{format, keys: [...]}` object (undefined when absent), its format checked.
 * @throws DocListError when it is not JSON of that format with string keys
 */
async function readKeyList(
  store: ObjectStore,
  key: string,
  format: string,
  what: string,
): Promise<{ readonly keys: string[]; readonly [field: string]: unknown } | undefined> {
  const bytes = await store.get(key);
  if (bytes === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new DocListError(`${key} is not JSON`, { cause: error });
  }
  const stored = (parsed ?? {}) as { format?: unknown; keys?: unknown };
  if (
    stored.format !== format ||
    !Array.isArray(stored.keys) ||
    !stored.keys.every((k) => typeof k === 'string' && k !== '')
  ) {
    throw new DocListError(`${key} is not a ${format} list of ${what}`);
  }
  return stored as { keys: string[] };
}

const PREFIX_FORMAT = 'sluice-prefix-sources/1';

/** `runs/<pipeline>/prefixes/<sha256 of the prefix>.json`: the sources the last run over a prefix listed. */
export function prefixSourcesKey(pipeline: string, prefix: string): string {
  return `runs/${pipeline}/prefixes/${createHash('sha256').update(prefix).digest('hex')}.json`;
}

/**
 * The sources the last run over `prefix` listed (sorted), or undefined when none did. A
 * run over a prefix (scheduled) names no deleted key: the sources that were listed then
 * and are not now are the deleted ones.
 */
export async function readPrefixSources(
  store: ObjectStore,
  pipeline: string,
  prefix: string,
): Promise<string[] | undefined> {
  const key = prefixSourcesKey(pipeline, prefix);
  const stored = await readKeyList(store, key, PREFIX_FORMAT, `the sources under ${prefix}`);
  if (stored !== undefined && stored.prefix !== prefix)
    throw new DocListError(`${key} lists the sources under ${String(stored.prefix)}, not ${prefix}`);
  return stored?.keys;
}

/** Records what a run over `prefix` listed, for the next run over it to compare with. */
export async function writePrefixSources(
  store: ObjectStore,
  pipeline: string,
  prefix: string,
  runId: string,
  keys: readonly string[],
): Promise<void> {
  const body = JSON.stringify({ format: PREFIX_FORMAT, prefix, runId, keys: [...keys].sort() });
  await store.put(prefixSourcesKey(pipeline, prefix), body, 'application/json');
}
