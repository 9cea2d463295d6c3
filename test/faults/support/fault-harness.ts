import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { openHome } from '../../../cli/home.ts';
import {
  PipelineEndpointRegistry,
  type PipelineEndpoints,
  sageMakerClientSettingsFor,
} from '../../../shared/adapters/aws/pipeline-endpoints.ts';
import { LocalRunStore } from '../../../shared/adapters/local/local-run-store.ts';
import { LocalWorkQueue } from '../../../shared/adapters/local/local-work-queue.ts';
import { MemoryObjectStore } from '../../../shared/adapters/local/memory-object-store.ts';
import {
  type EmbedPipelineConfig,
  type PipelineConfig,
  parseEmbedPipelineConfig,
} from '../../../shared/config/pipeline-config.ts';
import type { RunSummary, WorkUnit } from '../../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../../shared/finalize/finalize-run.ts';
import type { TableName } from '../../../shared/output/keys.ts';
import { planRun } from '../../../shared/plan/plan-run.ts';
import type { ObjectStore } from '../../../shared/ports/object-store.ts';
import type { RunStore, UnitCompletion } from '../../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../../shared/ports/work-queue.ts';
import { deadLetterUnit } from '../../../shared/work/dead-letter-unit.ts';
import { type ProcessUnitDeps, processUnit } from '../../../shared/work/process-unit.ts';
import { DrivenVisibility } from './driven-visibility.ts';
import type { FaultEndpoint } from './fault-endpoint.ts';
import { type MixedInputs, mixedInputs, seededRandom } from './mixed-inputs.ts';
import { readTable } from './run-tables.ts';
import { SlowAnswers } from './slow-answers.ts';

/** What goes wrong in one seeded run. */
export interface FaultScenario {
  readonly seed: number;
  readonly store: 'memory' | 'fs';
  /** Units whose first write of a Parquet part throws before the write happens. */
  readonly crashBeforeWrite?: number;
  /** Units whose first write of a Parquet part happens, then the worker throws. */
  readonly crashAfterWrite?: number;
  /** Every unit message (and finalize request) is sent twice. */
  readonly duplicateDelivery?: boolean;
  /** The last two units to finish are held and complete at the same moment. */
  readonly lastTwoTogether?: boolean;
  /** Share of endpoint calls answered with a throttle or a 5xx. */
  readonly endpointFaultRate?: number;
  /**
   * The answers of the run's first {@link SLOW_CALLS} embedding calls come only once the
   * delivery that made the call has outlived its visibility timeout and its message has been
   * delivered again, so two deliveries of that unit run side by side.
   */
  readonly slowEndpoint?: boolean;
  /**
   * One unit's worker dies on every delivery right after writing its parts (no error is
   * reported: nothing after the write runs), so the unit is dead-lettered, the run fails,
   * and it is redriven once the cause is gone.
   */
  readonly dieEveryDelivery?: boolean;
  /** JSONL records of the file that is split into units. @default 90 */
  readonly splitRecords?: number;
  /**
   * Faults in the units of the run's later stages (a recommend run's similarity shards),
   * chosen when finalize first sends a stage's units, as the ones above are for the first
   * stage. A unit that dies on every delivery may be in one stage only.
   */
  readonly laterStage?: Pick<FaultScenario, 'crashBeforeWrite' | 'crashAfterWrite' | 'dieEveryDelivery'>;
  /**
   * The finalize that moves the run into its next stage dies around the move, its first
   * `times` attempts: `before-move` after the stage's merge wrote its files and the next
   * stage was planned, before the conditional move; `after-move` right after the move,
   * before the stage's units are stored; `before-send` after they are stored, before they
   * are sent. A retried finalize after the move resumes the stage instead of moving again,
   * so only `before-move` can die on every attempt (`times` at least the finalize messages
   * times the queue's maxReceiveCount): the finalize is dead-lettered and the run is left
   * running, to be resumed (`sluice redrive --resume`).
   */
  readonly stageMoveCrash?: {
    readonly at: 'before-move' | 'after-move' | 'before-send';
    readonly times: number;
  };
}

