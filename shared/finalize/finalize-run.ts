import { createHash } from 'node:crypto';
import { type PipelineCapacity, pipelineCapacityOf, schedulesOf } from '../capacity/names.ts';
import {
  type CapacityReleased,
  type RunCapacityDeps,
  releaseRunCapacity,
  type ScaledIn,
  scaleInAtRelease,
  settleRunCapacity,
} from '../capacity/run-capacity.ts';
import type { PipelineConfig, ScorePipelineConfig } from '../config/pipeline-config.ts';
import { endpointHostingOf } from '../cost/endpoint-hosting.ts';
import { PriceUnknown, pricesFor } from '../cost/pricing.ts';
import { type RunUsage, runCost } from '../cost/run-cost.ts';
import { runUsageOf, type UnitUsage, UsageMeter, withFinalizeCalls } from '../cost/unit-usage.ts';
import { addCounts, emptyCounts, type RunState, type RunSummary, type UnitState } from '../domain/types.ts';
import { countDuplicates, resolveDuplicateIds } from '../duplicates/resolve-duplicate-ids.ts';
import { ConfigError, SluiceError } from '../errors/errors.ts';
import {
  compareSourceManifests,
  type SourceManifestComparison,
  type SourceManifestOptions,
} from '../incremental/compare-source-manifests.ts';
import { tracksSources } from '../incremental/deleted-sources.ts';
import { runRowKey, runSummaryKey, tablePartitionPrefix } from '../output/keys.ts';
import { runsParquet, segmentStatsParquet, sourcesParquet } from '../output/parquet-tables.ts';
import { planRun } from '../plan/plan-run.ts';
import { readRunManifestKeys } from '../plan/run-manifest.ts';
import type { ChunkIndex } from '../ports/chunk-index.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore, StoredUnit } from '../ports/run-store.ts';
import type { SegmentStatsStore } from '../ports/segment-stats-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import {
  finalizeSegments,
  type SegmentAggregatesState,
  SegmentAggregator,
} from '../scoring/aggregates/segment-aggregates.ts';
import type { FeatureSpec } from '../scoring/features/feature-spec.ts';
import { type FeatureFitPartial, FeatureStatsAccumulator } from '../scoring/features/fit-features.ts';
import { fitPartialKey } from '../work/fit-unit.ts';
import { segmentPartialKey } from '../work/score-unit.ts';

export interface FinalizeDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  /** Needed to start the scoring run that follows a fit run. */
  readonly queue?: WorkQueue;
  /** Pipeline configs by name; scoring runs need theirs for segment statistics. */
  readonly pipelines?: ReadonlyMap<string, PipelineConfig>;
  /** Where segment statistics are kept by key, beside the `segment_stats` table. */
  readonly segmentStats?: SegmentStatsStore;
  /** Tuning of the source manifests of incremental embed pipelines (tests use tiny segments). @default DEFAULT_SOURCE_MANIFEST_OPTIONS */
  readonly sourceManifests?: Partial<SourceManifestOptions>;
  /**
   * Incremental embed pipelines: where each document was last read (a document gone from
   * one source may have moved to another in an earlier run), and documents gone from their
   * source are recorded here with no chunks, so one that comes back is not counted as
   * removing chunks a second time.
   */
  readonly chunkIndex?: ChunkIndex;
  /**
   * Prices the run (summary `cost`): the region whose prices apply, and whether the usage
   * is an estimate (a local run priced as if deployed). Without it the summary has no cost.
   */
  readonly costing?: { readonly region: string; readonly estimate: boolean };
  /**
   * Run-scoped endpoint capacity (issue 14): finalize releases the run's lease and prices
   * the endpoint from it; when the release keeps no cooldown (`capacity.cooldown: auto`
   * with no run likely to follow) and no other lease holds copies, it scales in at once
   * (the sweeper ends a kept cooldown). The scoring run a fit run starts takes its own
   * lease through it.
   */
  readonly capacity?: RunCapacityDeps;
  /** Told what scaling in at release did (functions/finalize.ts logs it). */
  readonly onScaledIn?: (runId: string, component: string, outcome: ScaledIn) => void;
}

/** Skipped sources named in the summary; the count covers them all. */
const MAX_SKIPPED_LISTED = 20;

/** The scoring run a fit run hands over to: derived from the fit run's id, so a retried finalize finds it. */
export function scoringRunIdFor(fitRunId: string): string {
  const stamp = fitRunId.split('-')[1];
  const suffix = createHash('sha256').update(`${fitRunId}/score`).digest('hex').slice(0, 6);
  return `r-${stamp}-${suffix}`;
}

const decoder = new TextDecoder();

async function readJson<T>(store: ObjectStore, key: string): Promise<T> {
  const bytes = await store.get(key);
  if (!bytes) throw new RunNotReady(`missing ${key}`);
  return JSON.parse(decoder.decode(bytes)) as T;
}

