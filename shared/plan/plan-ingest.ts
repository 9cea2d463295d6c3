import { pipelineCapacityOf } from '../capacity/names.ts';
import {
  acquireRunCapacity,
  acquireRunWorkers,
  type CapacityAcquired,
  onDemandOf,
  runWorkOf,
} from '../capacity/run-capacity.ts';
import type { PipelineConfig } from '../config/pipeline-config.ts';
import { ConfigError } from '../errors/errors.ts';
import { tracksSources } from '../incremental/deleted-sources.ts';
import { newRunId, pipelineOfIncomingKey } from '../output/keys.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';
import { type PlanRunDeps, type PlanRunResult, planRun, takesWorkersLease } from './plan-run.ts';
import { type ResumedRun, resumeRun, scheduledRunId } from './scheduled-run.ts';

/**
 * The rules of ingest: what an upload or deletion notice, or a schedule tick, asks to plan.
 * The plan handler parses the messages and reports; these decide. `sluice run` needs none
 * of them: it stages files it was given (no notices, buckets or event names) and the
 * folder's vanished files are deleted just before planning, so none can exist again; what
 * a deletion means for a pipeline is planRun's own rule, shared by both.
 */
export interface IngestRules {
  /** The bucket the object store reads; notices about any other bucket are skipped. */
  readonly bucket: string;
  readonly pipelines: ReadonlyMap<string, PipelineConfig>;
}

/** One object of an S3 notification, its key decoded. */
export interface NotifiedObject {
  readonly bucket: string;
  readonly key: string;
  /** `ObjectCreated:Put`, `ObjectRemoved:Delete`, ... */
  readonly eventName: string;
}

/** Where a notified object goes: into a pipeline's run (read, or looked up as a removal), or skipped with a reason. */
export type ObjectRoute =
  | { readonly pipeline: string; readonly removal: boolean }
  | { readonly skip: string };

/**
 * Routes one notified object. Skipped, with the reason to log, since no retry could plan
 * them: events other than creations and deletions, other buckets, keys outside
 * `incoming/<configured pipeline>/`, and deletions for pipelines that keep no source
 * manifests (only incremental embedding counts a deleted source's documents as removed).
 */
export function routeNotifiedObject(rules: IngestRules, object: NotifiedObject): ObjectRoute {
  const removal = object.eventName.startsWith('ObjectRemoved:');
  if (!removal && !object.eventName.startsWith('ObjectCreated:'))
    return { skip: `${object.eventName} is neither an object creation nor a deletion` };
  if (object.bucket !== rules.bucket)
    return { skip: `bucket ${object.bucket} is not the Sluice bucket ${rules.bucket}` };
  const pipeline = pipelineOfIncomingKey(object.key);
  if (pipeline === undefined) return { skip: 'not under incoming/<pipeline>/' };
  if (!rules.pipelines.has(pipeline))
    return {
      skip: `pipeline ${pipeline} is not configured (known: ${[...rules.pipelines.keys()].join(', ')})`,
    };
  if (removal && !tracksSources(rules.pipelines.get(pipeline)))
    return {
      skip: `pipeline ${pipeline} keeps no source manifests (it is not incremental embedding): nothing to remove`,
    };
  return { pipeline, removal };
}

/** The keys of one batch of notices, by pipeline: every object of a pipeline in the batch makes one run. */
export class IngestedKeys {
  private readonly created = new Map<string, Set<string>>();
  private readonly removed = new Map<string, Set<string>>();

  add(pipeline: string, key: string, removal: boolean): void {
    const byPipeline = removal ? this.removed : this.created;
    const keys = byPipeline.get(pipeline) ?? new Set<string>();
    byPipeline.set(pipeline, keys.add(key));
  }

  /** The keys to read and the keys reported deleted, for one pipeline's run. */
  of(pipeline: string): { readonly keys: string[]; readonly removedKeys: string[] } {
    return {
      keys: [...(this.created.get(pipeline) ?? [])],
      removedKeys: [...(this.removed.get(pipeline) ?? [])],
    };
  }
}

/** A pipeline's notices planned as a run, or deletion notices alone for keys that all exist again. */
export type IngestOutcome = { readonly planned: PlanRunResult } | { readonly existsAgain: true };

