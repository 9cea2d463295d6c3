import { copiesOnDemand } from '../capacity/copies.ts';
import { pipelineCapacityOf } from '../capacity/names.ts';
import { type CapacityDemandDeps, demandRunCapacity } from '../capacity/on-demand.ts';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import { type UnitUsage, UsageMeter } from '../cost/unit-usage.ts';
import type { UnitCounts, WorkUnit } from '../domain/types.ts';
import { describeError, EndpointWarming, ObjectChanged, TransitionConflict } from '../errors/errors.ts';
import { ObjectStorePromptCache } from '../jobs/generate/prompt-cache.ts';
import type { UnitWork, UnitWorkDeps } from '../jobs/job-kind.ts';
import { jobKindOf } from '../jobs/registry.ts';
import { stageOfUnit } from '../jobs/run-stages.ts';
import { ModelUnusable } from '../scoring/errors.ts';
import { deadLetterUnit, requestFinalizeIfStranded, retractUnitParts } from './dead-letter-unit.ts';
import { type Checkpoint, continuationIdOf, continuationOf, trimToContinuation } from './unit-records.ts';
import { nextWarmingStep, type WarmingPolicy, warmingPolicyOf, withoutWarming } from './warming.ts';

/** The worker's ports (shared/jobs UnitWorkDeps): store, run store, queue, the model, the chunk index. */
export type ProcessUnitDeps = UnitWorkDeps & {
  /**
   * Where the copies of an incremental embed run are raised on demand (docs/capacity.md,
   * "Copies on demand"): a delivery marks the run's lease needed before its first call to
   * the endpoint. Without it nothing is marked (plan raised the copies).
   */
  readonly capacityDemand?: CapacityDemandDeps;
};

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
  const deps = meteredDeps(demandingCapacity(unmetered, config, unit, options), meter);
  const ended = await startDelivery(deps, unit);
  if (ended) return ended;
  try {
    const plan = await resumePlanOf(deps, unit, options);
    const work = await stageOfUnit(jobKindOf(config), unit).workUnit(
      deps,
      config,
      plan.work,
      plan.checkpoint,
    );
    // The times this unit waited for capacity before the delivery that did its work.
    const counts = { ...work.counts, warmingDeferrals: unit.warmingDeferrals ?? 0 };
    const continuation =
      plan.handedOn ??
      (plan.checkpoint?.stoppedAt
        ? withoutWarming(continuationOf(unit, plan.checkpoint.stoppedAt))
        : undefined);
    if (continuation) await handOnRest(deps, unit, continuation);
    const usage = deliveryUsage(meter, startedAt, options.memoryMiB ?? config.workers.memoryMiB);
    return await completeDelivery(deps, unmetered.runs, unit, { ...work, counts }, usage);
  } catch (error) {
    if (error instanceof EndpointWarming && unmetered.queue.sendUnitLater)
      return waitForCapacity(
        deps,
        unmetered.queue.sendUnitLater.bind(unmetered.queue),
        config,
        // Served earlier in this delivery: capacity came and went, so the wait starts afresh
        // instead of counting from the unit's first cold answer (it would give up at once).
        meter.endpointServed ? withoutWarming(unit) : unit,
        error,
        options,
      );
    await failDelivery(deps, unit, error, options.isLastAttempt);
    throw error;
  }
}

/**
 * Counts the delivery (attempts + 1). Returns how the delivery ends when there is nothing
 * to do: the unit is unknown (a stale message), or already terminal (a duplicate, which
 * asks for finalize again if the run looks stranded).
 */
export async function startDelivery(deps: ProcessUnitDeps, unit: WorkUnit): Promise<UnitOutcome | undefined> {
  const state = await deps.runs.startUnit(unit.runId, unit.unitId);
  if (!state) return { status: 'unknown' };
  if (state.status === 'succeeded' || state.status === 'failed') {
    // A delivery that was still running when the unit was dead-lettered may have written its parts after they were taken back.
    if (state.status === 'failed') await retractUnitParts(deps.store, unit);
    await requestFinalizeIfStranded(deps, unit.runId);
    return { status: 'duplicate' };
  }
  return undefined;
}

/** What this delivery reads: the whole unit, or what an earlier attempt left before handing the rest on. */
export interface ResumePlan {
  readonly work: WorkUnit;
  /** Set when the delivery may stop at `stopAfter` and hand the rest on. */
  readonly checkpoint?: Checkpoint;
  /** The continuation an earlier attempt of this unit already stored. */
  readonly handedOn?: WorkUnit;
}

/**
 * An earlier attempt that checkpointed already handed the rest on: this one ends where it
 * did (its longer parts are taken back, they would repeat records). Otherwise, with a
 * checkpoint time, the delivery may stop before its next record past it.
 */
export async function resumePlanOf(
  deps: ProcessUnitDeps,
  unit: WorkUnit,
  options: Pick<ProcessUnitOptions, 'stopAfter' | 'now'>,
): Promise<ResumePlan> {
  const { stopAfter } = options;
  if (stopAfter === undefined) return { work: unit };
  const handedOn = (await deps.runs.getUnit(unit.runId, continuationIdOf(unit.unitId)))?.descriptor;
  if (handedOn) {
    await retractUnitParts(deps.store, unit);
    return { work: trimToContinuation(unit, handedOn), handedOn };
  }
  const now = options.now ?? Date.now;
  return { work: unit, checkpoint: { shouldStop: () => now() >= stopAfter } };
}

