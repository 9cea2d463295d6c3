import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { SqsWorkQueue, type UnitQueue } from '../../shared/adapters/aws/sqs-work-queue.ts';
import { queueOfPipeline, workPoolsOf } from '../../shared/capacity/work-pools.ts';
import { listPipelineNames, loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { RunState, WorkUnit } from '../../shared/domain/types.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { restoreSummaryFiles } from '../../shared/finalize/finalize-run.ts';
import type { RunStore, StoredUnit } from '../../shared/ports/run-store.ts';
import { type LocalHome, openCheckedHome, openHome } from '../home.ts';
import { startLocalRuntime } from '../local-run.ts';
import { progressOutputFor } from '../progress/progress-output.ts';
import { ProgressReporter } from '../progress/progress-reporter.ts';
import { acquireRunLease } from '../run-lease.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';
import { defaultPipelinesDir } from './run.ts';

const isTerminal = (unit: StoredUnit) => unit.status === 'succeeded' || unit.status === 'failed';

/**
 * The units to deliver again and how the run got there: a failed run is reopened (its
 * failed units back to pending, once, whoever races); with `resume`, a run left running
 * by a process that is gone has its unfinished units delivered again (duplicates are
 * harmless: completion is conditional).
 */
async function unitsToRedrive(
  runs: RunStore,
  run: RunState,
  resume: boolean,
  where: string,
): Promise<WorkUnit[] | undefined> {
  const units = await runs.listUnits(run.runId, { withDescriptors: true });
  if (run.status === 'running') {
    const open = units.filter((u) => !isTerminal(u));
    if (!resume) {
      throw new UsageError(
        `run ${run.runId} is still running (${open.length} of ${units.length} units unfinished); if nothing works on it any more, deliver them again with: sluice redrive ${run.runId} --resume${where}`,
      );
    }
    return descriptorsOf(run.runId, open);
  }
  if (run.status !== 'failed') return undefined;
  // Check before reopening: a unit without its descriptor cannot be sent again.
  descriptorsOf(
    run.runId,
    units.filter((u) => u.status === 'failed'),
  );
  const reopening = await runs.reopenFailedRun(run.runId);
  if (!reopening.reopened)
    throw new UsageError(
      `run ${run.runId} was reopened by another redrive first (see: sluice status ${run.runId})`,
    );
  return descriptorsOf(run.runId, reopening.units);
}

function descriptorsOf(runId: string, units: readonly StoredUnit[]): WorkUnit[] {
  return units.map((unit) => {
    if (!unit.descriptor)
      throw new ConfigError(
        `run ${runId}: unit ${unit.unitId} has no stored descriptor (planned before descriptors were kept); plan its inputs again`,
      );
    return unit.descriptor;
  });
}

/**
 * Delivers the units through the same local runtime as `sluice run` (retries, visibility
 * timeout, dead letters marked failed), and finalizes the run again.
 */
async function redriveLocally(
  home: LocalHome,
  config: PipelineConfig,
  runId: string,
  units: readonly WorkUnit[],
  options: { endpointUrl: string | undefined; modelDir: string | undefined; pipelinesDir: string },
  progress: ProgressReporter,
): Promise<void> {
  const log = (line: string) => progress.log(line);
  const runtime = await startLocalRuntime({
    home,
    config,
    pipelinesDir: options.pipelinesDir,
    ...(options.endpointUrl === undefined ? {} : { endpointUrl: options.endpointUrl }),
    ...(options.modelDir === undefined ? {} : { modelDir: options.modelDir }),
    log,
    progress,
  });
  try {
    await runtime.queue.sendUnits(units);
    progress.queued(units);
    // A resumed run whose units are all terminal only lacks its finalize.
    if (units.length === 0) await runtime.queue.requestFinalize(runId);
    await runtime.queue.drain();
    for (const dead of runtime.queue.deadLetters) log(`dead-lettered again: ${dead.error}`);
  } finally {
    await runtime.close();
  }
}

/**
 * `sluice redrive RUN_ID`: runs only the failed units of a finished, failed run again
 * and finalizes it again (status and counts recomputed). Locally the units run here, as
 * in `sluice run`; with `--runs-table` and `--work-queue-url` the run is reopened in
 * DynamoDB and its failed units are sent to the deployed work queue (docs/runbook.md).
 */
export async function redriveCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseRedriveArgs(args);
  if (positionals.length !== 1) throw new UsageError('give exactly one RUN_ID');
  const runId = positionals[0]!;
  const table = deployedTableOf(values);
  if (table !== undefined)
    return redriveDeployed(
      runId,
      table,
      {
        workQueueUrl: values['work-queue-url'],
        computeQueueUrl: values['compute-queue-url'],
        pipelinesDir: values.pipelines ?? defaultPipelinesDir(),
      },
      { resume: values.resume, json: values.json },
      io,
    );
  const home = await openCheckedHome(values.home, 'read');
  const where = values.home ? ` --home ${values.home}` : '';
  const run = await home.runs.getRun(runId).catch(() => undefined);
  if (!run) throw new UsageError(`no run ${runId} in ${home.dir} (list runs with: sluice status${where})`);
  const pipelinesDir = values.pipelines ?? defaultPipelinesDir();
  const config = await loadPipelineConfig(pipelinesDir, run.pipeline);
  checkLocalOptions(values, config);
  const redrive = { runId, where, config, pipelinesDir, values, io };
  const outcome = await redriveUnderLease(redrive, home.dir, run);
  if (typeof outcome === 'number') return outcome;
  return reportRedriven(redrive, outcome.home, outcome.units);
}