export interface FaultRunReport {
  readonly runId: string;
  readonly inputs: MixedInputs;
  readonly store: ObjectStore;
  readonly units: readonly WorkUnit[];
  /** Summary of the run's last finalize (after the redrive, when there was one). */
  readonly summary: RunSummary;
  /** Summary of the first finalize, when the run was redriven. */
  readonly failedSummary?: RunSummary;
  /** Tables as they were before the redrive (embeddings doc ids with chunk indexes, reject keys). */
  readonly tablesBeforeRedrive?: { readonly embeddings: number; readonly rejects: number };
  /** Rows of the job's result table (`embeddings`, `generations`, ...) before the redrive. */
  readonly resultRowsBeforeRedrive?: number;
  /** finishRun calls that moved the run: in its first finalization, and in the one after the redrive. */
  readonly finalizeMoves: number;
  readonly finalizeMovesAfterRedrive?: number;
  /** Completions that claimed the run's finish. */
  readonly finishClaims: number;
  readonly deliveries: number;
  readonly deadLetters: number;
  readonly injected: {
    readonly crashes: number;
    readonly heldTogether: number;
    readonly deaths: number;
    /** Finalize attempts killed around a stage move. */
    readonly stageMoveCrashes: number;
    /** Endpoint answers held past their delivery's visibility timeout, and how each came back. */
    readonly slowAnswers: SlowAnswers['counts'];
  };
  /** How the run was taken up again after its first drain: a redrive of its failed units, a resume of a run left running, or neither. */
  readonly redrive: 'none' | 'failed-units' | 'resume';
  /** Where the run's local home is (`bucket/`, `state/`) when its store is `fs`. */
  readonly dir: string;
  /** Removes the run's folder (the fs store and the run state). */
  cleanup(): Promise<void>;
}

export const FAULT_PIPELINE = 'faults';

/** Endpoint calls of a {@link FaultScenario.slowEndpoint} run whose answers outlive the visibility timeout. */
export const SLOW_CALLS = 2;

export function faultPipelineConfig(): EmbedPipelineConfig {
  return parseEmbedPipelineConfig({
    name: FAULT_PIPELINE,
    kind: 'embed',
    endpoint: { name: 'faults-embed', dimension: 16, maxRetries: 5, timeoutMs: 10_000, concurrency: 4 },
    chunking: { maxTokens: 32, overlapTokens: 4 },
    batching: { maxBatchTokens: 1024, maxBatchSize: 16, sortWindow: 64 },
    planning: { targetUnitTokens: 700 },
    workers: { maxConcurrency: 4, maxReceiveCount: 5 },
    incremental: { enabled: false },
    // The inputs mix in bad lines on purpose; these runs judge accounting, not the reject share.
    run: { toleratedRejectPercent: 100 },
  });
}

/**
 * What a fault run runs: the pipeline, the table its records land in, and its seeded
 * inputs. @default the embed pipeline over {@link mixedInputs}
 */
export interface FaultJob {
  /** A fresh config object per run, as each run of the CLI parses its own. */
  config(): PipelineConfig;
  readonly resultTable: TableName;
  inputs(seed: number, options: { prefix: string; splitRecords?: number }): MixedInputs;
}

export const EMBED_FAULT_JOB: FaultJob = {
  config: faultPipelineConfig,
  resultTable: 'embeddings',
  inputs: mixedInputs,
};

export interface FaultRunOptions {
  /** @default {@link EMBED_FAULT_JOB} */
  readonly job?: FaultJob;
  /** Runs over this store (and its earlier runs' results and caches) instead of a fresh one. */
  readonly store?: ObjectStore;
  /** These inputs instead of the job's seeded ones (a re-run of the same drop). */
  readonly inputs?: MixedInputs;
  /**
   * Takes the run up again after its first drain instead of the harness' own redrive: a
   * failed run's failed units, or a run left running (`resume`). With the `fs` store the
   * run's folder is a local home, so this can be the real `sluice redrive RUN_ID --home DIR`.
   * @default the harness redelivers through its own faulty queue
   */
  readonly redrive?: (run: {
    readonly dir: string;
    readonly runId: string;
    readonly resume: boolean;
  }) => Promise<void>;
}

/**
 * The unit a worker's write belongs to: a unit's Parquet part of any table
 * (`results/<table>/.../<runId>-<unitId>.parquet`), or a staging file a unit hands on to its
 * stage's merge (`runs/<pipeline>/<runId>/.../<unitId>.bin`, a recommend ingest unit's
 * interactions).
 */
