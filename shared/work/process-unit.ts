import type { EmbedPipelineConfig, PipelineConfig, ScorePipelineConfig } from '../config/pipeline-config.ts';
import { type UnitUsage, UsageMeter } from '../cost/unit-usage.ts';
import type { UnitCounts, WorkUnit } from '../domain/types.ts';
import { type UnitIdList, unitIdListKey } from '../duplicates/unit-id-list.ts';
import type { TokenCounter } from '../embedding/token-counter.ts';
import { describeError, EndpointWarming, ObjectChanged, TransitionConflict } from '../errors/errors.ts';
import { unitDocListKey, unitPartKey } from '../output/keys.ts';
import { embeddingsPartWriter, rejectsParquet, scoresPartWriter } from '../output/parquet-tables.ts';
import { StreamedPart } from '../output/streamed-part.ts';
import type { ChunkIndex } from '../ports/chunk-index.ts';
import type { EmbeddingEndpoint } from '../ports/embedding-endpoint.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunStore } from '../ports/run-store.ts';
import type { ScoringEndpoint } from '../ports/scoring-endpoint.ts';
import type { WorkQueue } from '../ports/work-queue.ts';
import { ModelUnusable } from '../scoring/errors.ts';
import { deadLetterUnit, requestFinalizeIfStranded, retractUnitParts } from './dead-letter-unit.ts';
import { embedUnit } from './embed-unit.ts';
import { fitPartialKey, fitUnit } from './fit-unit.ts';
import { scoreUnit, segmentPartialKey } from './score-unit.ts';
import { type Checkpoint, continuationIdOf, continuationOf, trimToContinuation } from './unit-records.ts';
import { nextWarmingStep, type WarmingPolicy, warmingPolicyOf, withoutWarming } from './warming.ts';

export interface ProcessUnitDeps {
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
}

export type UnitOutcome =
  | { readonly status: 'succeeded'; readonly counts: UnitCounts; readonly finishedRun: boolean }
  /** Another delivery already finished this unit; nothing was written or counted. */
  | { readonly status: 'duplicate' }
  /** The unit is not in the run store (a stale message for a deleted run). */
  | { readonly status: 'unknown' }
  /**
   * The endpoint had no capacity: the unit was sent back to the queue to run again after
   * `delaySeconds`; this delivery is done (its message is deleted, no receive count spent).
   */
  | { readonly status: 'deferred'; readonly delaySeconds: number; readonly warmingSince: number }
  /** The unit failed for good in this delivery (waited past the warm-up limit); the run counts it failed. */
  | { readonly status: 'failed'; readonly reason: string };

/** What a delivery of a unit is told besides the unit. */
export interface ProcessUnitOptions {
  readonly isLastAttempt: boolean;
  /**
   * Checkpoint time (ms since the epoch): past it the unit stops before its next record,
   * writes what it has, and hands the rest back as a new unit. @default none
   */
  readonly stopAfter?: number;
  /** @default Date.now */
  readonly now?: () => number;
  /** Memory the worker has (the Lambda context's), for the run's cost. @default `workers.memoryMiB` */
  readonly memoryMiB?: number;
  /** Overrides of the wait for a cold endpoint. @default warmingPolicyOf(config) */
  readonly warming?: Partial<WarmingPolicy>;
}

/**
 * (primary adapter) -> processUnit -> (object store, endpoint, run store, queue).
 * Output keys are deterministic, so a retried unit overwrites its own parts; the
 * completion is a conditional write, so a unit counts once; the one completion that
 * makes every unit terminal asks for finalize. On the last allowed attempt a failure
 * marks the unit failed (it is about to be dead-lettered) before the error is rethrown;
 * a worker that dies on that attempt throws nothing, and the dead-letter consumer
 * ({@link deadLetterUnit}) marks the unit failed instead. A completion that loses to
 * such a failure (a delivery that outlived its visibility timeout) takes its parts back.
 */
