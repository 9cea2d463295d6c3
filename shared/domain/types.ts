import type { RunCost } from '../cost/run-cost.ts';
import type { UnitUsage } from '../cost/unit-usage-record.ts';

/** Formats a reader understands; `auto` in config resolves to one of these per file. */
export type InputFormat = 'jsonl' | 'csv' | 'text' | 'parquet';
export type Compression = 'none' | 'gzip';

/** A whole small file packed into a unit beside its main source. */
export interface PackedFile {
  readonly key: string;
  readonly size: number;
  readonly format: InputFormat;
  readonly compression: Compression;
  /** The version planning sized the file at (see {@link WorkUnit.sourceVersion}). */
  readonly version?: string;
}

/**
 * A part of a gzip source that the planner decompressed into its own object, because a
 * gzip stream cannot be read from the middle. The part holds exactly the records of one
 * unit; the unit still names the original source, so ids, lines and rejects refer to it.
 */
export interface StagedPart {
  /** The uncompressed object the worker reads (under `staging/<runId>/`). */
  readonly key: string;
  /** Offset of the part's first byte in the source's decompressed stream. */
  readonly offset: number;
  /** The source's gzip stream broke after this part: the one reject the worker reports for it. */
  readonly fault?: { readonly reason: string; readonly line: number; readonly byteOffset: number };
  /**
   * Records over `input.maxRecordBytes` that the planner measured but did not copy (they
   * lie between this part and the next, or before the first): the worker reports each as
   * a reject. At most {@link MAX_STAGED_REJECTS} per part.
   */
  readonly rejects?: readonly {
    readonly reason: string;
    readonly line: number;
    readonly byteOffset: number;
    readonly excerpt: string;
  }[];
}

/** Oversized records a staged part carries as rejects; more close the part (descriptor size). */
export const MAX_STAGED_REJECTS = 32;

/**
 * A work unit is a descriptor, never data: a byte range of one source (records that
 * START in `[byteStart, byteEnd)` belong to it) plus, when packing, whole small files.
 */
export interface WorkUnit {
  readonly runId: string;
  readonly unitId: string;
  readonly pipeline: string;
  readonly sourceKey: string;
  /**
   * The version of `sourceKey` the unit was planned on (`ObjectInfo.version` from the
   * planner's head: S3 `VersionId` or ETag, a content hash locally). The worker reads with
   * it, so an object overwritten or shortened since fails the unit (`ObjectChanged`)
   * instead of giving other records or none. Absent in units of older planners.
   */
  readonly sourceVersion?: string;
  readonly byteStart: number;
  readonly byteEnd: number;
  /** 1-based line number of the first line at or after `byteStart`, for record ids and rejects. */
  readonly firstLine: number;
  readonly format: InputFormat;
  readonly compression: Compression;
  /** Header line of a CSV source, so units that start mid-file can name columns. */
  readonly csvHeader?: string;
  readonly packed: readonly PackedFile[];
  /** Estimated work (tokens for embedding). */
  readonly estCost: number;
  /**
   * Set when the range was re-staged from a gzip source: `byteStart`/`byteEnd` are then
   * offsets in the decompressed source, and the worker reads `staged.key` instead.
   */
  readonly staged?: StagedPart;
  /**
   * The stage of the run the unit belongs to (shared/jobs). Absent in units of older
   * planners: then `task` names it, else the kind's last stage.
   */
  readonly stage?: string;
  /** Older planners' name of the `fit` stage (see `stage`); no longer written. */
  readonly task?: UnitTask;
  /**
   * Epoch ms when a delivery of this unit first found its endpoint with no capacity; set on
   * the messages that send it back to wait (issue 14, shared/work/warming.ts), never planned.
   */
  readonly warmingSince?: number;
  /** How often the unit was sent back to wait for capacity; the delays double with it. */
  readonly warmingDeferrals?: number;
  /**
   * Score pipelines: the version of `model.modelKey` pinned when the run was planned, so
   * every unit of the run, redriven ones too, scores with the same model even when it is
   * replaced mid-run (shared/scoring/model-pin.ts). Absent in units of older planners.
   */
  readonly modelPin?: ModelPin;
}

/** One version of a model object, as a run pins it. */
export interface ModelPin {
  /** `ObjectInfo.version` from the planner's head: what the worker reads with. */
  readonly version: string;
  /** The object's ETag where the store gives one (S3), for the run summary. */
  readonly etag?: string;
}

/** `fit`: a scoring pipeline's first pass, fitting feature statistics that the scoring run then applies. */
export type UnitTask = 'fit';

export type UnitStatus = 'pending' | 'running' | 'succeeded' | 'failed';
export type RunStatus = 'running' | 'succeeded' | 'failed';
export type RunTrigger = 'local' | 's3' | 'schedule' | 'redrive';

