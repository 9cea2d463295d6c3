import { pipelineCapacityOf } from '../capacity/names.ts';
import {
  acquireRunCapacity,
  type CapacityAcquired,
  type RunCapacityDeps,
  runWorkOf,
} from '../capacity/run-capacity.ts';
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
import type { ObjectInfo, ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import { fitDecisionFor } from '../scoring/scoring-context.ts';
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
   * Scoring pipelines: `fit` plans a first pass that fits feature statistics, `work` the
   * scoring itself. @default `fit` when the stored statistics cannot be reused, else `work`
   */
  readonly task?: 'fit' | 'work';
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
}

const HEAD_CONCURRENCY = 16;

/**
 * (primary adapter) -> planRun -> (object store, run store, work queue): sizes the
 * inputs, estimates each one's work from a sample, re-stages big gzip sources into
 * parts, cuts everything into units of about equal cost, records the run (with a
 * manifest of its inputs) and its units, and sends one message per unit. A run with no
 * units is handed straight to finalize so it still ends.
 */
export async function planRun(
  deps: PlanRunDeps,
  config: PipelineConfig,
  request: PlanRunRequest,
): Promise<PlanRunResult> {
  const counter = deps.tokenCounter ?? new EstimatingTokenCounter();
  const stats: PlanRunStats = {
    cutPassBytes: 0,
    cutPasses: [],
    sampledBytes: 0,
    restagedBytesIn: 0,
    restagedBytesOut: 0,
    timings: { listMs: 0, sampleMs: 0, restageMs: 0, cutMs: 0 },
  };
  let started = Date.now();
  const lap = (): number => {
    const now = Date.now();
    const ms = now - started;
    started = now;
    return ms;
  };

  // Listed objects come with their size; named keys are headed (they may be gone).
  const found = new Map<string, ObjectInfo>();
  if (request.prefix !== undefined) {
    for await (const object of deps.store.list(request.prefix)) {
      if (!object.key.endsWith('/')) found.set(object.key, object);
    }
  }
  const listed = [...found.keys()];
  const named = [...new Set([...(request.keys ?? []), ...(request.removedKeys ?? [])])]
    .filter((key) => !found.has(key))
    .sort();
  const toRead = new Set(request.keys ?? []);
  const heads = await mapWithConcurrency(named, HEAD_CONCURRENCY, (key) =>
    deps.store.head(key, { version: toRead.has(key) }),
  );
  const missing: string[] = [];
  heads.forEach((info, i) => {
    if (!info) missing.push(named[i]!);
    else if (toRead.has(info.key)) found.set(info.key, info);
  });
  // A run over a prefix names no deleted key: what the last run over it listed and is
  // gone now was deleted. (Unreadable, that list is replaced: those deletions go uncounted.)
  const listsPrefix = request.prefix !== undefined && tracksSources(config);
  if (listsPrefix) {
    const before = await readPrefixSources(deps.store, config.name, request.prefix!).catch(
      (error: unknown) => {
        if (error instanceof DocListError) return undefined;
        throw error;
      },
    );
    for (const key of before ?? []) if (!found.has(key)) missing.push(key);
  }
  // Every unit pins the version it was planned on: listed objects without one (a local
  // listing; S3's carries the ETag) are headed for it.
  const unpinned = listed
    .map((key) => found.get(key))
    .filter((info): info is ObjectInfo => info !== undefined && info.version === undefined);
  const pins = await mapWithConcurrency(unpinned, HEAD_CONCURRENCY, (info) =>
    deps.store.head(info.key, { version: true }),
  );
  pins.forEach((info, i) => {
    const key = unpinned[i]!.key;
    if (info) found.set(key, info);
    else found.delete(key); // gone since it was listed: nothing to read
  });
  const classified: ClassifiedFile[] = [...found.values()]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((info) => ({
      key: info.key,
      size: info.size,
      ...(info.version === undefined ? {} : { version: info.version }),
      ...classifySource(info.key, config.input.format),
    }));
  stats.timings.listMs = lap();

  const estimates = await estimateCosts(deps.store, classified, config, { counter });
  stats.sampledBytes = estimates.reduce((sum, e) => sum + e.sampledBytes, 0);
  const files: SourceFile[] = classified.map((file, i) => ({
    ...file,
    estCost: estimates[i]!.estCost,
    estimate: estimates[i]!,
  }));
  stats.timings.sampleMs = lap();

  // A gzip stream cannot be read from the middle: big ones are re-staged into parts.
  const target = unitCostTarget(
    files.reduce((sum, f) => sum + f.estCost, 0),
    config,
  );
  const staged: StagedPiece[] = [];
  const stagedParts = new Map<string, number>();
  const rest: SourceFile[] = [];
  for (const file of files) {
    if (
      file.compression !== 'gzip' ||
      (file.format !== 'jsonl' && file.format !== 'csv') ||
      file.estCost <= target
    ) {
      rest.push(file);
      continue;
    }
    const result = await restageGzip(
      deps.store,
      config,
      {
        key: file.key,
        format: file.format,
        ...(file.version === undefined ? {} : { version: file.version }),
      },
      {
        runId: request.runId,
        partCost: file.estCost / Math.ceil(file.estCost / target),
        tokensPerByte: file.estimate?.tokensPerByte ?? 1 / config.planning.charsPerToken,
        counter,
      },
    );
    stats.restagedBytesIn += result.bytesIn;
    stats.restagedBytesOut += result.bytesOut;
    if (result.parts.length === 0) {
      rest.push(file); // broken before its first record: the worker reports the fault
      continue;
    }
    staged.push(...result.parts);
    stagedParts.set(file.key, result.parts.length);
  }
  stats.timings.restageMs = lap();

  const planned = await planUnits(deps.store, config, request.runId, rest, { staged, stats });
  stats.timings.cutMs = lap();
  const task =
    request.task ??
    (config.kind === 'score' && (await fitDecisionFor(deps.store, config)).action === 'fit' ? 'fit' : 'work');
  const units = task === 'fit' ? planned.map((unit) => ({ ...unit, task: 'fit' as const })) : planned;

  const manifest: ManifestEntry[] = files.map((file) => ({
    key: file.key,
    size: file.size,
    format: file.format,
    compression: file.compression,
    estCost: stagedParts.has(file.key)
      ? staged.filter((p) => p.sourceKey === file.key).reduce((sum, p) => sum + p.estCost, 0)
      : file.estCost,
    method: file.estimate?.method ?? 'fallback',
    ...(stagedParts.has(file.key) ? { stagedParts: stagedParts.get(file.key)! } : {}),
  }));
  const manifestKey = await writeRunManifest(deps.store, config.name, request.runId, manifest);
  if (tracksSources(config, task)) await writeDeletedSources(deps.store, config.name, request.runId, missing);

  const run: RunState = {
    runId: request.runId,
    pipeline: config.name,
    trigger: request.trigger,
    startedAt: request.now.toISOString(),
    inputs: listedInputs(files.map((f) => f.key)),
    ...(task === 'fit' ? { task: 'fit' as const } : {}),
    status: 'running',
    finishedAt: null,
    totalUnits: units.length,
    doneUnits: 0,
    failedUnits: 0,
  };
  await deps.runs.createRun(run, units);
  // The lease is taken once the run exists (the sweeper's liveness check reads it) and
  // before any unit is sent, so no unit of the run works without capacity on the way.
  const endpointCapacity = pipelineCapacityOf(config);
  const capacity =
    endpointCapacity && deps.capacity && units.length > 0
      ? await acquireRunCapacity(
          deps.capacity,
          endpointCapacity,
          run.runId,
          runWorkOf(
            config,
            units.reduce((sum, unit) => sum + unit.estCost, 0),
          ),
          request.now,
        )
      : undefined;
  if (units.length > 0) await deps.queue.sendUnits(units);
  else await deps.queue.requestFinalize(run.runId);
  // Last: a plan retried after a failure above compares with the same earlier list.
  if (listsPrefix) await writePrefixSources(deps.store, config.name, request.prefix!, request.runId, listed);
  return {
    run,
    units,
    missing,
    inputCount: files.length,
    manifestKey,
    stats,
    ...(capacity === undefined ? {} : { capacity }),
  };
}
