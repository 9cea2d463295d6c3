import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import type { WorkUnit } from '../../domain/types.ts';
import type { UnitDocList } from '../../incremental/unit-doc-list.ts';
import { unitDocListKey } from '../../output/keys.ts';
import { embeddingsPartWriter } from '../../output/parquet-tables.ts';
import type { ChunkIndex } from '../../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import {
  intoStreamedPart,
  putIdList,
  putInBlocks,
  putRejects,
  streamedTablePart,
} from '../../work/unit-output.ts';
import type { Checkpoint } from '../../work/unit-records.ts';
import type { UnitWork, UnitWorkDeps } from '../job-kind.ts';
import { type EmbeddedUnit, embedUnit } from './embed-unit.ts';

/** The embedding model of the worker, or a one-line reason why there is none. */
function endpointOf(deps: UnitWorkDeps, config: EmbedPipelineConfig): EmbeddingEndpoint {
  if (!deps.endpoint)
    throw new Error(`pipeline ${config.name}: no embedding endpoint configured for this worker`);
  return deps.endpoint;
}

/**
 * What the unit's `embeddings` part holds, per source (always written, even empty, so
 * finalize can tell a unit with no document from one that left no list); a retry
 * overwrites it, and a unit that handed the rest on lists only what it read. Not a table
 * part: not in outputKeys.
 */
export async function putDocList(store: ObjectStore, unit: WorkUnit, docList: UnitDocList): Promise<void> {
  await putInBlocks(
    store,
    unitDocListKey(unit.pipeline, unit.runId, unit.unitId),
    docList.blocks(unit.runId, unit.unitId),
    'text/tab-separated-values',
  );
}

/**
 * Records the unit's documents in the chunk index, only after its part is written: the
 * entries point at rows of that part. The entries they replace are written first
 * (prior-entries.ts), so a retry compares its documents with the entries of the run before,
 * not with its own; and the index's meter is told them, to count each replaced entry by its
 * change in size.
 */
export async function recordDocuments(
  chunkIndex: ChunkIndex | undefined,
  unit: WorkUnit,
  embedded: Pick<EmbeddedUnit, 'docUpdates' | 'priorEntries'>,
): Promise<void> {
  if (!chunkIndex) return;
  await embedded.priorEntries?.write(embedded.docUpdates);
  for (const { docs, replacing } of embedded.docUpdates.recordSlices(unit.runId, unit.unitId))
    await chunkIndex.record(unit.pipeline, docs, replacing);
}

/** The unit's files beside its `embeddings` part: id list, rejects part, doc list. Returns the rejects key, if any. */
export async function putUnitFiles(
  store: ObjectStore,
  unit: WorkUnit,
  embedded: Pick<EmbeddedUnit, 'idList' | 'rejects' | 'docList'>,
): Promise<string | undefined> {
  await putIdList(store, unit, embedded.idList);
  const rejectsKey = await putRejects(store, unit, embedded.rejects);
  if (embedded.docList) await putDocList(store, unit, embedded.docList);
  return rejectsKey;
}

/**
 * The embed stage's work on one unit: chunks and embeds its documents into the unit's
 * `embeddings` part, then writes its id list, rejects and doc list, then records its
 * documents in the chunk index. Cost: the tokens embedded.
 */
export async function workEmbedUnit(
  deps: UnitWorkDeps,
  config: EmbedPipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  const endpoint = endpointOf(deps, config);
  const part = streamedTablePart(deps.store, 'embeddings', unit, embeddingsPartWriter(unit.runId));
  const { result: embedded, key } = await intoStreamedPart(part, (sink) =>
    embedUnit({ ...deps, endpoint }, config, unit, sink, checkpoint),
  );
  const rejectsKey = await putUnitFiles(deps.store, unit, embedded);
  await recordDocuments(deps.chunkIndex, unit, embedded);
  const outputKeys = [key, rejectsKey].filter((k): k is string => k !== undefined);
  return { counts: embedded.counts, outputKeys, actualCost: embedded.counts.realTokens };
}