/**
 * Stores the unit that reads the rest and sends it. Counted in the run before this unit
 * completes, so the run cannot finish without it.
 *
 * @throws TransitionConflict when another delivery checkpointed the unit elsewhere (the retry ends there)
 */
export async function handOnRest(
  deps: ProcessUnitDeps,
  unit: WorkUnit,
  continuation: WorkUnit,
): Promise<void> {
  const stored = await deps.runs.addContinuation(unit.runId, continuation);
  if (stored.byteStart !== continuation.byteStart || stored.sourceKey !== continuation.sourceKey) {
    throw new TransitionConflict(
      `unit ${unit.unitId}: another delivery checkpointed it elsewhere; retrying to end there`,
    );
  }
  await deps.queue.sendUnits([stored]);
}

/** What the delivery used, for the run's cost: its port calls, its time, its memory, and the completion to come. */
export function deliveryUsage(meter: UsageMeter, startedAt: number, memoryMiB: number): UnitUsage {
  return {
    ...meter.usage,
    workerMs: Date.now() - startedAt,
    memoryMiB,
    runStoreWrites: meter.usage.runStoreWrites + 1, // the completion
  };
}

/**
 * Marks the unit succeeded (conditional: counted once) and asks for finalize when that
 * made every unit terminal. A completion that lost to a dead-lettered failure (a delivery
 * that outlived its visibility timeout) takes its parts back: the run counts none of its
 * records. The completion itself is not metered (its write is in `usage` already).
 */
export async function completeDelivery(
  deps: ProcessUnitDeps,
  unmeteredRuns: ProcessUnitDeps['runs'],
  unit: WorkUnit,
  work: UnitWork,
  usage: UnitUsage,
): Promise<UnitOutcome> {
  const completion = await unmeteredRuns.completeUnit(unit.runId, unit.unitId, {
    counts: { ...work.counts, usage },
    actualCost: work.actualCost,
    outputKeys: work.outputKeys,
  });
  if (!completion.recorded && completion.unitStatus === 'failed') {
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
  return { status: 'succeeded', counts: work.counts, finishedRun: completion.finishedRun };
}

/**
 * Records the attempt's error. On the last allowed attempt the unit is marked failed (its
 * parts taken back, finalize asked for if that ended the run). An input changed since
 * planning, or a model that cannot be used (in-worker scoring: absent, too large,
 * corrupt), fails every delivery alike: the unit fails at once.
 */
export async function failDelivery(
  deps: ProcessUnitDeps,
  unit: WorkUnit,
  error: unknown,
  isLastAttempt: boolean,
): Promise<void> {
  const reason = describeError(error);
  await deps.runs.recordUnitError(unit.runId, unit.unitId, reason);
  if (isLastAttempt || error instanceof ObjectChanged || error instanceof ModelUnusable)
    await deadLetterUnit(deps, unit, { reason });
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

/** Whether this worker asks for the copies of `config`'s runs (an incremental embed run, `capacityDemand` given). */
function onDemand(deps: ProcessUnitDeps, config: PipelineConfig): boolean {
  return (
    deps.capacityDemand !== undefined && copiesOnDemand(config) && pipelineCapacityOf(config) !== undefined
  );
}

/**
 * The embedding endpoint of an on-demand run, asking for the run's copies before the
 * delivery's first call (`demandRunCapacity`: one conditional write, awaited once per
 * delivery by every call). A unit whose chunks are all carried forward calls the endpoint
 * never, so a run that embeds nothing never raises the copies. The call that then meets no
 * copies waits on the queue as any ("warming").
 */
function demandingCapacity(
  deps: ProcessUnitDeps,
  config: PipelineConfig,
  unit: WorkUnit,
  options: Pick<ProcessUnitOptions, 'now'>,
): ProcessUnitDeps {
  const { endpoint, capacityDemand } = deps;
  const capacity = pipelineCapacityOf(config);
  if (!onDemand(deps, config) || endpoint === undefined || !capacityDemand || !capacity) return deps;
  let demanded: Promise<unknown> | undefined;
  return {
    ...deps,
    endpoint: {
      async embed(inputs, stats) {
        demanded ??= demandRunCapacity(
          capacityDemand,
          capacity,
          unit.runId,
          new Date((options.now ?? Date.now)()),
        );
        await demanded;
        return endpoint.embed(inputs, stats);
      },
    },
  };
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
    chatEndpoint: deps.chatEndpoint && meter.chatEndpoint(deps.chatEndpoint),
    // Priced as the deployed DynamoDB cache bills it, whichever cache the worker has (local: the bucket's).
    promptCache: meter.promptCache(deps.promptCache ?? new ObjectStorePromptCache(deps.store)),
    chunkIndex: deps.chunkIndex && meter.chunkIndex(deps.chunkIndex),
  };
}
