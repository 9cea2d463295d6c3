import type { ZodType } from 'zod';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { RunState, RunSummary, UnitCounts, WorkUnit } from '../domain/types.ts';
import type { TokenCounter } from '../embedding/token-counter.ts';
import type { SourceManifestOptions } from '../incremental/compare-source-manifests.ts';
import type { TableName } from '../output/keys.ts';
import type { ColumnDef } from '../output/parquet-tables.ts';
import type { ClassifiedFile } from '../plan/sample-cost.ts';
import type { ChunkIndex } from '../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore, StoredUnit } from '../ports/run-store.ts';
import type { ScoringEndpoint } from '../ports/scoring-endpoint.ts';
import type { SegmentStatsStore } from '../ports/segment-stats-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import type { Checkpoint } from '../work/unit-records.ts';
import type { ChatEndpoint } from './generate/chat-endpoint.ts';
import type { PromptCache } from './generate/prompt-cache.ts';
import type { RecommendationLists } from './recommend/recommendation-lists.ts';

/**
 * The ports a unit's work may use: the worker's own, metered by the engine (every call is
 * part of the run's cost).
 */
export interface UnitWorkDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  /** The embedding model (embed pipelines). */
  readonly endpoint?: EmbeddingEndpoint | undefined;
  /** The scoring model (score pipelines). */
  readonly scoringEndpoint?: ScoringEndpoint | undefined;
  readonly tokenCounter: TokenCounter;
  /** Fingerprints of embedded chunks; without it every chunk is embedded. */
  readonly chunkIndex?: ChunkIndex | undefined;
  /** The LLM (generate pipelines). */
  readonly chatEndpoint?: ChatEndpoint | undefined;
  /** Answers of generate pipelines by prompt fingerprint; without it, the object store keeps them (local runs). */
  readonly promptCache?: PromptCache | undefined;
  /** Per-user lists served by key (recommend pipelines); without it, the object store keeps them (local runs). */
  readonly recommendationLists?: RecommendationLists | undefined;
}

/** Unit fields a run pins at planning (see {@link JobKind.pinsOfRun}). */
export type RunPins = Partial<Pick<WorkUnit, 'modelPin'>>;

/** What working one unit left: its counts, the objects it wrote (table parts first), its measured cost. */
export interface UnitWork {
  readonly counts: UnitCounts;
  readonly outputKeys: string[];
  /** The unit's work as measured, in the units of its estimate (tokens, rows x features, ...). */
  readonly actualCost: number;
}

/** The ports the merge at the end of a stage may use (finalize's). */
export interface StageMergeDeps {
  readonly store: ObjectStore;
  /** Where segment statistics are kept by key, beside the `segment_stats` table. */
  readonly segmentStats?: SegmentStatsStore | undefined;
  /** Incremental embed pipelines: documents gone from their source are recorded with no chunks. */
  readonly chunkIndex?: ChunkIndex | undefined;
  /** Tuning of the source manifests of incremental embed pipelines. */
  readonly sourceManifests?: Partial<SourceManifestOptions> | undefined;
}

/** What the merge at the end of a stage adds to the run summary. */
export interface StageMerged {
  /** Chunks removed besides those the units counted (documents gone from their source). */
  readonly removedChunks?: number;
  /** Summary fields the stage owns (`segments`, `sources`, `warnings`, `removedDocuments`). */
  readonly summary?: Partial<
    Pick<RunSummary, 'segments' | 'sources' | 'warnings' | 'model' | 'recommendations'>
  > & {
    readonly removedDocuments?: number;
  };
  /**
   * The run's input records and rejects when the last stage reads none itself (recommend's
   * similarity stage computes from an index an earlier stage built): the summary's `records`
   * and `rejected`, which `run.toleratedRejectPercent` judges. @default the stage's own counts
   */
  readonly inputCounts?: { readonly records: number; readonly rejected: number };
}

/**
 * What planning a later stage may read besides the earlier stage's units: the run, its
 * pipeline, and the object store (the files the earlier stage and its merge wrote).
 */