function parseRedriveArgs(args: string[]) {
  return parseCommandArgs(args, {
    home: { type: 'string' },
    pipelines: { type: 'string' },
    'endpoint-url': { type: 'string' },
    'model-dir': { type: 'string' },
    resume: { type: 'boolean', default: false },
    'runs-table': { type: 'string' },
    'work-queue-url': { type: 'string' },
    'compute-queue-url': { type: 'string' },
    'reset-only': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
}

type RedriveFlags = ReturnType<typeof parseRedriveArgs>['values'];

/** What a local redrive of one run needs besides the run. */
interface LocalRedrive {
  readonly runId: string;
  /** ` --home DIR` when given, for the commands that messages suggest. */
  readonly where: string;
  readonly config: PipelineConfig;
  readonly pipelinesDir: string;
  readonly values: RedriveFlags;
  readonly io: CommandIo;
}

/** The runs table of a deployed redrive, its flags checked; undefined for a local one. */
function deployedTableOf(values: RedriveFlags): string | undefined {
  const table = values['runs-table'];
  const workQueueUrl = values['work-queue-url'];
  const resetOnly = values['reset-only'];
  const computeQueueUrl = values['compute-queue-url'];
  if (table === undefined && (workQueueUrl !== undefined || computeQueueUrl !== undefined || resetOnly))
    throw new UsageError(
      '--work-queue-url, --compute-queue-url and --reset-only need --runs-table (a deployed redrive)',
    );
  if (table === undefined) return undefined;
  if (computeQueueUrl !== undefined && workQueueUrl === undefined)
    throw new UsageError('--compute-queue-url goes with --work-queue-url (a redrive that sends the units)');
  if ((workQueueUrl === undefined) === !resetOnly)
    throw new UsageError(
      'a deployed redrive takes --runs-table with either --work-queue-url (send the failed units) or --reset-only (they come back from the DLQ)',
    );
  if (resetOnly && values.resume)
    throw new UsageError('--resume sends units again: give --work-queue-url instead of --reset-only');
  return table;
}

function checkLocalOptions(values: RedriveFlags, config: PipelineConfig): void {
  if (values['endpoint-url'] !== undefined && !/^https?:\/\//.test(values['endpoint-url']))
    throw new UsageError(`--endpoint-url must be an http(s) URL, got "${values['endpoint-url']}"`);
  if (values['model-dir'] !== undefined && values['endpoint-url'] !== undefined)
    throw new UsageError(
      'give --model-dir (a local ONNX model) or --endpoint-url (a running server), not both',
    );
  if (values['model-dir'] !== undefined && config.kind !== 'embed')
    throw new UsageError(`--model-dir is for embedding pipelines; ${config.name} scores with model.modelKey`);
}

/**
 * One process at a time works on a run (a resume while `sluice run` still goes is
 * refused): under the run's lease, the run is read again, its summary files restored,
 * and its units delivered. An exit code when there was nothing to redrive.
 */
async function redriveUnderLease(
  redrive: LocalRedrive,
  homeDir: string,
  run: RunState,
): Promise<number | { home: LocalHome; units: WorkUnit[] }> {
  const { runId, where, values, io } = redrive;
  await openCheckedHome(values.home, 'write');
  const lease = await acquireRunLease(homeDir, runId, ` (see: sluice status ${runId}${where})`);
  try {
    // Read the run again under the lease: it may have moved since the first read.
    const home = openHome(values.home);
    const current = (await home.runs.getRun(runId)) ?? run;
    // A run finalized by an older version could be marked done without its files.
    const restored = await restoreSummaryFiles(home, runId);
    if (restored.length > 0) io.err(`run ${runId}: restored ${restored.join(', ')} from its stored summary`);
    const units = await unitsToRedrive(home.runs, current, values.resume, where);
    if (units === undefined) {
      const summary = await home.runs.getSummary(runId);
      if (values.json) io.out(JSON.stringify({ ...summary, redriven: 0, restored }));
      else
        io.out(
          `run ${runId} ${current.status}: nothing to redrive${restored.length > 0 ? ' (summary files restored)' : ''}`,
        );
      return 0;
    }
    await deliverWithProgress(redrive, home, units);
    return { home, units };
  } finally {
    await lease.release();
  }
}

async function deliverWithProgress(redrive: LocalRedrive, home: LocalHome, units: WorkUnit[]): Promise<void> {
  const { runId, values, io } = redrive;
  io.err(`run ${runId}: redriving ${units.length} units (${units.map((u) => u.unitId).join(', ')})`);
  const progress = new ProgressReporter({ output: progressOutputFor(io, values.json) });
  progress.start(`redriving run ${runId}`);
  try {
    await redriveLocally(
      home,
      redrive.config,
      runId,
      units,
      {
        endpointUrl: values['endpoint-url'],
        modelDir: values['model-dir'],
        pipelinesDir: redrive.pipelinesDir,
      },
      progress,
    );
  } finally {
    progress.stop();
  }
}

/** The run as it ended: exit 0 when it succeeded, 1 when it failed again; an error when finalize did not run. */
async function reportRedriven(
  redrive: LocalRedrive,
  home: LocalHome,
  units: readonly WorkUnit[],
): Promise<number> {
  const { runId, where, values, io } = redrive;
  const summary = await home.runs.getSummary(runId);
  const after = await home.runs.getRun(runId);
  if (!summary || after?.status === 'running')
    throw new Error(`run ${runId} did not finish: finalize failed (see: sluice status ${runId}${where})`);
  const resultsDir = path.join(home.bucketDir, 'results');
  if (values.json) io.out(JSON.stringify({ ...summary, redriven: units.length, results: resultsDir }));
  else {
    const c = summary.counts;
    io.out(
      `run ${summary.runId} ${summary.status} after redriving ${units.length} units: ${c.records} records, ${c.rejected} rejected, ${c.failedUnits} of ${c.units} units failed`,
    );
  }
  return summary.status === 'succeeded' ? 0 : 1;
}

/** Where a deployed redrive may send units, and the configs that say which queue for older runs. */
interface DeployedQueues {
  readonly workQueueUrl: string | undefined;
  /** The compute queue of a stack whose pipelines split between two work functions (issue 14). */
  readonly computeQueueUrl: string | undefined;
  /** Pipeline configs (`--pipelines`, else the project's): the split, for runs that do not record it. */
  readonly pipelinesDir: string;
}

/**
 * The queue a run's units go back to: the one plan recorded on the run (its `workPool` in
 * a `splitStack`), a fact of the stack that planned it whatever configs this machine holds.
 * A run planned before runs recorded it falls back to the split of the configs in the
 * pipelines folder, and says so in one line. A compute-queue run needs
 * `--compute-queue-url` (refused in one line otherwise, before anything is reopened): the
 * work function would give its units the wrong memory size.
 */
async function redriveQueueOf(run: RunState, queues: DeployedQueues, io: CommandIo): Promise<UnitQueue> {
  const recorded = recordedQueueOf(run);
  if (recorded === undefined) return queueFromConfigs(run, queues, io);
  if (recorded === 'compute' && queues.computeQueueUrl === undefined)
    throw new UsageError(
      `run ${run.runId} (pipeline ${run.pipeline}) was planned for the compute queue of a split stack: give --compute-queue-url URL (the stack's WorkComputeQueueUrl output)`,
    );
  if (recorded === 'work' && queues.computeQueueUrl !== undefined)
    io.err(`run ${run.runId} was planned for the work queue: --compute-queue-url is not used`);
  return recorded;
}

/** The queue plan recorded on the run; undefined for a run planned before it did. */
function recordedQueueOf(run: RunState): UnitQueue | undefined {
  if (run.workPool === undefined || run.splitStack === undefined) return undefined;
  return run.splitStack && run.workPool === 'compute' ? 'compute' : 'work';
}

/**
 * The queue of an older run (no recorded pool), from how the configs in the pipelines folder
 * split (`workPoolsOf`): right when the folder holds the configs the stack was deployed from.
 */
async function queueFromConfigs(run: RunState, queues: DeployedQueues, io: CommandIo): Promise<UnitQueue> {
  const dir = queues.pipelinesDir;
  const configs = await Promise.all(
    (await listPipelineNames(dir)).map((name) => loadPipelineConfig(dir, name)),
  );
  const pools = workPoolsOf(configs);
  const queue = queueOfPipeline(pools, run.pipeline);
  io.err(
    `run ${run.runId} was planned before runs recorded their work queue: the ${queue} queue, from the configs in ${dir}`,
  );
  if (queue === 'compute' && queues.computeQueueUrl === undefined)
    throw new UsageError(
      `pipeline ${run.pipeline} works from the compute queue in a stack with ${pools.work.map((p) => p.name).join(', ')} (configs in ${dir}): give --compute-queue-url URL (the stack's WorkComputeQueueUrl output), or --pipelines DIR with the configs the stack was deployed from`,
    );
  if (queue === 'work' && queues.computeQueueUrl !== undefined)
    io.err(
      `pipeline ${run.pipeline} works from the work queue (configs in ${dir}): --compute-queue-url is not used`,
    );
  return queue;
}

/**
 * The deployed redrive: reopens the run in the runs table (conditional, once) and sends
 * the failed units' stored descriptors to the queue the run records (the compute queue for
 * a compute-pool run of a split stack, else the work queue), where the deployed workers
 * take them; finalize then runs as for any run. Without a work queue (`--reset-only`) only
 * the run is reopened, for the messages to come back from their DLQ with
 * StartMessageMoveTask. Credentials and region come from the usual AWS environment
 * (profile, `AWS_REGION`, `AWS_ENDPOINT_URL_*`).
 */
async function redriveDeployed(
  runId: string,
  tableName: string,
  queues: DeployedQueues,
  flags: { readonly resume: boolean; readonly json: boolean },
  io: CommandIo,
): Promise<number> {
  const { workQueueUrl, computeQueueUrl } = queues;
  const { resume, json } = flags;
  if (workQueueUrl !== undefined && !/^https?:\/\//.test(workQueueUrl))
    throw new UsageError(`--work-queue-url must be the queue's https URL, got "${workQueueUrl}"`);
  if (computeQueueUrl !== undefined && !/^https?:\/\//.test(computeQueueUrl))
    throw new UsageError(`--compute-queue-url must be the queue's https URL, got "${computeQueueUrl}"`);
  const dynamo = new DynamoDBClient({});
  const sqs = new SQSClient({});
  try {
    const runs = new DynamoRunStore({
      doc: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
      tableName,
    });
    const run = await runs.getRun(runId);
    if (!run) throw new UsageError(`no run ${runId} in table ${tableName}`);
    // Before reopening: a run reopened with nowhere to send its units would wait for nothing.
    const queue = workQueueUrl === undefined ? 'work' : await redriveQueueOf(run, queues, io);
    const units = await unitsToRedrive(
      runs,
      run,
      resume,
      ` --runs-table ${tableName} --work-queue-url ...${queue === 'compute' ? ' --compute-queue-url ...' : ''}`,
    );
    if (units === undefined) {
      if (json) io.out(JSON.stringify({ runId, status: run.status, redriven: 0 }));
      else io.out(`run ${runId} ${run.status}: nothing to redrive`);
      return 0;
    }
    const unitIds = units.map((u) => u.unitId);
    if (workQueueUrl === undefined) {
      if (json) io.out(JSON.stringify({ runId, status: 'running', reopened: units.length, unitIds }));
      else
        io.out(
          `run ${runId} reopened: ${units.length} units back to pending (${unitIds.join(', ')}); now move the work DLQ back (aws sqs start-message-move-task)`,
        );
      return 0;
    }
    if (units.length === 0) {
      io.err(
        `run ${runId} is running with every unit finished: its finalize request was lost; move the finalize DLQ back (docs/runbook.md)`,
      );
      return 1;
    }
    // Only units are sent: finalize is asked for by the unit that finishes the run.
    await new SqsWorkQueue({
      client: sqs,
      workQueueUrl,
      finalizeQueueUrl: workQueueUrl,
      // Every unit of the run goes where the run's pool works (checked above).
      ...(queue === 'compute' && computeQueueUrl !== undefined
        ? { computeQueue: { url: computeQueueUrl, route: () => queue } }
        : {}),
    }).sendUnits(units);
    if (json)
      io.out(
        JSON.stringify({
          runId,
          status: 'running',
          redriven: units.length,
          unitIds,
          ...(queue === 'compute' ? { queue } : {}),
        }),
      );
    else
      io.out(
        `run ${runId} reopened: ${units.length} units sent to the ${queue === 'compute' ? 'compute' : 'work'} queue (${unitIds.join(', ')}); follow it with the runs table or CloudWatch`,
      );
    return 0;
  } finally {
    dynamo.destroy();
    sqs.destroy();
  }
}
