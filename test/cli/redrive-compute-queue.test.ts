import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import type { RunState, WorkUnit } from '../../shared/domain/types.ts';
import { sluice } from '../support/cli.ts';
import { type LocalAws, STACK_QUEUES, stackQueues, startLocalAws } from '../support/local-deployment.ts';
import { aRun, aSummary, aUnit, someCounts } from '../support/run-fixtures.ts';

const TABLE = 'sluice-runs';

/** What plan records of the stack's split, per stack the run was planned in. */
const COMPUTE_IN_SPLIT_STACK = { workPool: 'compute', splitStack: true } as const;
const COMPUTE_ALONE = { workPool: 'compute', splitStack: false } as const;

/**
 * `sluice redrive --runs-table` in a stack whose pipelines split between two work functions
 * (issue 14): the units of a compute-pool pipeline go back to the compute queue, so the
 * worker sized for them takes them. Plan records the run's pool and the stack's split on the
 * run and the redrive goes by that record, whatever configs `--pipelines` holds; a run planned
 * before plan recorded it falls back to the split of the configs in `--pipelines` (here the
 * shipped folder: docs, credit-risk and generate-triage beside recommend).
 */
describe('sluice redrive (deployed) in a split stack', () => {
  let local: LocalAws;
  let runs: DynamoRunStore;
  let dir: string;
  let workUrl: string;
  let computeUrl: string;

  beforeAll(async () => {
    local = await startLocalAws({ runsTable: TABLE, queues: stackQueues({ split: true }) });
    workUrl = local.queueUrls[STACK_QUEUES.work]!;
    computeUrl = local.queueUrls[STACK_QUEUES.compute]!;
    runs = new DynamoRunStore({ doc: local.clients.doc, tableName: TABLE });
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-redrive-compute-'));
    // The CLI builds its clients from the usual AWS environment; here it points at the local servers.
    local.useAwsEnvironment();
  });
  afterAll(async () => {
    await local?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * A failed run of `pipeline` whose last two of three units failed. `planned` is what plan
   * recorded of the stack's split; none is a run planned before plan recorded it.
   */
  async function aFailedRun(
    pipeline: string,
    planned: Pick<RunState, 'workPool' | 'splitStack'> = {},
  ): Promise<{ runId: string; failed: WorkUnit[] }> {
    const run = aRun({ pipeline, totalUnits: 3, inputs: [`incoming/${pipeline}/a.jsonl`], ...planned });
    const units = [0, 1, 2].map((i) => aUnit(run.runId, i, { pipeline }));
    await runs.createRun(run, units);
    await runs.completeUnit(run.runId, 'u0000', {
      counts: someCounts(),
      actualCost: 1,
      outputKeys: [],
    });
    await runs.failUnit(run.runId, 'u0001', 'dead-lettered');
    await runs.failUnit(run.runId, 'u0002', 'dead-lettered');
    await runs.finishRun(run.runId, aSummary(run, { status: 'failed' }));
    return { runId: run.runId, failed: [units[1]!, units[2]!] };
  }

  /** Every message on a queue, received and deleted, so the next case finds the queue empty. */
  async function drain(queueUrl: string): Promise<WorkUnit[]> {
    const units: WorkUnit[] = [];
    for (;;) {
      const out = await local.clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      if (!out.Messages?.length) return units.sort((a, b) => a.unitId.localeCompare(b.unitId));
      units.push(...out.Messages.map((m) => JSON.parse(m.Body!) as WorkUnit));
      await local.clients.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: out.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
  }

  /** The deployed flags, with the configs of `pipelines` (default: the shipped folder, every pipeline). */
  const deployedWith = (pipelines: string, ...more: string[]) => [
    '--runs-table',
    TABLE,
    '--work-queue-url',
    workUrl,
    '--pipelines',
    pipelines,
    ...more,
  ];
  const deployed = (...more: string[]) => deployedWith('pipelines', ...more);

  /** A folder holding only the shipped configs named. */
  async function folderWith(name: string, ...pipelines: string[]): Promise<string> {
    const only = path.join(dir, name);
    await mkdir(only, { recursive: true });
    for (const p of pipelines) await copyFile(`pipelines/${p}.json`, path.join(only, `${p}.json`));
    return only;
  }

  describe('a run that records its pool', () => {
    it('sends a recommend run of a stack with recommend alone to the work queue, though the folder holds more configs', async () => {
      // The folder splits (docs beside recommend); the stack that planned the run did not.
      const { runId, failed } = await aFailedRun('recommend', COMPUTE_ALONE);

      const redriven = await sluice('redrive', runId, ...deployed('--json'));

      expect({ code: redriven.code, err: redriven.err }).toEqual({ code: 0, err: [] });
      expect(redriven.json()).toEqual({ runId, status: 'running', redriven: 2, unitIds: ['u0001', 'u0002'] });
      expect(await drain(workUrl)).toEqual(failed);
      expect(await drain(computeUrl)).toEqual([]);
    });

    it('does not use --compute-queue-url for a run the stack worked from the work queue, and says so', async () => {
      const { runId, failed } = await aFailedRun('recommend', COMPUTE_ALONE);

      const redriven = await sluice('redrive', runId, ...deployed('--compute-queue-url', computeUrl));

      expect(redriven.code).toBe(0);
      expect(redriven.err).toEqual([
        `run ${runId} was planned for the work queue: --compute-queue-url is not used`,
      ]);
      expect(redriven.out).toEqual([expect.stringContaining('2 units sent to the work queue')]);
      expect(await drain(workUrl)).toEqual(failed);
      expect(await drain(computeUrl)).toEqual([]);
    });

    it('sends a compute-pool run of a split stack to the compute queue, though the folder holds recommend alone', async () => {
      // The folder does not split: the local configs alone would send it to the work queue.
      const only = await folderWith('recorded-recommend-only', 'recommend');
      const { runId, failed } = await aFailedRun('recommend', COMPUTE_IN_SPLIT_STACK);

      const redriven = await sluice(
        'redrive',
        runId,
        ...deployedWith(only, '--compute-queue-url', computeUrl, '--json'),
      );

      expect({ code: redriven.code, err: redriven.err }).toEqual({ code: 0, err: [] });
      expect(redriven.json()).toEqual({
        runId,
        status: 'running',
        redriven: 2,
        unitIds: ['u0001', 'u0002'],
        queue: 'compute',
      });
      expect(await drain(computeUrl)).toEqual(failed);
      expect(await drain(workUrl)).toEqual([]);
    });

    it('needs no pipelines folder at all: the record says where the units go', async () => {
      const nowhere = path.join(dir, 'no-such-folder');
      const { runId, failed } = await aFailedRun('recommend', COMPUTE_IN_SPLIT_STACK);

      const redriven = await sluice(
        'redrive',
        runId,
        ...deployedWith(nowhere, '--compute-queue-url', computeUrl),
      );

      expect({ code: redriven.code, err: redriven.err }).toEqual({ code: 0, err: [] });
      expect(await drain(computeUrl)).toEqual(failed);
      expect(await drain(workUrl)).toEqual([]);
    });

    it('refuses a compute-queue run without --compute-queue-url in one line naming the stack output, before reopening it', async () => {
      const only = await folderWith('refused-recommend-only', 'recommend');
      const { runId } = await aFailedRun('recommend', COMPUTE_IN_SPLIT_STACK);

      const refused = await sluice('redrive', runId, ...deployedWith(only));

      expect(refused.code).toBe(2);
      expect(refused.err).toEqual([
        `sluice redrive: run ${runId} (pipeline recommend) was planned for the compute queue of a split stack: give --compute-queue-url URL (the stack's WorkComputeQueueUrl output)`,
      ]);
      expect(await runs.getRun(runId)).toMatchObject({ status: 'failed' });
      expect(await drain(workUrl)).toEqual([]);
      expect(await drain(computeUrl)).toEqual([]);
    });

    it('asks for both queues when a still-running compute-queue run is to be resumed', async () => {
      const only = await folderWith('resumed-recommend-only', 'recommend');
      const run = aRun({ pipeline: 'recommend', totalUnits: 1, ...COMPUTE_IN_SPLIT_STACK });
      await runs.createRun(run, [aUnit(run.runId, 0, { pipeline: 'recommend' })]);

      const refused = await sluice(
        'redrive',
        run.runId,
        ...deployedWith(only, '--compute-queue-url', computeUrl),
      );

      expect(refused.code).toBe(2);
      expect(refused.err).toEqual([
        expect.stringContaining(
          `sluice redrive ${run.runId} --resume --runs-table ${TABLE} --work-queue-url ... --compute-queue-url ...`,
        ),
      ]);
    });
  });

  describe('a run planned before runs recorded their pool', () => {
    const fellBack = (runId: string, queue: string, folder = 'pipelines') =>
      `run ${runId} was planned before runs recorded their work queue: the ${queue} queue, from the configs in ${folder}`;

    it('sends the failed units of a recommend run to the compute queue, none to the work queue', async () => {
      const { runId, failed } = await aFailedRun('recommend');

      const redriven = await sluice(
        'redrive',
        runId,
        ...deployed('--compute-queue-url', computeUrl, '--json'),
      );

      expect({ code: redriven.code, err: redriven.err }).toEqual({
        code: 0,
        err: [fellBack(runId, 'compute')],
      });
      expect(redriven.json()).toEqual({
        runId,
        status: 'running',
        redriven: 2,
        unitIds: ['u0001', 'u0002'],
        queue: 'compute',
      });
      expect(await drain(computeUrl)).toEqual(failed);
      expect(await drain(workUrl)).toEqual([]);
    });

    it('refuses a recommend run without --compute-queue-url in one line, before reopening it', async () => {
      const { runId } = await aFailedRun('recommend');

      const refused = await sluice('redrive', runId, ...deployed());

      expect(refused.code).toBe(2);
      expect(refused.err).toEqual([
        fellBack(runId, 'compute'),
        expect.stringMatching(
          /^sluice redrive: pipeline recommend works from the compute queue in a stack with .*docs.*: give --compute-queue-url URL \(the stack's WorkComputeQueueUrl output\), or --pipelines DIR with the configs the stack was deployed from$/,
        ),
      ]);
      expect(await runs.getRun(runId)).toMatchObject({ status: 'failed' });
      expect(await drain(workUrl)).toEqual([]);
    });

    it('sends an embed run to the work queue, saying the compute queue is not used', async () => {
      const { runId, failed } = await aFailedRun('docs');

      const redriven = await sluice('redrive', runId, ...deployed('--compute-queue-url', computeUrl));

      expect(redriven.code).toBe(0);
      expect(redriven.err).toEqual([
        fellBack(runId, 'work'),
        'pipeline docs works from the work queue (configs in pipelines): --compute-queue-url is not used',
      ]);
      expect(redriven.out).toEqual([expect.stringContaining('2 units sent to the work queue')]);
      expect(await drain(workUrl)).toEqual(failed);
      expect(await drain(computeUrl)).toEqual([]);
    });

    it('sends a recommend run to the work queue where the stack does not split (one work function)', async () => {
      const only = await folderWith('recommend-only', 'recommend');
      const { runId, failed } = await aFailedRun('recommend');

      const redriven = await sluice('redrive', runId, ...deployedWith(only));

      expect({ code: redriven.code, err: redriven.err }).toEqual({
        code: 0,
        err: [fellBack(runId, 'work', only)],
      });
      expect(await drain(workUrl)).toEqual(failed);
    });
  });

  it('says in one line when --compute-queue-url is given without what it goes with', async () => {
    const alone = await sluice('redrive', 'r-20260301T100000Z-ffffff', '--compute-queue-url', computeUrl);
    expect(alone).toMatchObject({ code: 2, err: [expect.stringContaining('need --runs-table')] });
    const noWork = await sluice(
      'redrive',
      'r-20260301T100000Z-ffffff',
      '--runs-table',
      TABLE,
      '--reset-only',
      '--compute-queue-url',
      computeUrl,
    );
    expect(noWork).toMatchObject({
      code: 2,
      err: [
        'sluice redrive: --compute-queue-url goes with --work-queue-url (a redrive that sends the units)',
      ],
    });
    const notUrl = await sluice(
      'redrive',
      'r-20260301T100000Z-ffffff',
      ...deployed('--compute-queue-url', 'q'),
    );
    expect(notUrl.err).toEqual([
      expect.stringContaining('--compute-queue-url must be the queue\'s https URL, got "q"'),
    ]);
  });
});
