import { type PipelineCapacity, pipelineCapacityOf, schedulesOf } from '../capacity/names.ts';
import {
  type CapacityReleased,
  type RunCapacityDeps,
  releaseRunCapacity,
  type ScaledIn,
  scaleInAtRelease,
  settleRunCapacity,
} from '../capacity/run-capacity.ts';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import { coldStartFor } from '../cost/cold-start.ts';
import { runUsageOfPipeline } from '../cost/pipeline-usage.ts';
import { PriceUnknown, pricesFor } from '../cost/pricing.ts';
import { type RunUsage, runCost } from '../cost/run-cost.ts';
import { type UnitUsage, UsageMeter, withFinalizeCalls } from '../cost/unit-usage.ts';
import type {
  ReplacedBundleFile,
  RunStageSummary,
  RunState,
  RunSummary,
  UnitCounts,
} from '../domain/types.ts';
import { countDuplicates, resolveDuplicateIds } from '../duplicates/resolve-duplicate-ids.ts';
import type { SourceManifestOptions } from '../incremental/compare-source-manifests.ts';
import type { JobKind, JobStage, StageMerged } from '../jobs/job-kind.ts';
import { jobKindOf } from '../jobs/registry.ts';
import {
  currentStageName,
  nextStageName,
  stageNamed,
  stageNamesOf,
  unitStageName,
} from '../jobs/run-stages.ts';
import { runRowKey, runSummaryKey } from '../output/keys.ts';
import { runsParquet } from '../output/parquet-tables.ts';
import type { ChunkIndex } from '../ports/chunk-index.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore, StoredUnit } from '../ports/run-store.ts';
import type { SegmentStatsStore } from '../ports/segment-stats-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import { planStageUnits, resumeStage, startNextStage } from './next-stage.ts';
import { RunNotReady } from './run-not-ready.ts';
import { type RunOutcome, runSummaryOf, stageSummaryOf, totalCounts } from './run-summary.ts';

export interface FinalizeDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  /** Sends the units of a run's next stage (runs of more than one stage). */
  readonly queue?: WorkQueue;
  /** Pipeline configs by name: a run's job kind and stages come from its pipeline's. */
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
   * (the sweeper ends a kept cooldown). A run of several stages keeps its one lease from
   * plan to the end of its last stage.
   */
  readonly capacity?: RunCapacityDeps;
  /**
   * Local runs: pipeline-folder files that replaced the bucket's copy before the run
   * (cli/seed-bundle.ts), kept in the stored summary so `sluice status` shows them.
   */
  readonly replacedFiles?: readonly ReplacedBundleFile[];
  /** Told when a stage ended and this call moved the run into the next one (the handler logs it). */
  readonly onStageStarted?: (runId: string, stage: { from: string; to: string; units: number }) => void;
  /** Told what scaling in at release did (functions/finalize.ts logs it). */
  readonly onScaledIn?: (runId: string, component: string, outcome: ScaledIn) => void;
}

export { RunNotReady };

/**
 * A run that held run-scoped capacity is charged its lease: copies x (release - take +
 * cooldown), warm-up and cooldown included, instead of the window of its endpoint calls.
 * A local run priced as if deployed (`estimate`) adds the cold start its copies would pay
 * deployed, which the local model server (serving at once, or after the warm-up it
 * simulates) does not: copies x the type's published start less the warm-up measured. A
 * lease whose copies were never raised (on demand, never needed) had none to pay.
 */
function withLeasedEndpoint(
  usage: RunUsage,
  lease: CapacityReleased | undefined,
  estimate: boolean,
  config: PipelineConfig | undefined,
): RunUsage {
  if (lease === undefined) return usage;
  const raised = lease.summary.copiesRaised !== 'never';
  const start = coldStartFor(lease.instanceType, { llm: config?.kind === 'generate' }).seconds;
  const assumed =
    estimate && raised && lease.endpointSeconds > 0
      ? lease.summary.copies * Math.max(0, start - (lease.summary.warmupSeconds ?? 0))
      : 0;
  return {
    ...usage,
    hosting: 'instance',
    instanceType: lease.instanceType,
    endpointSeconds: lease.endpointSeconds + assumed,
    ...(assumed > 0 ? { assumedColdStartSeconds: assumed } : {}),
  };
}