function unitOfWrite(key: string, runId: string): string | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  if (key.startsWith('results/') && name.startsWith(`${runId}-`) && name.endsWith('.parquet'))
    return name.slice(runId.length + 1, -'.parquet'.length);
  if (key.startsWith('runs/') && key.includes(`/${runId}/`) && name.endsWith('.bin'))
    return name.slice(0, -4);
  return undefined;
}

/** The object store of workers that crash around their first write of a part for some units. */
function crashingStore(
  base: ObjectStore,
  runId: string,
  plan: { before: Set<string>; after: Set<string> },
  counters: { crashes: number },
): ObjectStore {
  return {
    head: (key, options) => base.head(key, options),
    readRange: (key, start, end, options) => base.readRange(key, start, end, options),
    get: (key) => base.get(key),
    list: (prefix) => base.list(prefix),
    async put(key, body, contentType) {
      const unitId = unitOfWrite(key, runId);
      if (unitId !== undefined && plan.before.delete(unitId)) {
        counters.crashes += 1;
        throw new Error(`worker crashed before writing ${key} (injected)`);
      }
      await base.put(key, body, contentType);
      if (unitId !== undefined && plan.after.delete(unitId)) {
        counters.crashes += 1;
        throw new Error(`worker crashed after writing ${key} (injected)`);
      }
    },
  };
}

/**
 * Counts the finalize moves and finish claims; optionally holds the completions of the
 * last two units until both have arrived, then lets them go at the same moment. Which
 * units are the last two is decided as each completion arrives, without an `await` in
 * between, so two completions arriving together cannot both slip past.
 */
function observedRuns(base: RunStore, options: { lastTwoTogether: boolean }) {
  const stats = { finalizeMoves: 0, finishClaims: 0, heldTogether: 0 };
  const passed = new Set<string>();
  let held: { unitId: string; release: () => void }[] = [];
  let released = false;
  let totalUnits = 0;
  const hold = (unitId: string): Promise<void> | undefined => {
    if (!options.lastTwoTogether || released || totalUnits < 2 || passed.has(unitId)) return undefined;
    const remaining = totalUnits - passed.size;
    if (remaining > 2) {
      passed.add(unitId);
      return undefined;
    }
    return new Promise<void>((release) => {
      held.push({ unitId, release });
      if (new Set(held.map((h) => h.unitId)).size >= remaining) {
        released = true;
        stats.heldTogether = held.length;
        for (const h of held) h.release();
        held = [];
      }
    });
  };
  const store: RunStore = new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'completeUnit') {
        return async (...args: Parameters<RunStore['completeUnit']>): Promise<UnitCompletion> => {
          const [runId, unitId] = args;
          if (totalUnits === 0) totalUnits = (await target.getRun(runId))?.totalUnits ?? 0;
          await hold(unitId);
          const completion = await target.completeUnit(...args);
          if (completion.finishedRun) stats.finishClaims += 1;
          return completion;
        };
      }
      if (property === 'failUnit') {
        return async (...args: Parameters<RunStore['failUnit']>): Promise<UnitCompletion> => {
          const completion = await target.failUnit(...args);
          if (completion.finishedRun) stats.finishClaims += 1;
          return completion;
        };
      }
      if (property === 'finishRun') {
        return async (...args: Parameters<RunStore['finishRun']>): Promise<boolean> => {
          const moved = await target.finishRun(...args);
          if (moved) stats.finalizeMoves += 1;
          return moved;
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, stats };
}

/** The run store of a worker killed right after its parts are written: nothing it does after that lands. */
function killedAfterWrite(base: RunStore): RunStore {
  const killed = async (): Promise<never> => {
    throw new Error('worker killed (out of memory, injected)');
  };
  return new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'completeUnit' || property === 'recordUnitError' || property === 'failUnit')
        return killed;
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * The run store of a finalize that dies around the move into the next stage, its first
 * `fault.times` attempts (see {@link FaultScenario.stageMoveCrash}).
 */