export interface StagePlanContext<C extends PipelineConfig> {
  readonly store: ObjectStore;
  readonly config: C;
  readonly run: RunState;
}

/**
 * One stage of a job kind. Its units are planned (the first stage's from the run's
 * inputs, by the engine; a later stage's from the units of the stage before), each unit is
 * worked on its own by a worker, and when every unit of the stage is terminal, finalize
 * merges the stage before the next stage is planned.
 */
export interface JobStage<C extends PipelineConfig> {
  /** Stored on the run and on each of its units (`WorkUnit.stage`). */
  readonly name: string;
  /**
   * The units of this stage from the units of the stage before (with their descriptors,
   * continuations included), after the stage before was merged: a stage may plan from what
   * that merge wrote (`context.store`). Only later stages have it; it must be
   * deterministic, since a finalize that dies halfway plans the stage again. Unit ids must
   * differ from the earlier stages' ids.
   */
  planUnits?(previous: readonly WorkUnit[], context: StagePlanContext<C>): WorkUnit[] | Promise<WorkUnit[]>;
  /** Works one unit: reads its records, writes its parts and partials. */
  workUnit(deps: UnitWorkDeps, config: C, unit: WorkUnit, checkpoint?: Checkpoint): Promise<UnitWork>;
  /** The table whose rows must be unique by id across the run (the duplicate-id rule), if any. */
  readonly idTable?: Extract<TableName, 'embeddings' | 'scores' | 'generations'>;
  /** Whether `mergeStage` needs each unit's descriptor (bigger reads). @default false */
  mergeNeedsDescriptors?(config: C): boolean;
  /** Merges the stage's units' partials (statistics, segments, manifests); must be safe to repeat. */
  mergeStage?(
    deps: StageMergeDeps,
    config: C,
    run: RunState,
    units: readonly StoredUnit[],
    now: Date,
  ): Promise<StageMerged>;
  /** One line of what a unit did, for a person watching a local run. */
  describeUnit(counts: UnitCounts): string;
}

/**
 * A job kind: a module under `shared/jobs/<kind>/` with one line in the registry
 * (shared/jobs/registry.ts). The engine (plan, work, finalize, run store, queue,
 * accounting, checkpoints, redrive) knows stages but no kind.
 */
export interface JobKind<C extends PipelineConfig> {
  readonly kind: C['kind'];
  /** The kind's part of the pipeline config (shared/config/pipeline-config.ts). */
  readonly configSchema: ZodType;
  /** Every stage the kind has, in order; a run goes through all of them or a tail of them. */
  readonly stages: readonly JobStage<C>[];
  /**
   * The stages a new run of the pipeline goes through (names, in order). @default every stage
   */
  stagesOfRun?(deps: { readonly store: ObjectStore }, config: C): Promise<readonly string[]>;
  /**
   * The config a new run applies, read at plan time from the bucket and the run's inputs
   * (a score pipeline's feature spec inferred from its model and checked against the
   * inputs' columns); planning prices and cuts the units and chooses the stages with it.
   * Workers and finalize get the pipeline's config: a kind resolves it again where it
   * needs to. @default the config as is
   */
  configOfRun?(
    deps: { readonly store: ObjectStore },
    config: C,
    inputs: readonly ClassifiedFile[],
  ): Promise<C>;
  /**
   * What a new run pins at planning into every unit of its first stage (later stages'
   * units are planned from those and keep it), so all of its workers read the same
   * version of an artifact however long the run takes. @default nothing
   */
  pinsOfRun?(deps: { readonly store: ObjectStore }, config: C): Promise<RunPins>;
  /** Tables the kind writes, with their columns (besides `rejects`, `runs` and `sources`). */
  readonly tables: Partial<Record<TableName, readonly ColumnDef[]>>;
  /** Counts of the run summary the kind reports (the rest stay 0). */
  readonly summaryCounts: readonly Extract<keyof UnitCounts & keyof RunSummary['counts'], string>[];
}