/** Counts and measurements a unit reports; all additive so units merge by summing. */
export interface UnitCounts {
  records: number;
  rejected: number;
  chunks: number;
  embedded: number;
  skippedUnchanged: number;
  /** Chunks a re-dropped document no longer has (it got shorter). */
  removedChunks: number;
  /** Rows scored by the model (scoring pipelines). */
  scored: number;
  /** Generate pipelines: records answered by the endpoint this run, and carried from the prompt cache. */
  generated?: number;
  cached?: number;
  /** Generate pipelines: tokens the endpoint reported in `usage`, over every attempt. */
  promptTokens?: number;
  completionTokens?: number;
  realTokens: number;
  paddedTokens: number;
  endpointCalls: number;
  throttled: number;
  retries: number;
  /** Times the unit was sent back to wait for a cold endpoint before it ran (absent in counts from before it). */
  warmingDeferrals?: number;
  /**
   * What the delivery that completed the unit used (stored with its counts for finalize
   * to price the run); never summed by {@link addCounts}.
   */
  usage?: UnitUsage;
}

type SummedCount = Exclude<keyof UnitCounts, 'usage'>;

export const emptyCounts = (): UnitCounts => ({
  records: 0,
  rejected: 0,
  chunks: 0,
  embedded: 0,
  skippedUnchanged: 0,
  removedChunks: 0,
  scored: 0,
  realTokens: 0,
  paddedTokens: 0,
  endpointCalls: 0,
  throttled: 0,
  retries: 0,
  warmingDeferrals: 0,
});

export function addCounts(into: UnitCounts, more: UnitCounts): UnitCounts {
  for (const key of Object.keys(into) as SummedCount[])
    if ((key as string) !== 'usage') into[key] = (into[key] ?? 0) + (more[key] ?? 0);
  // A kind's own optional counts (generated, cached, ...) the total does not hold yet.
  for (const key of Object.keys(more) as SummedCount[])
    if ((key as string) !== 'usage' && !(key in into) && typeof more[key] === 'number') into[key] = more[key];
  return into;
}

export interface UnitState {
  readonly unitId: string;
  /** The stage the unit belongs to (see {@link WorkUnit.stage}); absent in units of older planners. */
  readonly stage?: string;
  readonly sourceKey: string;
  /** The version of `sourceKey` the unit reads (see {@link WorkUnit.sourceVersion}). */
  readonly sourceVersion?: string;
  readonly byteStart: number;
  readonly byteEnd: number;
  readonly estCost: number;
  readonly packedFiles: number;
  actualCost: number | null;
  records: number | null;
  status: UnitStatus;
  attempts: number;
  lastError: string | null;
  counts: UnitCounts | null;
  outputKeys: string[];
}

/**
 * The work queue and function a pipeline's units go to: the endpoint pool (`Work`) or the
 * compute pool (`WorkCompute`); shared/capacity/work-pools.ts decides it from the config.
 */
export type WorkPool = 'endpoint' | 'compute';

export interface RunState {
  readonly runId: string;
  readonly pipeline: string;
  readonly trigger: RunTrigger;
  readonly startedAt: string;
  readonly inputs: readonly string[];
  /** Older runs' way to say the run is in its `fit` stage (see `stage`); no longer written. */
  readonly task?: UnitTask;
  /**
   * The stage the run is in (shared/jobs): its units are being worked, and finalize at the
   * end of it merges it and plans the next one. Absent in older runs: `task`, else the
   * kind's last stage.
   */
  stage?: string;
  /** The stages the run goes through, in order. Absent in older runs (see `stage`). */
  readonly stages?: readonly string[];
  /**
   * The work pool of the run's pipeline (issue 14), recorded by plan with `splitStack`: in a
   * split stack a compute-pool run's units work from the compute queue. A redrive sends the
   * units back by these, a fact of the stack that planned the run, not of the configs on the
   * redriving machine. Absent in runs planned before they were recorded.
   */
  readonly workPool?: WorkPool;
  /** Whether the stack that planned the run had two work functions (`workPoolsOf(...).split`). */
  readonly splitStack?: boolean;
  status: RunStatus;
  finishedAt: string | null;
  totalUnits: number;
  doneUnits: number;
  failedUnits: number;
}

