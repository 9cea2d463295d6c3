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
  const key = deletedSourcesKey(pipeline, runId);
  const bytes = await store.get(key);
  if (bytes === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new DocListError(`${key} is not JSON`, { cause: error });
  }
  const { format, keys } = (parsed ?? {}) as { format?: unknown; keys?: unknown };
  if (format !== FORMAT || !Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && k !== '')) {
    throw new DocListError(`${key} is not a ${FORMAT} list of source keys`);
  }
  return keys as string[];
}
