import { setTimeout as delay } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type AwsClients, createAdapters } from '../../functions/config/adapters.ts';
import type { Environment } from '../../functions/config/environment.ts';
import { createDeadLetterHandler } from '../../functions/dead-letter.ts';
import { createFinalizeHandler } from '../../functions/finalize.ts';
import { createPlanHandler, type ScheduledRunResult } from '../../functions/plan.ts';
import { createWorkHandler } from '../../functions/work.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import { aLambdaContext, testObservability } from '../functions/factories.ts';
import { type LocalAws, startLocalAws } from '../support/local-deployment.ts';
import { expectEveryRecordOnce } from './support/check-run.ts';
import { type FaultEndpoint, startFaultEndpoint } from './support/fault-endpoint.ts';
import { mixedInputs, seededRandom } from './support/mixed-inputs.ts';
import { readTable } from './support/run-tables.ts';

const BUCKET = 'sluice-faults';
const TABLE = 'sluice-runs-faults';
const MAX_RECEIVE_COUNT = 3;
const PREFIX = 'datasets/faults/';
const PIPELINE = {
  name: 'faults',
  kind: 'embed',
  endpoint: { name: 'faults-embed', dimension: 16, maxRetries: 5, timeoutMs: 10_000 },
  chunking: { maxTokens: 32, overlapTokens: 4 },
  planning: { targetUnitTokens: 700 },
  workers: { maxConcurrency: 4, maxReceiveCount: MAX_RECEIVE_COUNT },
  incremental: { enabled: false },
};

/**
 * The deployed flow with faults, on the wire: S3 and SQS in fauxqs (the work queue has a
 * real redrive policy to its DLQ, and a 1 s visibility timeout), the runs table in
 * dynalite, the SageMaker runtime API of the local model server behind a proxy that
 * throttles or fails 10% of calls. One unit's worker crashes after writing its parts
 * once; another unit's worker is killed after writing its parts on every delivery, so
 * SQS dead-letters it, the dead-letter function marks it failed and the run fails; then
 * `sluice redrive --runs-table --work-queue-url` sends it again and the run succeeds.
 */