export interface RunSummary {
  runId: string;
  pipeline: string;
  status: RunStatus;
  trigger: RunTrigger;
  startedAt: string;
  finishedAt: string;
  counts: {
    records: number;
    rejected: number;
    units: number;
    failedUnits: number;
    chunks: number;
    embedded: number;
    skippedUnchanged: number;
    /** Chunks edited documents no longer have, plus the chunks of documents gone from their source. */
    removedChunks: number;
    /** Incremental embed runs: documents gone from a re-dropped source (see `sources`). */
    removedDocuments?: number;
    scored: number;
    /** Generate runs: records answered by the endpoint, and carried from the prompt cache. */
    generated?: number;
    cached?: number;
  };
  stats: {
    realTokens: number;
    paddedTokens: number;
    endpointCalls: number;
    throttled: number;
    retries: number;
    /** Times units were sent back to wait for a cold endpoint (absent in summaries from before it). */
    warmingDeferrals?: number;
    /** Generate runs: prompt and completion tokens from the endpoint's `usage`. */
    promptTokens?: number;
    completionTokens?: number;
  };
  failedUnits: { unitId: string; lastError: string | null }[];
  /** Why a run with no failed unit failed, in one line (`run.toleratedRejectPercent` exceeded). */
  failureReason?: string;
  timings: Record<string, number>;
  /** What the run cost, from its measured usage (shared/cost); absent in summaries from before it. */
  cost?: RunCost;
  /** Why the run has no `cost`: one line naming the region or instance type without a price. */
  costUnknown?: string;
  /** The run's lease on run-scoped endpoint capacity (issue 14); absent for pipelines without one. */
  capacity?: RunCapacitySummary;
  /** `fit` for the first pass of a scoring pipeline that had no stored statistics (older summaries). */
  task?: UnitTask;
  /** The scoring run a fit run started (older summaries: fit and score are now two stages of one run). */
  followedBy?: string;
  /**
   * The stages the run went through, in order, each with its units and records (absent in
   * summaries from before stages). The summary's `counts` and `failedUnits` are those of
   * the stage the run ended in (the last one, which produced the results, unless an
   * earlier one failed); `stats` and `cost` cover every stage.
   */
  stages?: RunStageSummary[];
  /** Segments in `segment_stats` (scoring runs). */
  segments?: number;
  /** Things the run could not check and a person should know (a model without feature names). */
  warnings?: string[];
  /** Recommend runs: what was indexed, sharded and evaluated. */
  recommendations?: RecommendRunSummary;
  /** Score pipelines: the model object the run pinned at planning and scored with (absent in older summaries). */
  model?: RunModelSummary;
  /** Local runs: pipeline-folder files that replaced the bucket's copy before the run (absent when none). */
  replacedFiles?: ReplacedBundleFile[];
  /**
   * Incremental embed runs: each source's documents diffed with the manifest of the last
   * run that completed it. `removedChunks` here is the part of `counts.removedChunks` that
   * vanished documents account for.
   */
  sources?: {
    /** Sources whose manifest this run replaced (their first run included). */
    compared: number;
    /**
     * Of those, sources deleted from the bucket (an upload or deletion notice named them,
     * and they were gone when the run was planned): every document they held is removed
     * unless it moved to another source.
     */
    deleted: number;
    /** Sources a retried finalize found already replaced by this run (stored counts reused). */
    reused: number;
    /** Sources not diffed (a unit that did not succeed, a later run's manifest, ...). */
    skipped: number;
    /** The first of them by key, each with why. */
    skippedSources: { sourceKey: string; reason: string }[];
    removedDocuments: number;
    removedChunks: number;
  };
}

/** The model a scoring run pinned when it was planned (docs/scoring.md, "Which model scored a row"). */
export interface RunModelSummary {
  /** `model.modelKey`. */
  key: string;
  /** What every `scores` row of the run carries as `model_version` (see {@link ScoreRow.model_version}). */
  version: string;
  /** The S3 VersionId (versioned bucket). */
  versionId?: string;
  /** The S3 ETag. */
  etag?: string;
  /** Locally: the content hash (sha256, first 128 bits in hex) of the file. */
  sha256?: string;
}

/** A file beside the pipeline config that replaced the local bucket's copy (cli/seed-bundle.ts). */
export interface ReplacedBundleFile {
  key: string;
  role: 'model' | 'statistics' | 'lookup table' | 'tokenizer';
  /** sha256 (hex) of the copy the bucket held before. */
  previousSha256: string;
  /** sha256 (hex) of the new file, now in the bucket. */
  sha256: string;
  /** The pipeline-folder file it came from. */
  source: string;
}

/** A recommend run's figures (docs/recommendations.md), in its summary as `recommendations`. */
export interface RecommendRunSummary {
  feedback: 'explicit' | 'implicit';
  similarity: 'cosine' | 'pearson';
  /** Interactions kept after duplicate pairs were resolved (held-out ones included). */
  interactions: number;
  /** Valid input interactions that repeated a (user, item) pair already kept. */
  duplicates: number;
  users: number;
  items: number;
  /** Items held by more users than `neighbours.maxItemUsers`: they took part through a sample. */
  cappedItems: number;
  /** User shards of the similarity stage, and their work: estimated at planning, actual as counted. */
  shards: { count: number; estimatedMaxOverMean: number; actualMaxOverMean: number };
  /** Users given a list, and the `recommendations` rows written. */
  usersRecommended: number;
  rows: number;
  /** With `evaluation.holdoutFraction`: CF's lists against the popularity baseline on the held-out interactions. */
  evaluation?: {
    holdoutFraction: number;
    heldOut: number;
    topN: number;
    users: number;
    cf: RecommendMetrics;
    popular: RecommendMetrics;
  };
}

