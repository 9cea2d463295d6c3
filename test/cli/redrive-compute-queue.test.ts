import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { sluice } from '../support/cli.ts';
import { type LocalAws, STACK_QUEUES, stackQueues, startLocalAws } from '../support/local-deployment.ts';
import { aRun, aSummary, aUnit, someCounts } from '../support/run-fixtures.ts';

const TABLE = 'sluice-runs';

/**
 * `sluice redrive --runs-table` in a stack whose pipelines split between two work functions
 * (issue 14): the units of a compute-pool pipeline go back to the compute queue, so the
 * worker sized for them takes them. The split comes from the configs in `--pipelines`
 * (the shipped folder: docs, credit-risk and generate-triage beside recommend).
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

  /** A failed run of `pipeline` whose last two of three units failed. */
  async function aFailedRun(pipeline: string): Promise<{ runId: string; failed: WorkUnit[] }> {
    const run = aRun({ pipeline, totalUnits: 3, inputs: [`incoming/${pipeline}/a.jsonl`] });
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

  const deployed = (...more: string[]) => [
    '--runs-table',
    TABLE,
    '--work-queue-url',
    workUrl,
    '--pipelines',
    'pipelines',
    ...more,
  ];

  it('sends the failed units of a recommend run to the compute queue, none to the work queue', async () => {
    const { runId, failed } = await aFailedRun('recommend');

    const redriven = await sluice('redrive', runId, ...deployed('--compute-queue-url', computeUrl, '--json'));

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

  it('refuses a recommend run without --compute-queue-url in one line, before reopening it', async () => {
    const { runId } = await aFailedRun('recommend');

    const refused = await sluice('redrive', runId, ...deployed());

    expect(refused.code).toBe(2);
    expect(refused.err).toEqual([
      expect.stringMatching(
        /^sluice redrive: pipeline recommend works from the compute queue in a stack with .*docs.*: give --compute-queue-url URL/,
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
      'pipeline docs works from the work queue (configs in pipelines): --compute-queue-url is not used',
    ]);
    expect(redriven.out).toEqual([expect.stringContaining('2 units sent to the work queue')]);
    expect(await drain(workUrl)).toEqual(failed);
    expect(await drain(computeUrl)).toEqual([]);
  });

  it('sends a recommend run to the work queue where the stack does not split (one work function)', async () => {
    const only = path.join(dir, 'recommend-only');
    await mkdir(only, { recursive: true });
    await copyFile('pipelines/recommend.json', path.join(only, 'recommend.json'));
    const { runId, failed } = await aFailedRun('recommend');

    const redriven = await sluice(
      'redrive',
      runId,
      '--runs-table',
      TABLE,
      '--work-queue-url',
      workUrl,
      '--pipelines',
      only,
    );

    expect({ code: redriven.code, err: redriven.err }).toEqual({ code: 0, err: [] });
    expect(await drain(workUrl)).toEqual(failed);
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