function scoreConfigOf(deps: FinalizeDeps, run: RunState): ScorePipelineConfig {
  const config = deps.pipelines?.get(run.pipeline);
  if (config?.kind !== 'score')
    throw new ConfigError(`run ${run.runId}: pipeline ${run.pipeline} is not a configured score pipeline`);
  return config;
}

/** Merges the fit units' partial statistics and stores the versioned artifact the scoring run reads. */
async function storeFittedFeatures(
  deps: FinalizeDeps,
  config: ScorePipelineConfig,
  run: RunState,
  units: UnitState[],
  now: Date,
): Promise<void> {
  const accumulator = new FeatureStatsAccumulator(config.featureSpec as FeatureSpec);
  for (const unit of units) {
    if (unit.status === 'succeeded')
      accumulator.merge(
        await readJson<FeatureFitPartial>(deps.store, fitPartialKey(run.pipeline, run.runId, unit.unitId)),
      );
  }
  await deps.store.put(
    config.featureStats.key,
    `${JSON.stringify(accumulator.finish(now), null, 2)}\n`,
    'application/json',
  );
}

/** Merges the scoring units' segment partials into the `segment_stats` table (one part per run). */
async function storeSegmentStats(
  deps: FinalizeDeps,
  config: ScorePipelineConfig,
  run: RunState,
  units: UnitState[],
): Promise<number> {
  const merged = new SegmentAggregator({
    segmentColumns: config.segments.columns,
    maxSegments: config.segments.maxSegments,
  });
  for (const unit of units) {
    if (unit.status === 'succeeded')
      merged.merge(
        await readJson<SegmentAggregatesState>(
          deps.store,
          segmentPartialKey(run.pipeline, run.runId, unit.unitId),
        ),
      );
  }
  const { prior, segments } = finalizeSegments(merged, { quantiles: config.segments.quantiles });
  if (segments.length > 0) {
    const key = `${tablePartitionPrefix('segment_stats', run.pipeline, run.runId)}${run.runId}.parquet`;
    await deps.store.put(
      key,
      segmentStatsParquet(run.runId, prior, segments),
      'application/vnd.apache.parquet',
    );
    await deps.segmentStats?.recordSegments(run.pipeline, run.runId, prior, segments);
  }
  return segments.length;
}

/** Starts the scoring run over the fit run's inputs, unless a retried finalize already did. */
async function startScoringRun(
  deps: FinalizeDeps,
  config: ScorePipelineConfig,
  run: RunState,
  now: Date,
): Promise<string> {
  const runId = scoringRunIdFor(run.runId);
  if (!(await deps.runs.getRun(runId))) {
    if (!deps.queue)
      throw new ConfigError(`run ${run.runId}: finalize has no work queue to start the scoring run`);
    const keys = await readRunManifestKeys(deps.store, run.pipeline, run.runId);
    await planRun(
      {
        store: deps.store,
        runs: deps.runs,
        queue: deps.queue,
        ...(deps.capacity && { capacity: deps.capacity }),
      },
      config,
      {
        runId,
        trigger: run.trigger,
        keys,
        now,
        task: 'work',
      },
    );
  }
  return runId;
}

export class RunNotReady extends SluiceError {}

/**
 * A run that held run-scoped capacity is charged its lease: copies x (release - take +
 * cooldown), warm-up and cooldown included, instead of the window of its endpoint calls.
 */
function withLeasedEndpoint(usage: RunUsage, lease: CapacityReleased | undefined): RunUsage {
  if (lease === undefined) return usage;
  return {
    ...usage,
    hosting: 'instance',
    instanceType: lease.instanceType,
    endpointSeconds: lease.endpointSeconds,
  };
}

/** What the run's lease comes to, if its pipeline has run-scoped capacity and the run took one. */
async function settleCapacity(
  deps: FinalizeDeps,
  config: PipelineConfig | undefined,
  runId: string,
  now: Date,
  followedBy: string | undefined,
): Promise<CapacityReleased | undefined> {
  const capacity = config && pipelineCapacityOf(config);
  if (!capacity || !deps.capacity) return undefined;
  const everyCapacity = [...(deps.pipelines?.values() ?? [])]
    .map((pipeline) => pipelineCapacityOf(pipeline))
    .filter((c): c is PipelineCapacity => c !== undefined);
  // A fit run's scoring run took its own lease first: the copies stay busy, no cooldown here.
  return settleRunCapacity(deps.capacity.leases, capacity, runId, now, {
    handedOver: followedBy !== undefined,
    schedules: schedulesOf([capacity, ...everyCapacity], capacity.componentName),
  });
}

/**
 * The run's `cost` from the usage its units stored (shared/cost), or `costUnknown` with
 * the one line saying which price is missing: a cost never fails a run.
 */
