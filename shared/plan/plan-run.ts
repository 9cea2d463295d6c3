import { pipelineCapacityOf } from '../capacity/names.ts';
import {
  acquireRunCapacity,
  acquireRunWorkers,
  type CapacityAcquired,
  onDemandOf,
  type RunCapacityDeps,
  runWorkOf,
} from '../capacity/run-capacity.ts';
import { queueOfPipeline, workPoolOf, workPoolsOf } from '../capacity/work-pools.ts';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { RunState, RunTrigger, WorkUnit } from '../domain/types.ts';
import { EstimatingTokenCounter, type TokenCounter } from '../embedding/token-counter.ts';
import {
  readPrefixSources,
  tracksSources,
  writeDeletedSources,
  writePrefixSources,
} from '../incremental/deleted-sources.ts';
import { DocListError } from '../incremental/doc-lines.ts';
import { configOfNewRun, pinsOfNewRun, stagesOfNewRun } from '../jobs/run-stages.ts';
import type { ObjectInfo, ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';
import { classifySource, type PlanStats, planUnits, type SourceFile, unitCostTarget } from './plan-units.ts';
import { restageGzip, type StagedPiece } from './restage-gzip.ts';
import { listedInputs, type ManifestEntry, writeRunManifest } from './run-manifest.ts';
import { type ClassifiedFile, estimateCosts } from './sample-cost.ts';

export interface PlanRunRequest {
  readonly runId: string;
  readonly trigger: RunTrigger;
  /** Object keys to read (an upload's key, or local files staged into the store). */
  readonly keys?: readonly string[];
  /**
   * Keys reported deleted (S3 `ObjectRemoved` notices): each is looked up, not read. One
   * that is gone, like a key of `keys` that is gone, is recorded for finalize as a deleted
   * source when the pipeline keeps source manifests; one that exists again (re-uploaded
   * since) is left to the run its upload starts.
   */
  readonly removedKeys?: readonly string[];
  /** A dataset prefix to read whole (scheduled runs). */
  readonly prefix?: string;
  readonly now: Date;
  /**
   * The stages the run goes through, in order (names of its job kind's stages); the units
   * planned here are those of the first. @default the job kind's choice (a score pipeline
   * fits first only when the stored statistics cannot be reused), else every stage
   */
  readonly stages?: readonly string[];
}

/** What planning read and how long each step took. */
export interface PlanRunStats extends PlanStats {
  sampledBytes: number;
  restagedBytesIn: number;
  restagedBytesOut: number;
  timings: { listMs: number; sampleMs: number; restageMs: number; cutMs: number };
}

export interface PlanRunResult {
  readonly run: RunState;
  readonly units: readonly WorkUnit[];
  /**
   * Keys named by the request (`keys` or `removedKeys`) that did not exist, and, for a run
   * over a prefix by a pipeline that keeps source manifests, keys the last run over that
   * prefix listed that are gone; nothing to read. Recorded as deleted sources when the
   * pipeline keeps source manifests.
   */
  readonly missing: readonly string[];
  /** Inputs of the run; `run.inputs` lists only the first of them when there are many. */
  readonly inputCount: number;
  /** The object that lists every input with its estimate. */
  readonly manifestKey: string;
  readonly stats: PlanRunStats;
  /**
   * The run's lease on its endpoint's run-scoped capacity and what raising the copies did
   * (a failure to raise is here, not thrown: the sweeper raises them on its next pass).
   * Absent for pipelines without run-scoped capacity and runs with no units.
   */
  readonly capacity?: CapacityAcquired;
}

export interface PlanRunDeps {
  readonly store: ObjectStore;
  readonly runs: RunStore;
  readonly queue: WorkQueue;
  /** Counts tokens in cost samples. @default EstimatingTokenCounter */
  readonly tokenCounter?: TokenCounter;
  /**
   * Leases and the control plane of run-scoped endpoint capacity (issue 14). Without it a
   * pipeline with an instance endpoint plans as before: nothing asks for copies.
   */
  readonly capacity?: RunCapacityDeps;
  /**
   * Every pipeline of the stack (the plan function's), for how they split between the two
   * work functions (`workPoolsOf`). Without it the stack is taken as not split.
   */
  readonly pipelines?: ReadonlyMap<string, PipelineConfig>;
}

const HEAD_CONCURRENCY = 16;

/** Times the steps of a plan, one lap per step. */
class Stopwatch {
  private last = Date.now();

  lap(): number {
    const now = Date.now();
    const ms = now - this.last;
    this.last = now;
    return ms;
  }
}

/** The objects a run reads, each with its size and pinned version, and the keys it was told of that are gone. */
export interface RunInputs {
  readonly files: readonly ClassifiedFile[];
  /** Keys listed under the prefix (scheduled runs), for the next run over it. */
  readonly listed: readonly string[];
  readonly missing: readonly string[];
  /** Whether the run lists a prefix whose sources the pipeline tracks (see tracksSources). */
  readonly listsPrefix: boolean;
}

/** Objects under the request's prefix with their sizes (listing gives them); folders left out. */
async function listPrefix(store: ObjectStore, prefix: string | undefined): Promise<Map<string, ObjectInfo>> {
  const found = new Map<string, ObjectInfo>();
  if (prefix === undefined) return found;
  for await (const object of store.list(prefix)) {
    if (!object.key.endsWith('/')) found.set(object.key, object);
  }
  return found;
}

/**
 * Heads the keys the request names (they may be gone): those to read are added to
 * `found` with their pinned version; those gone are returned.
 */
async function headNamedKeys(
  store: ObjectStore,
  request: Pick<PlanRunRequest, 'keys' | 'removedKeys'>,
  found: Map<string, ObjectInfo>,
): Promise<string[]> {
  const named = [...new Set([...(request.keys ?? []), ...(request.removedKeys ?? [])])]
    .filter((key) => !found.has(key))
    .sort();
  const toRead = new Set(request.keys ?? []);
  const heads = await mapWithConcurrency(named, HEAD_CONCURRENCY, (key) =>
    store.head(key, { version: toRead.has(key) }),
  );
  const missing: string[] = [];
  heads.forEach((info, i) => {
    if (!info) missing.push(named[i]!);
    else if (toRead.has(info.key)) found.set(info.key, info);
  });
  return missing;
}

/**
 * A run over a prefix names no deleted key: what the last run over it listed and is gone
 * now was deleted. (Unreadable, that list is replaced: those deletions go uncounted.)
 */
async function vanishedFromPrefix(
  store: ObjectStore,
  pipeline: string,
  prefix: string,
  found: ReadonlyMap<string, ObjectInfo>,
): Promise<string[]> {
  const before = await readPrefixSources(store, pipeline, prefix).catch((error: unknown) => {
    if (error instanceof DocListError) return undefined;
    throw error;
  });
  return (before ?? []).filter((key) => !found.has(key));
}

/**
 * Every unit pins the version it was planned on: listed objects without one (a local
 * listing; S3's carries the ETag) are headed for it, and dropped when gone since listed.
 */
async function pinListedVersions(
  store: ObjectStore,
  listed: readonly string[],
  found: Map<string, ObjectInfo>,
): Promise<void> {
  const unpinned = listed
    .map((key) => found.get(key))
    .filter((info): info is ObjectInfo => info !== undefined && info.version === undefined);
  const pins = await mapWithConcurrency(unpinned, HEAD_CONCURRENCY, (info) =>
    store.head(info.key, { version: true }),
  );
  pins.forEach((info, i) => {
    const key = unpinned[i]!.key;
    if (info) found.set(key, info);
    else found.delete(key);
  });
}

/** The objects in key order, each with its format and compression. */
function classifyFiles(found: ReadonlyMap<string, ObjectInfo>, config: PipelineConfig): ClassifiedFile[] {
  return [...found.values()]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((info) => ({
      key: info.key,
      size: info.size,
      ...(info.version === undefined ? {} : { version: info.version }),
      ...classifySource(info.key, config.input.format),
    }));
}

/** Step 1: what the run reads (listed, named, pinned) and what it was told of that is gone. */
export async function findRunInputs(
  store: ObjectStore,
  config: PipelineConfig,
  request: Pick<PlanRunRequest, 'keys' | 'removedKeys' | 'prefix'>,
): Promise<RunInputs> {
  const found = await listPrefix(store, request.prefix);
  const listed = [...found.keys()];
  const missing = await headNamedKeys(store, request, found);
  const listsPrefix = request.prefix !== undefined && tracksSources(config);
  if (listsPrefix) missing.push(...(await vanishedFromPrefix(store, config.name, request.prefix!, found)));
  await pinListedVersions(store, listed, found);
  return { files: classifyFiles(found, config), listed, missing, listsPrefix };
}

/** Step 2: each file's estimated work, from a sample. */
async function estimateFiles(
  store: ObjectStore,
  config: PipelineConfig,
  files: readonly ClassifiedFile[],
  counter: TokenCounter,
): Promise<{ files: SourceFile[]; sampledBytes: number }> {
  const estimates = await estimateCosts(store, [...files], config, { counter });
  return {
    files: files.map((file, i) => ({ ...file, estCost: estimates[i]!.estCost, estimate: estimates[i]! })),
    sampledBytes: estimates.reduce((sum, e) => sum + e.sampledBytes, 0),
  };
}

/** What re-staging big gzip sources left: the parts, the files read as they are, the bytes. */
export interface Restaged {
  readonly staged: StagedPiece[];
  readonly stagedParts: Map<string, number>;
  readonly rest: SourceFile[];
  bytesIn: number;
  bytesOut: number;
}

/** Whether a file is a gzip stream too big for one unit that can be re-staged into parts. */
function needsRestaging(file: SourceFile, target: number): boolean {
  return (
    file.compression === 'gzip' && (file.format === 'jsonl' || file.format === 'csv') && file.estCost > target
  );
}

/** Step 3: a gzip stream cannot be read from the middle: big ones are re-staged into parts. */
async function restageBigGzips(
  store: ObjectStore,
  config: PipelineConfig,
  runId: string,
  files: readonly SourceFile[],
  counter: TokenCounter,
): Promise<Restaged> {
  const target = unitCostTarget(
    files.reduce((sum, f) => sum + f.estCost, 0),
    config,
  );
  const restaged: Restaged = { staged: [], stagedParts: new Map(), rest: [], bytesIn: 0, bytesOut: 0 };
  for (const file of files) {
    if (!needsRestaging(file, target)) {
      restaged.rest.push(file);
      continue;
    }
    const result = await restageGzip(
      store,
      config,
      {
        key: file.key,
        format: file.format as 'jsonl' | 'csv',
        ...(file.version === undefined ? {} : { version: file.version }),
      },
      {
        runId,
        partCost: file.estCost / Math.ceil(file.estCost / target),
        tokensPerByte: file.estimate?.tokensPerByte ?? 1 / config.planning.charsPerToken,
        counter,
      },
    );
    restaged.bytesIn += result.bytesIn;
    restaged.bytesOut += result.bytesOut;
    if (result.parts.length === 0) {
      restaged.rest.push(file); // broken before its first record: the worker reports the fault
      continue;
    }
    restaged.staged.push(...result.parts);
    restaged.stagedParts.set(file.key, result.parts.length);
  }
  return restaged;
}

/** The run manifest's entry per input: its estimate (the sum of its parts' when re-staged). */
export function manifestEntriesOf(files: readonly SourceFile[], restaged: Restaged): ManifestEntry[] {
  return files.map((file) => {
    const parts = restaged.stagedParts.get(file.key);
    return {
      key: file.key,
      size: file.size,
      format: file.format,
      compression: file.compression,
      estCost:
        parts === undefined
          ? file.estCost
          : restaged.staged.filter((p) => p.sourceKey === file.key).reduce((sum, p) => sum + p.estCost, 0),
      method: file.estimate?.method ?? 'fallback',
      ...(parts === undefined ? {} : { stagedParts: parts }),
    };
  });
}

/** The run as recorded: in its first stage, no unit done yet. */
export function newRunState(
  config: PipelineConfig,
  request: Pick<PlanRunRequest, 'runId' | 'trigger' | 'now'>,
  inputKeys: readonly string[],
  stages: readonly string[],
  unitCount: number,
): RunState {
  return {
    runId: request.runId,
    pipeline: config.name,
    trigger: request.trigger,
    startedAt: request.now.toISOString(),
    inputs: listedInputs([...inputKeys]),
    stage: stages[0]!,
    stages,
    status: 'running',
    finishedAt: null,
    totalUnits: unitCount,
    doneUnits: 0,
    failedUnits: 0,
  };
}

/**
 * Whether a run of `config` that calls no run-scoped endpoint takes a workers lease: not in
 * a split stack whose compute pool holds the pipeline (issue 14). Its units go to the
 * compute queue, whose event source limit the stack fixes at the compute pipelines' largest
 * `workers.maxConcurrency`; the work queue's limit, which the leases raise, follows only
 * the endpoint pool.
 */
export function takesWorkersLease(deps: Pick<PlanRunDeps, 'pipelines'>, config: PipelineConfig): boolean {
  if (deps.pipelines === undefined) return true;
  return queueOfPipeline(workPoolsOf([...deps.pipelines.values()]), config.name) === 'work';
}

/**
 * What the run record keeps of the stack's split (issue 14): the pipeline's pool and whether
 * the stack has two work functions, the same split the queue routes by and
 * `takesWorkersLease` reads, so a redrive sends units back to the queue they were planned for.
 */
export function workPoolOfRun(
  deps: Pick<PlanRunDeps, 'pipelines'>,
  config: PipelineConfig,
): Pick<RunState, 'workPool' | 'splitStack'> {
  const split = deps.pipelines === undefined ? false : workPoolsOf([...deps.pipelines.values()]).split;
  return { workPool: workPoolOf(config), splitStack: split };
}

/**
 * The run's lease on its endpoint's run-scoped capacity: taken once the run exists (the
 * sweeper's liveness check reads it) and before any unit is sent, so no unit of the run
 * works without capacity on the way. None without run-scoped capacity or units.
 */
async function takeRunLease(
  deps: PlanRunDeps,
  config: PipelineConfig,
  run: RunState,
  units: readonly WorkUnit[],
  now: Date,
): Promise<CapacityAcquired | undefined> {
  const endpointCapacity = pipelineCapacityOf(config);
  if (!deps.capacity || units.length === 0) return undefined;
  // No copies to follow: a lease on workers of its own where the workers follow the copies.
  if (!endpointCapacity)
    return takesWorkersLease(deps, config)
      ? acquireRunWorkers(deps.capacity, config, run.runId, now)
      : undefined;
  const work = runWorkOf(
    config,
    units.reduce((sum, unit) => sum + unit.estCost, 0),
  );
  // An incremental embed run may embed nothing: its copies wait for a unit that needs them.
  return acquireRunCapacity(
    deps.capacity,
    endpointCapacity,
    run.runId,
    work,
    now,
    onDemandOf(deps.capacity, config),
  );
}

/**
 * (primary adapter) -> planRun -> (object store, run store, work queue): finds and pins
 * the inputs, estimates each one's work from a sample, re-stages big gzip sources into
 * parts, cuts everything into units of about equal cost (the units of the run's first
 * stage), records the run (with a manifest of its inputs and its stages) and its units,
 * takes its capacity lease, and sends one message per unit. A run with no units is
 * handed straight to finalize so it still ends.
 */
export async function planRun(
  deps: PlanRunDeps,
  configured: PipelineConfig,
  request: PlanRunRequest,
): Promise<PlanRunResult> {
  const { config, inputs, files, restaged, stages, units, stats } = await cutRunUnits(
    deps,
    configured,
    request,
  );
  const manifestKey = await writeRunManifest(
    deps.store,
    config.name,
    request.runId,
    manifestEntriesOf(files, restaged),
  );
  if (tracksSources(config))
    await writeDeletedSources(deps.store, config.name, request.runId, inputs.missing);
  const run: RunState = {
    ...newRunState(
      config,
      request,
      files.map((f) => f.key),
      stages,
      units.length,
    ),
    ...workPoolOfRun(deps, config),
  };
  await deps.runs.createRun(run, units);
  const capacity = await takeRunLease(deps, config, run, units, request.now);
  if (units.length > 0) await deps.queue.sendUnits(units);
  else await deps.queue.requestFinalize(run.runId);
  // Last: a plan retried after a failure above compares with the same earlier list.
  if (inputs.listsPrefix)
    await writePrefixSources(deps.store, config.name, request.prefix!, request.runId, [...inputs.listed]);
  return {
    run,
    units,
    missing: inputs.missing,
    inputCount: files.length,
    manifestKey,
    stats,
    ...(capacity === undefined ? {} : { capacity }),
  };
}

/** The units of a new run's first stage, with what planning read to cut them and how long each step took. */
interface CutRun {
  /** The config the run applies (see configOfNewRun). */
  readonly config: PipelineConfig;
  readonly inputs: RunInputs;
  readonly files: readonly SourceFile[];
  readonly restaged: Restaged;
  readonly stages: readonly string[];
  readonly units: WorkUnit[];
  readonly stats: PlanRunStats;
}

/**
 * Nothing stored yet: the run's inputs found, the config it applies resolved against them,
 * each input priced from a sample, big gzips re-staged into parts, and units of about equal
 * cost cut, each in the run's first stage with the run's pins.
 */
async function cutRunUnits(
  deps: PlanRunDeps,
  configured: PipelineConfig,
  request: PlanRunRequest,
): Promise<CutRun> {
  const counter = deps.tokenCounter ?? new EstimatingTokenCounter();
  const clock = new Stopwatch();
  const inputs = await findRunInputs(deps.store, configured, request);
  // What the run applies, e.g. a score pipeline's spec inferred from its model, checked against the inputs.
  const config = await configOfNewRun(deps.store, configured, inputs.files);
  const listMs = clock.lap();
  const { files, sampledBytes } = await estimateFiles(deps.store, config, inputs.files, counter);
  const sampleMs = clock.lap();
  const restaged = await restageBigGzips(deps.store, config, request.runId, files, counter);
  const restageMs = clock.lap();
  const cut: PlanStats = { cutPassBytes: 0, cutPasses: [] };
  const planned = await planUnits(deps.store, config, request.runId, restaged.rest, {
    staged: restaged.staged,
    stats: cut,
  });
  const cutMs = clock.lap();
  const stages = request.stages ?? (await stagesOfNewRun(deps.store, config));
  const pins = await pinsOfNewRun(deps.store, config);
  const units = planned.map((unit) => ({ ...unit, stage: stages[0]!, ...pins }));
  const stats: PlanRunStats = {
    ...cut,
    sampledBytes,
    restagedBytesIn: restaged.bytesIn,
    restagedBytesOut: restaged.bytesOut,
    timings: { listMs, sampleMs, restageMs, cutMs },
  };
  return { config, inputs, files, restaged, stages, units, stats };
}