/** Offline metrics at N, averaged over evaluated users; coverage over the catalogue. */
export interface RecommendMetrics {
  precision: number;
  recall: number;
  ndcg: number;
  coverage: number;
}

/** One stage of a run as its summary reports it. */
export interface RunStageSummary {
  name: string;
  units: number;
  failedUnits: number;
  records: number;
  rejected: number;
}

/** A run's hold on an inference component's copies, as its summary reports it (docs/capacity.md). */
export interface RunCapacitySummary {
  /** The SageMaker inference component. */
  component: string;
  /** Copies the run asked for. */
  copies: number;
  /** When plan took the lease. */
  takenAt: string;
  /**
   * An incremental embed run's copies are raised on demand: `on-demand` when a unit with
   * chunks to embed asked for them (at `neededAt`), `never` when none did (no endpoint cost).
   * Absent when plan raised them.
   */
  copiesRaised?: 'on-demand' | 'never';
  /** When the run's first unit with chunks to embed asked for copies (on-demand leases). */
  neededAt?: string;
  /**
   * When copies counting the run were first asked for (on-demand leases): a raise by the
   * sweeper (or plan, or a worker), or `neededAt` when copies already up covered it. The run
   * is charged from here; absent when no raise was seen (charged from `neededAt`).
   */
  raisedAt?: string;
  /** When a copy was first seen serving for the run (absent when never seen: a run too short for the sweeper to look). */
  readyAt?: string;
  /** When finalize (or the sweeper, for a leaked lease) released it. */
  releasedAt: string;
  /** readyAt - takenAt (on demand: - raisedAt, else - neededAt): how long the copies took to serve. */
  warmupSeconds?: number;
  /** The run started another that took the capacity over (a fit run's scoring run): no cooldown charged. */
  handedOver?: boolean;
  /** Seconds per copy charged for the run's hold before a redrive reopened it (cooldown included). */
  priorSeconds?: number;
  /**
   * Cooldown seconds per copy the run is charged: `capacity.cooldownSeconds` when its release
   * kept the copies for a following run (and why: `always`, `schedule`, `back-to-back`,
   * `schedule-unknown`), 0 when finalize scaled in at release (`none`). Absent when handed over.
   */
  cooldown?: { seconds: number; reason: string };
}

/** One record that could not be used, with the reason a user can act on. */
export interface RejectRow {
  source_key: string;
  byte_offset: number;
  line: number;
  reason: string;
  excerpt: string;
}

/** One scored record of the `scores` table. */
export interface ScoreRow {
  record_id: string;
  score: number;
  model: string;
  source_key: string;
  line: number;
  /** Every output of the model for the row (several for multi-class models). */
  outputs: readonly number[];
  metadata: Record<string, string | null>;
  /**
   * Which bytes of `model.modelKey` scored the row, pinned when the run was planned: the S3
   * VersionId (`etag:<ETag>` on a bucket without versions); locally `sha256:<hex>` (first 128
   * bits of the file's sha256). Null in rows of units planned before it was pinned.
   */
  model_version?: string | null;
  /**
   * Reason codes (`explain.topK`): a JSON array of `{feature, contribution, value}`, largest
   * |contribution| first (docs/reason-codes.md). Absent without `explain`.
   */
  reasons?: string;
  /** `output.passThrough` columns as read from the input row (an absent key is null). */
  passThrough?: Readonly<Record<string, unknown>>;
}

export interface EmbeddingRow {
  doc_id: string;
  chunk_id: string;
  chunk_index: number;
  char_start: number;
  char_end: number;
  token_count: number;
  chunk_text: string;
  text_sha256: string;
  model: string;
  embedding: Float32Array | number[];
  source_key: string;
  metadata: Record<string, string | null>;
}

/** The state of a unit that no worker has started: what every run store records at planning. */
export function pendingUnitState(unit: WorkUnit): UnitState {
  return {
    unitId: unit.unitId,
    ...(unit.stage === undefined ? {} : { stage: unit.stage }),
    sourceKey: unit.sourceKey,
    ...(unit.sourceVersion === undefined ? {} : { sourceVersion: unit.sourceVersion }),
    byteStart: unit.byteStart,
    byteEnd: unit.byteEnd,
    estCost: unit.estCost,
    packedFiles: unit.packed.length,
    actualCost: null,
    records: null,
    status: 'pending',
    attempts: 0,
    lastError: null,
    counts: null,
    outputKeys: [],
  };
}