function costOf(
  deps: FinalizeDeps,
  config: PipelineConfig | undefined,
  units: readonly StoredUnit[],
  finalizeCalls: UnitUsage,
  lease?: CapacityReleased,
): Pick<RunSummary, 'cost' | 'costUnknown'> {
  if (!deps.costing) return {};
  const { region, estimate } = deps.costing;
  const usage = withFinalizeCalls(
    runUsageOf(
      units.map((u) => ({ attempts: u.attempts, usage: u.counts?.usage })),
      endpointHostingOf(config),
    ),
    finalizeCalls,
  );
  try {
    return { cost: runCost(withLeasedEndpoint(usage, lease), pricesFor(region), { region, estimate }) };
  } catch (error) {
    if (error instanceof PriceUnknown) return { costUnknown: error.message };
    throw error;
  }
}

/**
 * (primary adapter) -> finalizeRun -> (run store, object store): merges the units'
 * counts into the run summary, writes `summary.json` and the `runs` table row, then,
 * last, moves the run to its final status with a conditional write. Returns the summary
 * for the one caller that made the move, undefined for a duplicate request.
 */
export async function finalizeRun(
  unmetered: FinalizeDeps,
  runId: string,
  now: Date,
): Promise<RunSummary | undefined> {
  // Finalize's own S3 and run-store calls are part of the run's cost.
  const meter = new UsageMeter();
  const deps: FinalizeDeps = {
    ...unmetered,
    store: meter.objectStore(unmetered.store),
    runs: meter.runStore(unmetered.runs),
  };
  const run = await deps.runs.getRun(runId);
  if (!run) throw new RunNotReady(`run ${runId} does not exist`);
  if (run.status !== 'running') {
    // The run was moved already: its files are put back as the move stored them (a
    // finalize that lost the move may have written its own copy over them).
    const stored = await deps.runs.getSummary(runId);
    if (stored) await writeSummaryFiles(deps.store, stored);
    // A finalize that died between the move and the release: released as the summary says.
    if (stored?.capacity && deps.capacity)
      await releaseRunCapacity(deps.capacity.leases, runId, stored.capacity);
    return undefined;
  }
  const config = deps.pipelines?.get(run.pipeline);
  // Incremental embed runs diff each source's documents with its last manifest, which
  // needs every unit's descriptor (the files it read); other runs skip all of it.
  const comparesSources = tracksSources(config, run.task);
  const units = await deps.runs.listUnits(runId, comparesSources ? { withDescriptors: true } : {});
  const open = units.filter((u) => u.status !== 'succeeded' && u.status !== 'failed');
  if (open.length > 0) throw new RunNotReady(`run ${runId} still has ${open.length} unfinished units`);

  const total = emptyCounts();
  for (const unit of units) if (unit.counts) addCounts(total, unit.counts);
  const failed = units.filter((u) => u.status === 'failed');
  const kind = config?.kind;
  // One record per id in the results: the duplicate-id rule (shared/duplicates).
  if (run.task !== 'fit' && (kind === 'embed' || kind === 'score')) {
    const table = kind === 'embed' ? 'embeddings' : 'scores';
    const succeeded = units.filter((u) => u.status === 'succeeded').map((u) => u.unitId);
    countDuplicates(total, table, await resolveDuplicateIds(deps.store, run, table, succeeded));
  }
  let segments: number | undefined;
  let followedBy: string | undefined;
  if (run.task === 'fit') {
    const config = scoreConfigOf(deps, run);
    if (failed.length === 0) {
      await storeFittedFeatures(deps, config, run, units, now);
      followedBy = await startScoringRun(deps, config, run, now);
    }
  } else if (kind === 'score') {
    segments = await storeSegmentStats(deps, scoreConfigOf(deps, run), run, units);
  }
  let sources: SourceManifestComparison | undefined;
  if (comparesSources) {
    const { chunkIndex } = deps;
    sources = await compareSourceManifests(deps.store, run, units, now, {
      ...deps.sourceManifests,
      ...(chunkIndex && {
        forget: (docIds: string[]) =>
          chunkIndex.record(
            run.pipeline,
            [],
            docIds.map((docId) => ({ docId, chunkCount: 0 })),
          ),
        lastSourceOf: async (docIds: string[]) =>
          new Map(
            [...(await chunkIndex.lookupDocs(run.pipeline, docIds))].map(([id, doc]) => [id, doc.sourceKey]),
          ),
      }),
    });
    // The run's row per source, one part per run as segment_stats has (a retry rewrites it whole).
    if (sources.sources.length > 0) {
      await deps.store.put(
        `${tablePartitionPrefix('sources', run.pipeline, runId)}${runId}.parquet`,
        sourcesParquet(runId, run.startedAt, sources.sources),
        'application/vnd.apache.parquet',
      );
    }
  }
  // The lease as the summary reports it; released only after the move, so a released lease
  // whose run is running again means a redrive reopened it (the sweeper holds it again).
  const released = await settleCapacity(deps, config, runId, now, followedBy);
  const summary: RunSummary = {
    runId,
    pipeline: run.pipeline,
    status: failed.length > 0 ? 'failed' : 'succeeded',
    trigger: run.trigger,
    startedAt: run.startedAt,
    finishedAt: now.toISOString(),
    counts: {
      records: total.records,
      rejected: total.rejected,
      units: units.length,
      failedUnits: failed.length,
      chunks: total.chunks,
      embedded: total.embedded,
      skippedUnchanged: total.skippedUnchanged,
      removedChunks: total.removedChunks + (sources?.removedChunks ?? 0),
      ...(sources === undefined ? {} : { removedDocuments: sources.removedDocuments }),
      scored: total.scored,
    },
    stats: {
      realTokens: total.realTokens,
      paddedTokens: total.paddedTokens,
      endpointCalls: total.endpointCalls,
      throttled: total.throttled,
      retries: total.retries,
      warmingDeferrals: total.warmingDeferrals ?? 0,
    },
    failedUnits: failed.map((u) => ({ unitId: u.unitId, lastError: u.lastError })),
    timings: { runMs: Date.parse(now.toISOString()) - Date.parse(run.startedAt) },
    ...costOf(deps, config, units, meter.usage, released),
    ...(released === undefined ? {} : { capacity: released.summary }),
    ...(run.task === undefined ? {} : { task: run.task }),
    ...(followedBy === undefined ? {} : { followedBy }),
    ...(segments === undefined ? {} : { segments }),
    ...(sources === undefined
      ? {}
      : {
          sources: {
            compared: sources.compared,
            deleted: sources.deleted,
            reused: sources.reused,
            skipped: sources.skipped.length,
            skippedSources: sources.skipped.slice(0, MAX_SKIPPED_LISTED),
            removedDocuments: sources.removedDocuments,
            removedChunks: sources.removedChunks,
          },
        }),
  };
  // Every write comes before the move, and each one rewrites the same key: a finalize
  // that dies at any step leaves the run `running`, and the next one (a retried
  // message, or `sluice redrive --resume`) does it all again, so a run marked done
  // always has its summary and its one `runs` row.
  await writeSummaryFiles(deps.store, summary);
  const moved = await deps.runs.finishRun(runId, summary);
  if (released && deps.capacity) {
    // The move's winner released at its own time; this one changes nothing then.
    const stored = moved ? summary : await deps.runs.getSummary(runId);
    if (stored?.capacity) await releaseRunCapacity(deps.capacity.leases, runId, stored.capacity);
    // No run likely to follow: the copies go now, not at the next sweep (guarded as the sweeper's lowering is).
    const capacity = config && pipelineCapacityOf(config);
    if (moved && capacity && !released.cooldown.keep && followedBy === undefined) {
      const outcome = await scaleInAtRelease(deps.capacity, capacity);
      deps.onScaledIn?.(runId, capacity.componentName, outcome);
    }
  }
  if (!moved) {
    // A concurrent finalize moved it first: its summary is the run's, not this copy.
    const stored = await deps.runs.getSummary(runId);
    if (stored) await writeSummaryFiles(deps.store, stored);
    return undefined;
  }
  return summary;
}