function crashingStageMoves(
  base: RunStore,
  fault: NonNullable<FaultScenario['stageMoveCrash']> | undefined,
  counters: { stageMoveCrashes: number; fixed: boolean },
): RunStore {
  if (!fault) return base;
  const crash = (when: string): never => {
    counters.stageMoveCrashes += 1;
    throw new Error(`finalize died ${when} (injected)`);
  };
  const armed = () => !counters.fixed && counters.stageMoveCrashes < fault.times;
  return new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'startStage')
        return async (...args: Parameters<RunStore['startStage']>): Promise<boolean> => {
          if (fault.at === 'before-move' && armed()) crash('before the move into the next stage');
          const moved = await target.startStage(...args);
          if (moved && fault.at === 'after-move' && armed())
            crash('right after the move into the next stage');
          return moved;
        };
      if (property === 'addStageUnits')
        return async (...args: Parameters<RunStore['addStageUnits']>): Promise<void> => {
          await target.addStageUnits(...args);
          if (fault.at === 'before-send' && armed()) crash("after storing the next stage's units");
        };
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The ports of the run's folder: a local home (`bucket/`, `state/runs/`) for the `fs` store. */
function portsOf(scenario: FaultScenario, dir: string, store: ObjectStore | undefined) {
  if (scenario.store === 'fs') {
    const home = openHome(dir);
    return { store: store ?? home.store, runs: home.runs };
  }
  return { store: store ?? new MemoryObjectStore(4096), runs: new LocalRunStore(path.join(dir, 'state')) };
}

/** Which units of a stage get the unit faults: a seeded shuffle, the first ones crash, the last one dies. */
function chooseUnitFaults(
  unitIds: readonly string[],
  faults: Pick<FaultScenario, 'crashBeforeWrite' | 'crashAfterWrite' | 'dieEveryDelivery'>,
  random: () => number,
  plan: { before: Set<string>; after: Set<string> },
): string | undefined {
  const shuffled = unitIds
    .map((unitId) => ({ unitId, order: random() }))
    .sort((a, b) => a.order - b.order)
    .map((u) => u.unitId);
  const before = faults.crashBeforeWrite ?? 0;
  const after = faults.crashAfterWrite ?? 0;
  for (const unitId of shuffled.slice(0, before)) plan.before.add(unitId);
  for (const unitId of shuffled.slice(before, before + after)) plan.after.add(unitId);
  return faults.dieEveryDelivery ? shuffled.at(-1) : undefined;
}

/**
 * One seeded run of the local runtime (planRun, LocalWorkQueue with the deployed retry,
 * visibility and dead-letter rules, processUnit, finalizeRun, deadLetterUnit as the DLQ
 * consumer) over mixed inputs, with the scenario's faults injected through wrapping ports
 * and a proxy endpoint in front of the local model server (none for a kind that calls no
 * model). Visibility timeouts run on a clock the harness drives ({@link DrivenVisibility}):
 * no delivery outlives its timeout because the machine is slow, and the slow endpoint's
 * deliveries outlive theirs every time. A run that failed (a unit that dies on every delivery) is redriven once
 * the cause is gone; one left running (its finalize dead-lettered) is resumed.
 */