const HEAD_CONCURRENCY = 16;

/**
 * (primary adapter) -> planNotifiedKeys -> planRun: one run over a pipeline's notified
 * keys. Deletion notices alone, for keys that all exist again (uploaded since), plan
 * nothing: the upload's own notice starts the run that reads them.
 */
export async function planNotifiedKeys(
  deps: PlanRunDeps,
  config: PipelineConfig,
  request: { readonly keys: readonly string[]; readonly removedKeys: readonly string[] },
  now: () => Date,
): Promise<IngestOutcome> {
  if (request.keys.length === 0 && (await allExist(deps.store, request.removedKeys)))
    return { existsAgain: true };
  const started = now();
  return {
    planned: await planRun(deps, config, {
      trigger: 's3',
      keys: request.keys,
      removedKeys: request.removedKeys,
      runId: newRunId(started),
      now: started,
    }),
  };
}

async function allExist(store: ObjectStore, keys: readonly string[]): Promise<boolean> {
  const heads = await mapWithConcurrency(keys, HEAD_CONCURRENCY, (key) => store.head(key));
  return heads.every((head) => head !== undefined);
}

/** One tick of a pipeline's schedule (or a run asked for by hand, without `scheduledTime`). */
export interface ScheduledRunRequest {
  readonly pipeline: string;
  readonly prefix: string;
  readonly scheduledTime?: string | undefined;
}

/**
 * A scheduled run planned, or taken up when an earlier attempt of the same tick had
 * recorded it (with the lease that attempt may have died before taking).
 */
export type ScheduledOutcome =
  | { readonly planned: PlanRunResult }
  | { readonly resumed: ResumedRun; readonly capacity?: CapacityAcquired };

/**
 * (primary adapter) -> planScheduledRun -> planRun | resumeRun: one run per tick. The run
 * id is derived from the tick, so a retry (a redelivered message, a second send by the
 * scheduler) finds the run an earlier attempt recorded and takes it up instead of planning
 * another. Without `scheduledTime` every request is a new run.
 *
 * @throws ConfigError when the pipeline is not configured
 */
export async function planScheduledRun(
  deps: PlanRunDeps,
  pipelines: ReadonlyMap<string, PipelineConfig>,
  request: ScheduledRunRequest,
  now: () => Date,
): Promise<ScheduledOutcome> {
  const config = pipelines.get(request.pipeline);
  if (config === undefined) {
    throw new ConfigError(
      `scheduled run: pipeline ${request.pipeline} is not configured (known: ${[...pipelines.keys()].join(', ')})`,
    );
  }
  const runId =
    request.scheduledTime === undefined
      ? undefined
      : scheduledRunId({
          pipeline: config.name,
          prefix: request.prefix,
          scheduledTime: request.scheduledTime,
        });
  const recorded = runId === undefined ? undefined : await deps.runs.getRun(runId);
  if (recorded !== undefined) {
    const capacity = await resumeCapacity(deps, config, recorded, now);
    const resumed = await resumeRun(deps, recorded);
    return capacity === undefined ? { resumed } : { resumed, capacity };
  }
  const started = now();
  return {
    planned: await planRun(deps, config, {
      trigger: 'schedule',
      prefix: request.prefix,
      runId: runId ?? newRunId(started),
      now: started,
    }),
  };
}

/**
 * A run taken up: the attempt that recorded it may have died before taking the run's
 * lease (taking it again returns the one it took).
 */
async function resumeCapacity(
  deps: PlanRunDeps,
  config: PipelineConfig,
  run: ResumedRun['run'],
  now: () => Date,
): Promise<CapacityAcquired | undefined> {
  const capacity = pipelineCapacityOf(config);
  if (!deps.capacity || run.status !== 'running' || run.totalUnits === 0) return undefined;
  if (!capacity)
    return takesWorkersLease(deps, config)
      ? acquireRunWorkers(deps.capacity, config, run.runId, now())
      : undefined;
  const units = await deps.runs.listUnits(run.runId);
  const estimated = units.reduce((sum, unit) => sum + unit.estCost, 0);
  return acquireRunCapacity(
    deps.capacity,
    capacity,
    run.runId,
    runWorkOf(config, estimated),
    now(),
    onDemandOf(deps.capacity, config),
  );
}
