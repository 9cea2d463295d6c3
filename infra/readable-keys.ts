import type { PipelineConfig } from '../shared/config/pipeline-config.ts';
import { MODELS_PREFIX } from './deployment-settings.ts';

/** Inputs arrive under `incoming/` (S3 notifications) and `datasets/` (scheduled runs). */
export const SOURCE_PREFIXES = ['incoming/', 'datasets/'] as const;

/** Object keys the deployed functions are granted one by one, from the configs. */
export interface ReadableKeys {
  /** `chunking.tokenizer.key` and `configKey` of the embed pipelines (work reads them). */
  readonly tokenizers: readonly string[];
}

/**
 * Checks that every object key or prefix a config names lies where a function may read it,
 * and returns the keys that are granted one by one. A deploy whose config points elsewhere
 * would fail at run time with AccessDenied, so synth fails instead, in one line naming the
 * pipeline, the field and the allowed prefixes:
 * - `schedule.prefix` under `incoming/` or `datasets/`, the source prefixes plan and work read;
 * - `chunking.tokenizer.key` and `.configKey` under `models/`; work may read exactly those
 *   objects (and, with score pipelines, all of `models/`).
 *
 * @throws Error naming the pipeline, the field and the allowed prefixes
 */
export function readableKeys(pipelines: readonly PipelineConfig[]): ReadableKeys {
  const tokenizers = new Set<string>();
  for (const pipeline of pipelines) {
    if (pipeline.schedule) {
      requireUnder(
        pipeline.name,
        'schedule.prefix',
        pipeline.schedule.prefix,
        SOURCE_PREFIXES,
        'plan and work read sources only there',
      );
    }
    if (pipeline.kind !== 'embed') continue;
    const tokenizer = pipeline.chunking.tokenizer;
    if (!tokenizer) continue;
    const fields: [string, string | undefined][] = [
      ['chunking.tokenizer.key', tokenizer.key],
      ['chunking.tokenizer.configKey', tokenizer.configKey],
    ];
    for (const [field, key] of fields) {
      if (key === undefined) continue;
      requireUnder(
        pipeline.name,
        field,
        key,
        [MODELS_PREFIX],
        'the work function may read model files only there',
      );
      tokenizers.add(key);
    }
  }
  return { tokenizers: [...tokenizers].sort() };
}

function requireUnder(
  pipeline: string,
  field: string,
  key: string,
  prefixes: readonly string[],
  why: string,
): void {
  // A prefix may be a whole allowed prefix (`datasets/`); an object key must name an object below one.
  const object = !field.endsWith('prefix');
  if (prefixes.some((prefix) => key.startsWith(prefix) && (!object || key.length > prefix.length))) return;
  throw new Error(`pipeline ${pipeline}: ${field} "${key}" must be under ${prefixes.join(' or ')}: ${why}`);
}