export async function runWithFaults(
  scenario: FaultScenario,
  endpoint: FaultEndpoint | undefined,
  options: FaultRunOptions = {},
): Promise<FaultRunReport> {
  const random = seededRandom(scenario.seed * 7919);
  const job = options.job ?? EMBED_FAULT_JOB;
  const config = job.config();
  if (scenario.dieEveryDelivery && scenario.laterStage?.dieEveryDelivery)
    throw new Error('a unit dies on every delivery in one stage only');
  const dir = await mkdtemp(path.join(tmpdir(), `sluice-faults-${scenario.seed}-`));
  let sagemaker: SageMakerRuntimeClient | undefined;
  try {
    const ports = portsOf(scenario, dir, options.store);
    const { store } = ports;
    const inputs =
      options.inputs ??
      job.inputs(scenario.seed, {
        prefix: `incoming/${config.name}/`,
        ...(scenario.splitRecords === undefined ? {} : { splitRecords: scenario.splitRecords }),
      });
    for (const file of inputs.files) await store.put(file.key, file.body);
    const observed = observedRuns(ports.runs, { lastTwoTogether: scenario.lastTwoTogether ?? false });
    const runs = observed.store;
    const visibility = new DrivenVisibility();
    const slow = new SlowAnswers(scenario.slowEndpoint ? SLOW_CALLS : 0, visibility);
    let endpoints: PipelineEndpoints = {};
    if (endpoint) {
      endpoint.configure({
        faultRate: scenario.endpointFaultRate ?? 0,
        random: seededRandom(scenario.seed * 104_729),
      });
      sagemaker = new SageMakerRuntimeClient({
        endpoint: endpoint.url,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        ...sageMakerClientSettingsFor([config]),
      });
      endpoints = new PipelineEndpointRegistry(sagemaker, {
        // Backoff that keeps the suite fast: the retry rules are the same, the waits are short.
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 5))),
      }).endpointsFor(config);
      if (endpoints.endpoint) endpoints = { ...endpoints, endpoint: slow.around(endpoints.endpoint) };
    }
    if (scenario.slowEndpoint && !endpoints.endpoint)
      throw new Error('a slow endpoint needs a job that embeds through the fault endpoint');

    const runId = `r-20260301T1000${String(scenario.seed % 100).padStart(2, '0')}Z-f${scenario.seed.toString(16).padStart(5, '0')}`;
    const crashPlan = { before: new Set<string>(), after: new Set<string>() };
    const counters = { crashes: 0, deaths: 0, stageMoveCrashes: 0, fixed: false };
    const workerStore = crashingStore(store, runId, crashPlan, counters);
    const finalizeRuns = crashingStageMoves(runs, scenario.stageMoveCrash, counters);
    let doomed: string | undefined;
    /** Whether a unit was chosen to die on every delivery: only then is a failed run redriven. */
    let doomedAny = false;
    let deliveries = 0;
    const deps: Omit<ProcessUnitDeps, 'queue'> = {
      store: workerStore,
      runs,
      tokenCounter: new EstimatingTokenCounter(),
      ...endpoints,
    };
    const pipelines = new Map([[config.name, config]]);
    const queue: LocalWorkQueue = new LocalWorkQueue({
      maxReceiveCount: config.workers.maxReceiveCount,
      concurrency: config.workers.maxConcurrency,
      visibilityTimer: visibility.timer,
      onUnit: async (unit, delivery) => {
        deliveries += 1;
        visibility.delivered(unit, delivery);
        const killed = unit.unitId === doomed;
        if (killed) counters.deaths += 1;
        await slow.within(delivery, () =>
          processUnit(
            { ...deps, runs: killed ? killedAfterWrite(runs) : runs, queue: sender },
            config,
            unit,
            delivery,
          ),
        );
      },
      onFinalize: async (id) => {
        await finalizeRun({ store, runs: finalizeRuns, queue: sender, pipelines }, id, new Date());
      },
      onDeadLetter: async (letter) => {
        if (!('unitId' in letter.body)) return;
        visibility.letterOf(letter.body);
        await deadLetterUnit({ store, runs, queue: sender }, letter.body, {
          receiveCount: letter.receiveCount,
        });
      },
    });
    // Units of the first stage; a later stage's get their faults when finalize first sends them.
    const firstStage = new Set<string>();
    const laterStages = new Set<string>();
    const withLaterFaults = (units: readonly WorkUnit[]): void => {
      const fresh = units.filter((u) => !firstStage.has(u.unitId) && !laterStages.has(u.stage ?? ''));
      if (fresh.length === 0 || !scenario.laterStage) return;
      const stage = fresh[0]!.stage ?? '';
      laterStages.add(stage);
      const ids = fresh.filter((u) => (u.stage ?? '') === stage).map((u) => u.unitId);
      doomed = chooseUnitFaults(ids, scenario.laterStage, random, crashPlan) ?? doomed;
      if (doomed !== undefined) doomedAny = true;
    };
    // What planning and workers send through: every message twice when duplicates are
    // injected, and each message its own copy of the unit, as over SQS (DrivenVisibility
    // tells messages apart by it).
    const sender: WorkQueue = {
      sendUnits: async (units) => {
        withLaterFaults(units);
        const messages = scenario.duplicateDelivery ? [...units, ...units] : units;
        await queue.sendUnits(messages.map((unit) => ({ ...unit })));
      },
      requestFinalize: async (id) => {
        await queue.requestFinalize(id);
        if (scenario.duplicateDelivery) await queue.requestFinalize(id);
      },
      sendUnitLater: (unit, delaySeconds) => queue.sendUnitLater({ ...unit }, delaySeconds),
    };

    // Plan without sending, to choose the units that crash, then send as planning does.
    const held: WorkUnit[] = [];
    const { units } = await planRun(
      {
        store,
        runs,
        queue: {
          sendUnits: async (u) => {
            held.push(...u);
          },
          requestFinalize: (id) => sender.requestFinalize(id),
        },
      },
      config,
      {
        runId,
        trigger: 'local',
        keys: inputs.files.map((f) => f.key),
        now: new Date('2026-03-01T10:00:00Z'),
      },
    );
    for (const unit of units) firstStage.add(unit.unitId);
    doomed = chooseUnitFaults(
      units.map((u) => u.unitId),
      scenario,
      random,
      crashPlan,
    );
    doomedAny = doomed !== undefined;
    await sender.sendUnits(held);
    await queue.drain();

    let failedSummary: RunSummary | undefined;
    let tablesBeforeRedrive: FaultRunReport['tablesBeforeRedrive'];
    let resultRowsBeforeRedrive: number | undefined;
    let redrive: FaultRunReport['redrive'] = 'none';
    const firstMoves = observed.stats.finalizeMoves;
    // Only the faults the scenario asked for are taken up again: any other failed or stuck
    // run is reported as it is, for the test to see.
    const afterDrain = await runs.getRun(runId);
    if (afterDrain?.status === 'failed' && doomedAny) {
      redrive = 'failed-units';
      failedSummary = await runs.getSummary(runId);
      tablesBeforeRedrive = await countRows(store, config.name, runId);
      resultRowsBeforeRedrive = (await readTable(store, job.resultTable, config.name, runId)).length;
    } else if (afterDrain?.status === 'running' && scenario.stageMoveCrash) redrive = 'resume';
    if (redrive !== 'none') {
      // The cause is fixed: no unit dies any more, and a finalize that died on every attempt no longer does.
      doomed = undefined;
      if (redrive === 'resume') counters.fixed = true;
      if (options.redrive) await options.redrive({ dir, runId, resume: redrive === 'resume' });
      else await redriveInHarness(runs, sender, runId);
      await queue.drain();
    }
    // A redrive by another process (the CLI) wrote through its own run store: read it afresh.
    const summary = await (options.redrive ? portsOf(scenario, dir, store).runs : runs).getSummary(runId);
    if (!summary) throw new Error(`run ${runId} did not finish`);
    return {
      runId,
      inputs,
      store,
      units,
      summary,
      ...(failedSummary === undefined ? {} : { failedSummary }),
      ...(tablesBeforeRedrive === undefined ? {} : { tablesBeforeRedrive }),
      ...(resultRowsBeforeRedrive === undefined ? {} : { resultRowsBeforeRedrive }),
      finalizeMoves: failedSummary ? firstMoves : observed.stats.finalizeMoves,
      ...(failedSummary ? { finalizeMovesAfterRedrive: observed.stats.finalizeMoves - firstMoves } : {}),
      finishClaims: observed.stats.finishClaims,
      deliveries,
      deadLetters: queue.deadLetters.length,
      injected: {
        crashes: counters.crashes,
        heldTogether: observed.stats.heldTogether,
        deaths: counters.deaths,
        stageMoveCrashes: counters.stageMoveCrashes,
        slowAnswers: { ...slow.counts },
      },
      redrive,
      dir,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  } finally {
    sagemaker?.destroy();
  }
}

/**
 * What `sluice redrive` does, through the harness' queue (and its faults): a failed run is
 * reopened once and its failed units delivered again; a run left running has its open
 * units delivered again, or, with none open, its finalize asked for.
 */
async function redriveInHarness(runs: RunStore, queue: WorkQueue, runId: string): Promise<void> {
  const run = await runs.getRun(runId);
  if (run?.status === 'failed') {
    const reopening = await runs.reopenFailedRun(runId);
    if (!reopening.reopened) throw new Error(`run ${runId} was not reopened`);
    await queue.sendUnits(reopening.units.map((u) => u.descriptor!));
    return;
  }
  const open = (await runs.listUnits(runId, { withDescriptors: true })).filter(
    (u) => u.status !== 'succeeded' && u.status !== 'failed',
  );
  if (open.length > 0) await queue.sendUnits(open.map((u) => u.descriptor!));
  else await queue.requestFinalize(runId);
}

/** Rows of the run's embeddings and rejects parts, as they are now. */
async function countRows(store: ObjectStore, pipeline: string, runId: string) {
  return {
    embeddings: (await readTable(store, 'embeddings', pipeline, runId)).length,
    rejects: (await readTable(store, 'rejects', pipeline, runId)).length,
  };
}