export async function processUnit(
  unmetered: ProcessUnitDeps,
  config: PipelineConfig,
  unit: WorkUnit,
  options: ProcessUnitOptions,
): Promise<UnitOutcome> {
  // Every port call the delivery makes is counted, for the run's cost (shared/cost).
  const startedAt = Date.now();
  const meter = new UsageMeter();
  const deps = meteredDeps(unmetered, meter);
  const state = await deps.runs.startUnit(unit.runId, unit.unitId);
  if (!state) return { status: 'unknown' };
  if (state.status === 'succeeded' || state.status === 'failed') {
    await requestFinalizeIfStranded(deps, unit.runId);
    return { status: 'duplicate' };
  }

  try {
    // An earlier attempt that checkpointed already handed the rest on: end where it did.
    const handedOn =
      options.stopAfter === undefined
        ? undefined
        : (await deps.runs.getUnit(unit.runId, continuationIdOf(unit.unitId)))?.descriptor;
    let work = unit;
    let checkpoint: Checkpoint | undefined;
    if (handedOn) {
      work = trimToContinuation(unit, handedOn);
      await retractUnitParts(deps.store, unit); // parts of the longer attempt would repeat records
    } else if (options.stopAfter !== undefined) {
      const { stopAfter } = options;
      const now = options.now ?? Date.now;
      checkpoint = { shouldStop: () => now() >= stopAfter };
    }
    const {
      counts: workCounts,
      outputKeys,
      actualCost,
    } = config.kind === 'embed'
      ? await runEmbedUnit(deps, config, work, checkpoint)
      : work.task === 'fit'
        ? await runFitUnit(deps, config, work, checkpoint)
        : await runScoreUnit(deps, config, work, checkpoint);
    // The times this unit waited for capacity before the delivery that did its work.
    const counts = { ...workCounts, warmingDeferrals: unit.warmingDeferrals ?? 0 };
    const continuation =
      handedOn ??
      (checkpoint?.stoppedAt ? withoutWarming(continuationOf(unit, checkpoint.stoppedAt)) : undefined);
    if (continuation) {
      // Counted in the run before this unit completes, so the run cannot finish without it.
      const stored = await deps.runs.addContinuation(unit.runId, continuation);
      if (stored.byteStart !== continuation.byteStart || stored.sourceKey !== continuation.sourceKey) {
        throw new TransitionConflict(
          `unit ${unit.unitId}: another delivery checkpointed it elsewhere; retrying to end there`,
        );
      }
      await deps.queue.sendUnits([stored]);
    }
    const usage: UnitUsage = {
      ...meter.usage,
      workerMs: Date.now() - startedAt,
      memoryMiB: options.memoryMiB ?? config.workers.memoryMiB,
      runStoreWrites: meter.usage.runStoreWrites + 1, // this completion
    };
    const completion = await unmetered.runs.completeUnit(unit.runId, unit.unitId, {
      counts: { ...counts, usage },
      actualCost,
      outputKeys,
    });
    if (!completion.recorded && completion.unitStatus === 'failed') {
      // The unit was dead-lettered while this delivery ran: the run counts none of its records.
      await retractUnitParts(deps.store, unit);
      if (completion.finishedRun) await deps.queue.requestFinalize(unit.runId);
      else await requestFinalizeIfStranded(deps, unit.runId);
      return { status: 'duplicate' };
    }
    if (!completion.recorded && !completion.finishedRun) {
      await requestFinalizeIfStranded(deps, unit.runId);
      return { status: 'duplicate' };
    }
    if (completion.finishedRun) await deps.queue.requestFinalize(unit.runId);
    return { status: 'succeeded', counts, finishedRun: completion.finishedRun };
  } catch (error) {
    if (error instanceof EndpointWarming && unmetered.queue.sendUnitLater)
      return waitForCapacity(
        deps,
        unmetered.queue.sendUnitLater.bind(unmetered.queue),
        config,
        unit,
        error,
        options,
      );
    const reason = describeError(error);
    await deps.runs.recordUnitError(unit.runId, unit.unitId, reason);
    // Marked failed, its parts taken back, finalize asked for if that ended the run. An
    // input changed since planning, or a model that cannot be used (in-worker scoring:
    // absent, too large, corrupt), fails every delivery alike: fail the unit at once.
    if (options.isLastAttempt || error instanceof ObjectChanged || error instanceof ModelUnusable)
      await deadLetterUnit(deps, unit, { reason });
    throw error;
  }
}

/**
 * The endpoint had no capacity (scaled to zero, or copies still starting): the unit goes
 * back to the queue as a new message with a growing delay, and this delivery ends as
 * handled, so waiting spends no receive count, no retry and no Lambda time, and nothing is
 * dead-lettered while capacity comes up. The parts this delivery streamed were aborted and
 * nothing was counted, so the next delivery starts the unit afresh, as any retry does. Past
 * `capacity.warmupLimitSeconds` the unit fails for good with a reason naming the endpoint,
 * which fails the run.
 */
async function waitForCapacity(
  deps: ProcessUnitDeps,
  sendUnitLater: (unit: WorkUnit, delaySeconds: number) => Promise<void>,
  config: PipelineConfig,
  unit: WorkUnit,
  error: EndpointWarming,
  options: ProcessUnitOptions,
): Promise<UnitOutcome> {
  const now = (options.now ?? Date.now)();
  const step = nextWarmingStep(unit, error.endpointName, now, warmingPolicyOf(config, options.warming));
  if (step.kind === 'give-up') {
    await deps.runs.recordUnitError(unit.runId, unit.unitId, step.reason);
    await deadLetterUnit(deps, unit, { reason: step.reason });
    return { status: 'failed', reason: step.reason };
  }
  await sendUnitLater(step.unit, step.delaySeconds);
  await deps.runs.recordUnitError(
    unit.runId,
    unit.unitId,
    `waiting for endpoint capacity (deferral ${step.unit.warmingDeferrals}, next try in ${step.delaySeconds} s): ${describeError(error)}`,
  );
  return { status: 'deferred', delaySeconds: step.delaySeconds, warmingSince: step.unit.warmingSince! };
}

