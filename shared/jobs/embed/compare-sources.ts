import type { EmbedPipelineConfig } from '../../config/pipeline-config.ts';
import type { RunState } from '../../domain/types.ts';
import {
  compareSourceManifests,
  type SourceManifestComparison,
  type SourceManifestOptions,
} from '../../incremental/compare-source-manifests.ts';
import { tablePartitionPrefix } from '../../output/keys.ts';
import { sourcesParquet } from '../../output/parquet-tables.ts';
import type { ChunkIndex } from '../../ports/chunk-index.ts';
import type { StoredUnit } from '../../ports/run-store.ts';
import type { StageMergeDeps, StageMerged } from '../job-kind.ts';

/** Skipped sources named in the summary; the count covers them all. */
const MAX_SKIPPED_LISTED = 20;

/** Whether the pipeline keeps per-source manifests (incremental embedding). */
export function comparesSources(config: EmbedPipelineConfig): boolean {
  return config.incremental.enabled;
}

/** The chunk index as the manifest comparison uses it: forgets vanished documents, finds where each was last read. */
function manifestIndexOptions(
  chunkIndex: ChunkIndex | undefined,
  pipeline: string,
): Partial<SourceManifestOptions> {
  if (!chunkIndex) return {};
  return {
    forget: (docIds: string[]) =>
      chunkIndex.record(
        pipeline,
        docIds.map((docId) => ({ docId, chunkCount: 0 })),
      ),
    lastSourceOf: async (docIds: string[]) =>
      new Map([...(await chunkIndex.lookupDocs(pipeline, docIds))].map(([id, doc]) => [id, doc.sourceKey])),
  };
}

/** The run's summary fields from the comparison. */
export function sourcesSummaryOf(sources: SourceManifestComparison): StageMerged {
  return {
    removedChunks: sources.removedChunks,
    summary: {
      removedDocuments: sources.removedDocuments,
      sources: {
        compared: sources.compared,
        deleted: sources.deleted,
        reused: sources.reused,
        skipped: sources.skipped.length,
        skippedSources: sources.skipped.slice(0, MAX_SKIPPED_LISTED),
        removedDocuments: sources.removedDocuments,
        removedChunks: sources.removedChunks,
      },
    },
  };
}

/**
 * The end of an incremental embed stage: each source's documents are diffed with its last
 * manifest (documents gone from a re-dropped or deleted source are removed), and the
 * run's row per source is written to the `sources` table, one part per run (a retry
 * rewrites it whole). Pipelines without source manifests merge nothing.
 */
export async function mergeEmbedStage(
  deps: StageMergeDeps,
  config: EmbedPipelineConfig,
  run: RunState,
  units: readonly StoredUnit[],
  now: Date,
): Promise<StageMerged> {
  if (!comparesSources(config)) return {};
  const sources = await compareSourceManifests(deps.store, run, units, now, {
    ...deps.sourceManifests,
    ...manifestIndexOptions(deps.chunkIndex, run.pipeline),
  });
  if (sources.sources.length > 0) {
    await deps.store.put(
      `${tablePartitionPrefix('sources', run.pipeline, run.runId)}${run.runId}.parquet`,
      sourcesParquet(run.runId, run.startedAt, sources.sources),
      'application/vnd.apache.parquet',
    );
  }
  return sourcesSummaryOf(sources);
}