describe('fault injection on the wire (fauxqs, dynalite, local model server)', () => {
  let local: LocalAws;
  let endpoint: FaultEndpoint;
  let clients: AwsClients;
  let env: Environment;

  beforeAll(async () => {
    local = await startLocalAws({
      bucket: BUCKET,
      runsTable: TABLE,
      queues: {
        'sluice-work-dlq': { visibilityTimeoutSeconds: 1 },
        'sluice-work': {
          visibilityTimeoutSeconds: 1,
          deadLetter: { queue: 'sluice-work-dlq', maxReceiveCount: MAX_RECEIVE_COUNT },
        },
        'sluice-finalize': { visibilityTimeoutSeconds: 1 },
      },
      model: { backend: new HashEmbedder(16) },
    });
    endpoint = await startFaultEndpoint(local.model!.url);
    env = local.environment({
      workQueue: 'sluice-work',
      finalizeQueue: 'sluice-finalize',
      pipelines: [PIPELINE],
      sagemakerEndpointUrl: endpoint.url,
    });
    clients = local.handlerClients(env);
    // `sluice redrive --runs-table` builds its clients from the AWS environment.
    local.useAwsEnvironment();
  });

  afterAll(async () => {
    await endpoint?.close();
    await local?.stop();
  });

  it('puts every record once in results or rejects through crashes, 10% endpoint faults, a dead letter and a redrive', async () => {
    const inputs = mixedInputs(31, { prefix: PREFIX, splitRecords: 100 });
    for (const file of inputs.files)
      await clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: file.key, Body: file.body }));
    endpoint.configure({ faultRate: 0.1, random: seededRandom(31) });

    // Failed messages come back after 1 s (the deployed backoff starts at 30 s).
    const fast = {
      sleep: (ms: number) => delay(Math.min(ms, 5)),
      redelivery: { baseSeconds: 1, maxSeconds: 1 },
    };
    const adapters = createAdapters(env, clients, fast);
    const finalizeMoves = { count: 0 };
    const runs = countingFinishes(adapters.runs, finalizeMoves);
    const crashes = { afterWrite: undefined as string | undefined, killed: undefined as string | undefined };
    const store = crashingStore(adapters.store, crashes);
    const plan = createPlanHandler({ ...adapters, runs }, testObservability());
    const work = createWorkHandler(
      {
        ...adapters,
        store,
        runs: new Proxy(runs, {
          get(target, property, receiver) {
            // The killed unit's worker dies after writing its parts: nothing it does after that lands.
            if (property === 'completeUnit' || property === 'recordUnitError' || property === 'failUnit')
              return async (runId: string, unitId: string, ...rest: never[]) => {
                if (unitId === crashes.killed) throw new Error('worker killed (injected)');
                return (target[property] as (...args: unknown[]) => Promise<unknown>)(runId, unitId, ...rest);
              };
            const value = Reflect.get(target, property, receiver);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
      },
      testObservability(),
    );
    const finalize = createFinalizeHandler({ ...adapters, runs }, testObservability());
    const deadLetter = createDeadLetterHandler({ ...adapters, runs }, testObservability());

    const planned = (await plan(
      { kind: 'scheduled-run', pipeline: 'faults', prefix: PREFIX },
      aLambdaContext('sluice-plan'),
    )) as ScheduledRunResult;
    expect(planned.units).toBeGreaterThanOrEqual(3);
    const units = await runs.listUnits(planned.runId);
    crashes.afterWrite = units[0]!.unitId;
    crashes.killed = units.at(-1)!.unitId;

    const drive = async () => {
      for (;;) {
        const run = await runs.getRun(planned.runId);
        if (run?.status !== 'running') return run!;
        const moved =
          (await local.deliver('sluice-work', work)).delivered +
          (await local.deliver('sluice-work-dlq', deadLetter)).delivered +
          (await local.deliver('sluice-finalize', finalize)).delivered;
        // Failed messages come back after the 1 s visibility timeout.
        if (moved === 0) await delay(100);
      }
    };

    const failed = await drive();
    expect(failed.status).toBe('failed');
    const failedSummary = (await runs.getSummary(planned.runId))!;
    expect(failedSummary.failedUnits).toEqual([
      { unitId: crashes.killed, lastError: expect.stringContaining('worker stopped on its last delivery') },
    ]);
    // The dead unit's parts were taken back: the tables hold what the failed run counted.
    expect((await readTable(adapters.store, 'embeddings', 'faults', planned.runId)).length).toBe(
      failedSummary.counts.chunks,
    );
    expect(finalizeMoves.count).toBe(1);

    // The cause is fixed; the deployed redrive reopens the run and sends the failed unit again.
    crashes.killed = undefined;
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'redrive',
        planned.runId,
        '--runs-table',
        TABLE,
        '--work-queue-url',
        local.queueUrls['sluice-work']!,
        '--json',
      ],
      { out: (l) => out.push(l), err: (l) => err.push(l) },
    );
    expect({ code, err }).toEqual({ code: 0, err: [] });
    expect(JSON.parse(out.at(-1)!)).toMatchObject({
      redriven: 1,
      unitIds: [failedSummary.failedUnits[0]!.unitId],
    });

    const succeeded = await drive();
    expect(succeeded.status).toBe('succeeded');
    expect(finalizeMoves.count).toBe(2);
    expect(endpoint.counts.throttled + endpoint.counts.failed).toBeGreaterThan(0);
    await expectEveryRecordOnce({
      runId: planned.runId,
      pipeline: 'faults',
      store: adapters.store,
      inputs,
      summary: (await runs.getSummary(planned.runId))!,
      units: planned.units,
      label: 'wire',
    });
  });
});

/** S3 of workers that crash right after their first part write of one unit. */
function crashingStore(base: ObjectStore, crashes: { afterWrite: string | undefined }): ObjectStore {
  return {
    head: (key) => base.head(key),
    readRange: (key, start, end) => base.readRange(key, start, end),
    get: (key) => base.get(key),
    list: (prefix) => base.list(prefix),
    async put(key, body, contentType) {
      await base.put(key, body, contentType);
      const unit = crashes.afterWrite;
      if (unit !== undefined && key.startsWith('results/') && key.endsWith(`-${unit}.parquet`)) {
        crashes.afterWrite = undefined;
        throw new Error(`worker crashed after writing ${key} (injected)`);
      }
    },
  };
}

/** Counts the finishRun calls that moved the run. */
function countingFinishes(base: RunStore, moves: { count: number }): RunStore {
  return new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'finishRun')
        return async (...args: Parameters<RunStore['finishRun']>) => {
          const moved = await target.finishRun(...args);
          if (moved) moves.count += 1;
          return moved;
        };
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
