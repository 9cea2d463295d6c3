import type { ScorePipelineConfig } from '../config/pipeline-config.ts';
import type { ModelPin, RunModelSummary } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';

/**
 * The version of the pipeline's model object now, pinned by the planner into every unit
 * of the run (`WorkUnit.modelPin`): S3 `VersionId` on the stack's versioned bucket (else
 * the ETag, read with `If-Match`), locally the file's content hash. Undefined when the
 * model is not in the store (the workers fail on it with their own line) or the store
 * cannot tell a version.
 */
export async function pinModel(
  store: ObjectStore,
  config: ScorePipelineConfig,
): Promise<ModelPin | undefined> {
  const info = await store.head(config.model.modelKey, { version: true });
  if (info?.version === undefined) return undefined;
  return { version: info.version, ...(info.etag === undefined ? {} : { etag: info.etag }) };
}

/**
 * The `model_version` a scores row carries for a pinned version token (`ObjectInfo.version`):
 * - `v:<VersionId>` (S3, versioned bucket) -> the VersionId, as `aws s3api get-object --version-id` takes it;
 * - `e:<ETag>` (S3 without versions) -> `etag:<ETag without quotes>`;
 * - `<hex>.<identity>` or `<hex>` (the local store) -> `sha256:<hex>` (the content hash; the
 *   file identity after the dot only spares re-hashing);
 * - anything else (an in-memory store's counter) as it is.
 */
export function modelVersionOf(token: string): string {
  if (token.startsWith('v:')) return token.slice(2);
  if (token.startsWith('e:')) return `etag:${token.slice(2).replaceAll('"', '')}`;
  const hash = token.split('.')[0]!;
  if (/^[0-9a-f]{32,64}$/.test(hash)) return `sha256:${hash}`;
  return token;
}

/** The run summary's `model`: the pinned object, by its key and what its rows carry. */
export function modelSummaryOf(key: string, pin: ModelPin): RunModelSummary {
  const version = modelVersionOf(pin.version);
  return {
    key,
    version,
    ...(pin.version.startsWith('v:') ? { versionId: version } : {}),
    ...(pin.etag === undefined
      ? pin.version.startsWith('e:')
        ? { etag: pin.version.slice(2) }
        : {}
      : { etag: pin.etag }),
    ...(version.startsWith('sha256:') ? { sha256: version.slice('sha256:'.length) } : {}),
  };
}