/** The ports wrapped so that the delivery's calls are counted. */
function meteredDeps(deps: ProcessUnitDeps, meter: UsageMeter): ProcessUnitDeps {
  return {
    ...deps,
    store: meter.objectStore(deps.store),
    runs: meter.runStore(deps.runs),
    queue: meter.queue(deps.queue),
    endpoint: deps.endpoint && meter.embeddingEndpoint(deps.endpoint),
    scoringEndpoint: deps.scoringEndpoint && meter.scoringEndpoint(deps.scoringEndpoint),
  };
}

interface UnitWork {
  readonly counts: UnitCounts;
  readonly outputKeys: string[];
  readonly actualCost: number;
}

const PARQUET = 'application/vnd.apache.parquet';

/** Writes a unit's part of a table (deterministic key: a retry overwrites it) and names it. */
async function putPart(
  deps: ProcessUnitDeps,
  table: 'embeddings' | 'scores' | 'rejects',
  unit: WorkUnit,
  body: Uint8Array,
  outputKeys: string[],
): Promise<void> {
  const key = unitPartKey(table, unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(key, body, PARQUET);
  outputKeys.push(key);
}

/**
 * The ids the unit's part holds (always written, a retry overwrites it), which finalize
 * merges across units to apply the duplicate-id rule. Not a table part: not in outputKeys.
 */
async function putIdList(deps: ProcessUnitDeps, unit: WorkUnit, idList: UnitIdList): Promise<void> {
  await deps.store.put(
    unitIdListKey(unit.pipeline, unit.runId, unit.unitId),
    idList.serialize(unit.runId, unit.unitId),
    'application/x-ndjson',
  );
}

async function runEmbedUnit(
  deps: ProcessUnitDeps,
  config: EmbedPipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  if (!deps.endpoint)
    throw new Error(`pipeline ${config.name}: no embedding endpoint configured for this worker`);
  const embeddings = new StreamedPart(
    deps.store,
    unitPartKey('embeddings', unit.pipeline, unit.runId, unit.unitId),
    embeddingsPartWriter(unit.runId),
  );
  const { rejects, counts, docUpdates, docList, idList } = await embedUnit(
    { ...deps, endpoint: deps.endpoint },
    config,
    unit,
    embeddings,
    checkpoint,
  ).catch(async (error: unknown) => {
    await embeddings.abort();
    throw error;
  });
  const outputKeys: string[] = [];
  if (await embeddings.finish()) outputKeys.push(embeddings.key);
  await putIdList(deps, unit, idList);
  if (rejects.length > 0)
    await putPart(deps, 'rejects', unit, rejectsParquet(unit.runId, rejects), outputKeys);
  // What the parts hold, per source (always written, even empty, so finalize can tell a
  // unit with no document from one that left no list); a retry overwrites it, and a unit
  // that handed the rest on lists only what it read. Not a table part: not in outputKeys.
  if (docList) {
    await deps.store.put(
      unitDocListKey(unit.pipeline, unit.runId, unit.unitId),
      docList.serialize(unit.runId, unit.unitId),
      'text/tab-separated-values',
    );
  }
  // Only after the parts are written: a retry must compare its documents with the entries
  // of the run before, not with its own.
  if (deps.chunkIndex) {
    for (const docs of docUpdates.slices()) await deps.chunkIndex.record(unit.pipeline, [], docs);
  }
  return { counts, outputKeys, actualCost: counts.realTokens };
}

async function runFitUnit(
  deps: ProcessUnitDeps,
  config: ScorePipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  const { counts, partial } = await fitUnit(deps, config, unit, checkpoint);
  const key = fitPartialKey(unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(key, JSON.stringify(partial), 'application/json');
  return { counts, outputKeys: [key], actualCost: counts.records };
}

async function runScoreUnit(
  deps: ProcessUnitDeps,
  config: ScorePipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  if (!deps.scoringEndpoint)
    throw new Error(`pipeline ${config.name}: no scoring endpoint configured for this worker`);
  const scores = new StreamedPart(
    deps.store,
    unitPartKey('scores', unit.pipeline, unit.runId, unit.unitId),
    scoresPartWriter(unit.runId),
  );
  const { rejects, counts, segments, idList } = await scoreUnit(
    { store: deps.store, endpoint: deps.scoringEndpoint },
    config,
    unit,
    scores,
    checkpoint,
  ).catch(async (error: unknown) => {
    await scores.abort();
    throw error;
  });
  const outputKeys: string[] = [];
  if (await scores.finish()) outputKeys.push(scores.key);
  await putIdList(deps, unit, idList);
  if (rejects.length > 0)
    await putPart(deps, 'rejects', unit, rejectsParquet(unit.runId, rejects), outputKeys);
  const key = segmentPartialKey(unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(key, JSON.stringify(segments), 'application/json');
  outputKeys.push(key);
  return { counts, outputKeys, actualCost: counts.records * config.featureSpec.features.length };
}