/**
 * The summary files of a finished run that are missing (a finalize of an older version
 * wrote them after the move and died in between): rewritten from the summary the move
 * stored. Returns the keys it wrote; none for a run that is not finished.
 */
export async function restoreSummaryFiles(
  deps: Pick<FinalizeDeps, 'store' | 'runs'>,
  runId: string,
): Promise<string[]> {
  const run = await deps.runs.getRun(runId);
  if (!run || run.status === 'running') return [];
  const summary = await deps.runs.getSummary(runId);
  if (!summary) return [];
  const missing: string[] = [];
  for (const key of [runSummaryKey(summary.pipeline, runId), runRowKey(summary.pipeline, runId)])
    if (!(await deps.store.head(key))) missing.push(key);
  if (missing.length > 0) await writeSummaryFiles(deps.store, summary);
  return missing;
}

/** `runs/<p>/<runId>/summary.json` and the run's row of the `runs` table. */
async function writeSummaryFiles(store: ObjectStore, summary: RunSummary): Promise<void> {
  await store.put(
    runSummaryKey(summary.pipeline, summary.runId),
    `${JSON.stringify(summary, null, 2)}\n`,
    'application/json',
  );
  await store.put(
    runRowKey(summary.pipeline, summary.runId),
    runsParquet(summary),
    'application/vnd.apache.parquet',
  );
}