/** What the run's lease comes to, if its pipeline has run-scoped capacity and the run took one. */
async function settleCapacity(
  deps: FinalizeDeps,
  config: PipelineConfig | undefined,
  runId: string,
  now: Date,
): Promise<CapacityReleased | undefined> {
  const capacity = config && pipelineCapacityOf(config);
  if (!capacity || !deps.capacity) return undefined;
  const everyCapacity = [...(deps.pipelines?.values() ?? [])]
    .map((pipeline) => pipelineCapacityOf(pipeline))
    .filter((c): c is PipelineCapacity => c !== undefined);
  return settleRunCapacity(deps.capacity.leases, capacity, runId, now, {
    handedOver: false,
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
    runUsageOfPipeline(
      config,
      units.map((u) => ({ attempts: u.attempts, usage: u.counts?.usage, counts: u.counts, stage: u.stage })),
    ),
    finalizeCalls,
  );
  try {
    return {
      cost: runCost(withLeasedEndpoint(usage, lease, estimate, config), pricesFor(region), {
        region,
        estimate,
      }),
    };
  } catch (error) {
    if (error instanceof PriceUnknown) return { costUnknown: error.message };
    throw error;
  }
}

/**
 * The ports wrapped so that finalize's own S3, run-store and chunk index calls are part of the
 * run's cost, and its chunk index lookups read consistently (metered so).
 */
function meteredFinalizeDeps(deps: FinalizeDeps, meter: UsageMeter): FinalizeDeps {
  return {
    ...deps,
    store: meter.objectStore(deps.store),
    runs: meter.runStore(deps.runs),
    ...(deps.chunkIndex ? { chunkIndex: readingConsistently(meter.chunkIndex(deps.chunkIndex)) } : {}),
  };
}

/**
 * Every lookup of finalize reads what was written before it: the entries its run's units
 * recorded moments ago (the last unit's just before finalize was sent), the kept records'
 * entries its duplicate-id rule wrote, the documents its moves check forgot in an earlier
 * batch or an earlier try. An eventually consistent read may miss any of them: the
 * duplicate-id rule then keeps a losing unit's entry it took for the winner's (the winner's
 * chunks embedded again next run), and the moves check decides a document differently than
 * the try or batch that forgot it. DynamoDB bills each such read twice; finalize's lookups
 * are one per vanished document and per duplicated id, a unit's one per document.
 */
function readingConsistently(index: ChunkIndex): ChunkIndex {
  return {
    lookupDocs: (pipeline, docIds, options) =>
      index.lookupDocs(pipeline, docIds, { ...options, consistent: true }),
    record: (pipeline, docs, replacing) => index.record(pipeline, docs, replacing),
  };
}

/**
 * A run that was moved already: its files are put back as the move stored them (a
 * finalize that lost the move may have written its own copy over them), and a finalize
 * that died between the move and the release releases as the summary says.
 */
async function restoreFinishedRun(deps: FinalizeDeps, runId: string): Promise<void> {
  const stored = await deps.runs.getSummary(runId);
  if (stored) await writeSummaryFiles(deps.store, stored);
  if (stored?.capacity && deps.capacity)
    await releaseRunCapacity(deps.capacity.leases, runId, stored.capacity);
}

/** The run's stage as finalize sees it: its kind (absent without the pipeline's config), its units. */
interface StageOfRun {
  readonly kind: JobKind<PipelineConfig> | undefined;
  readonly config: PipelineConfig | undefined;
  readonly name: string | undefined;
  readonly stage: JobStage<PipelineConfig> | undefined;
  readonly next: string | undefined;
  /** Whether the stage was planned from an earlier stage of the run. */
  readonly later: boolean;
  readonly units: StoredUnit[];
  readonly allUnits: StoredUnit[];
}

/** Reads the run's units and picks those of its current stage. */
async function stageOfRun(deps: FinalizeDeps, run: RunState): Promise<StageOfRun> {
  const config = deps.pipelines?.get(run.pipeline);
  const kind = config && jobKindOf(config);
  if (!config || !kind) {
    const units = await deps.runs.listUnits(run.runId);
    return {
      kind,
      config,
      name: undefined,
      stage: undefined,
      next: undefined,
      later: false,
      units,
      allUnits: units,
    };
  }
  const name = currentStageName(kind, run);
  const stage = stageNamed(kind, name);
  const names = stageNamesOf(kind, run);
  const withDescriptors = names.length > 1 || (stage.mergeNeedsDescriptors?.(config) ?? false);
  const allUnits = await deps.runs.listUnits(run.runId, { withDescriptors });
  const units = allUnits.filter((unit) => unitStageName(kind, run, unit) === name);
  const next = nextStageName(kind, run);
  return { kind, config, name, stage, next, later: names.indexOf(name) > 0, units, allUnits };
}

const isOpen = (unit: StoredUnit): boolean => unit.status !== 'succeeded' && unit.status !== 'failed';

/**
 * Whether the stage is still being worked. A later stage whose finalize died after moving
 * the run into it is taken up here (its units stored and sent again); its last unit
 * asks for finalize again.
 *
 * @throws RunNotReady when units of the run's first stage are still open
 */
async function stillWorking(deps: FinalizeDeps, run: RunState, of: StageOfRun): Promise<boolean> {
  const open = of.units.filter(isOpen);
  if (of.later && of.kind && of.config && of.name && (open.length > 0 || of.units.length === 0)) {
    const planned = await resumeStage(deps, of.config, of.kind, run, of.name, of.allUnits);
    return planned > 0;
  }
  if (open.length > 0) throw new RunNotReady(`run ${run.runId} still has ${open.length} unfinished units`);
  return false;
}

/**
 * The end of a stage: the duplicate-id rule on its table (one record per id in the
 * results), then the kind's merge of the stage. Returns the stage's counts after the rule.
 */
async function endStage(
  deps: FinalizeDeps,
  run: RunState,
  of: StageOfRun,
  now: Date,
): Promise<{ total: UnitCounts; merged: StageMerged }> {
  const total = totalCounts(of.units);
  const table = of.stage?.idTable;
  if (table) {
    const succeeded = of.units.filter((u) => u.status === 'succeeded').map((u) => u.unitId);
    // Incremental embedding: the kept record of every duplicated id gets its index entry.
    const index = of.config?.kind === 'embed' && of.config.incremental.enabled ? deps.chunkIndex : undefined;
    countDuplicates(total, table, await resolveDuplicateIds(deps.store, run, table, succeeded, index));
  }
  const merged =
    of.stage?.mergeStage && of.config ? await of.stage.mergeStage(deps, of.config, run, of.units, now) : {};
  return { total, merged };
}

/** Merges a stage that is not the run's last and moves the run into the next one. */
async function handOverToNextStage(
  deps: FinalizeDeps,
  run: RunState,
  of: StageOfRun,
  now: Date,
): Promise<void> {
  await endStage(deps, run, of, now);
  const move = { from: of.name!, to: of.next! };
  const units = await planStageUnits(
    { store: deps.store, config: of.config! },
    of.kind!,
    run,
    move.to,
    of.allUnits,
  );
  if (await startNextStage(deps, run, { ...move, units }))
    deps.onStageStarted?.(run.runId, { ...move, units: units.length });
}

/** The stages the run went through, for its summary. */
function stagesOf(run: RunState, of: StageOfRun): RunStageSummary[] {
  if (!of.kind || !of.name) return [stageSummaryOf(of.name ?? 'run', of.units)];
  const kind = of.kind;
  const names = stageNamesOf(kind, run);
  return names.slice(0, names.indexOf(of.name) + 1).map((name) =>
    stageSummaryOf(
      name,
      of.allUnits.filter((unit) => unitStageName(kind, run, unit) === name),
    ),
  );
}

/**
 * (primary adapter) -> finalizeRun -> (run store, object store, work queue): called when
 * every unit of the run's current stage is terminal. A stage that is not the run's last
 * (and had no failed unit) is merged and the next stage planned and sent in the same run.
 * The last stage (or one that failed) ends the run: its merge, the summary, `summary.json`
 * and the `runs` table row, then, last, the run's move to its final status with a
 * conditional write. Returns the summary for the one caller that made the move, undefined
 * for a duplicate request or a run that went on to its next stage.
 */
export async function finalizeRun(
  unmetered: FinalizeDeps,
  runId: string,
  now: Date,
): Promise<RunSummary | undefined> {
  const meter = new UsageMeter();
  const deps = meteredFinalizeDeps(unmetered, meter);
  const run = await deps.runs.getRun(runId);
  if (!run) throw new RunNotReady(`run ${runId} does not exist`);
  if (run.status !== 'running') {
    await restoreFinishedRun(deps, runId);
    return undefined;
  }
  const of = await stageOfRun(deps, run);
  if (await stillWorking(deps, run, of)) return undefined;
  const failed = of.units.some((u) => u.status === 'failed');
  if (of.next !== undefined && !failed) {
    await handOverToNextStage(deps, run, of, now);
    return undefined;
  }
  const { total, merged } = await endStage(deps, run, of, now);
  const outcome = {
    run,
    stageUnits: of.units,
    stageTotal: total,
    allUnits: of.allUnits,
    merged,
    finishedAt: now,
    ...(of.config ? { toleratedRejectPercent: of.config.run.toleratedRejectPercent } : {}),
  };
  return endRun(deps, meter, of.config, { ...outcome, stages: stagesOf(run, of) });
}

/**
 * The run's summary with its cost and lease, written before the move; the lease released
 * after it (a released lease whose run is running again means a redrive reopened it).
 * Every write comes before the move, and each one rewrites the same key: a finalize that
 * dies at any step leaves the run `running`, and the next one (a retried message, or
 * `sluice redrive --resume`) does it all again, so a run marked done always has its
 * summary and its one `runs` row.
 */
async function endRun(
  deps: FinalizeDeps,
  meter: UsageMeter,
  config: PipelineConfig | undefined,
  outcome: RunOutcome,
): Promise<RunSummary | undefined> {
  const { runId } = outcome.run;
  const now = outcome.finishedAt;
  const released = await settleCapacity(deps, config, runId, now);
  const summary: RunSummary = {
    ...runSummaryOf(outcome),
    ...costOf(deps, config, outcome.allUnits, meter.usage, released),
    ...(released === undefined ? {} : { capacity: released.summary }),
    ...(deps.replacedFiles?.length ? { replacedFiles: [...deps.replacedFiles] } : {}),
  };
  await writeSummaryFiles(deps.store, summary);
  const moved = await deps.runs.finishRun(runId, summary);
  if (released && deps.capacity) await releaseAfterMove(deps, config, summary, moved, released);
  if (!moved) {
    // A concurrent finalize moved it first: its summary is the run's, not this copy.
    const stored = await deps.runs.getSummary(runId);
    if (stored) await writeSummaryFiles(deps.store, stored);
    return undefined;
  }
  return summary;
}

/**
 * Releases the run's lease (the move's winner at its own time; a loser changes nothing
 * then), and with no run likely to follow, scales in now rather than at the next sweep
 * (guarded as the sweeper's lowering is).
 */
async function releaseAfterMove(
  deps: FinalizeDeps,
  config: PipelineConfig | undefined,
  summary: RunSummary,
  moved: boolean,
  released: CapacityReleased,
): Promise<void> {
  const capacityDeps = deps.capacity!;
  const stored = moved ? summary : await deps.runs.getSummary(summary.runId);
  if (stored?.capacity) await releaseRunCapacity(capacityDeps.leases, summary.runId, stored.capacity);
  const capacity = config && pipelineCapacityOf(config);
  if (moved && capacity && !released.cooldown.keep) {
    const outcome = await scaleInAtRelease(capacityDeps, capacity);
    deps.onScaledIn?.(summary.runId, capacity.componentName, outcome);
  }
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
