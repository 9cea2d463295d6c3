import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
} from '../support/local-aws.ts';
import { aRunWithUnits, aSummary } from '../support/run-fixtures.ts';

/**
 * The run record keeps the work pool plan planned the run for and whether the stack was split
 * (issue 14), so `sluice redrive --runs-table` sends units back to the queue the stack took
 * them from, without the configs it was deployed from. The fields are additive: a run stored
 * before them reads without them, and readers that do not know them are unaffected.
 */

let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let tables = 0;
let dir: string;

beforeAll(async () => {
  server = await startDynalite();
  client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  doc = DynamoDBDocumentClient.from(client);
  dir = await mkdtemp(path.join(tmpdir(), 'sluice-run-pool-'));
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function freshTable(): Promise<string> {
  tables += 1;
  const tableName = `sluice-runs-pool-${tables}`;
  await createRunsTable(client, tableName);
  return tableName;
}

const stores: [string, () => Promise<RunStore>][] = [
  ['DynamoRunStore on dynalite', async () => new DynamoRunStore({ doc, tableName: await freshTable() })],
  ['LocalRunStore', async () => new LocalRunStore(await mkdtemp(path.join(dir, 'runs-')))],
];

const noQueue: WorkQueue = { sendUnits: async () => {}, requestFinalize: async () => {} };

/** The shipped configs by name: docs (embed, endpoint pool) and recommend (compute pool). */
async function shipped(...names: string[]): Promise<Map<string, PipelineConfig>> {
  const configs = await Promise.all(names.map((name) => loadPipelineConfig('pipelines', name)));
  return new Map(configs.map((c) => [c.name, c]));
}

describe.each(stores)('%s: the work pool on the run record', (_name, open) => {
  it('records what plan planned the run for: the pipeline pool and whether the stack splits', async () => {
    const runs = await open();
    const store = new MemoryObjectStore();
    await store.put('incoming/docs/a.jsonl', '{"id":"d1","text":"one"}\n{"id":"d2","text":"two"}\n');
    await store.put('incoming/recommend/a.jsonl', '{"user_id":"u1","item_id":"i1"}\n');
    const stack = await shipped('docs', 'recommend');
    const docs = stack.get('docs')!;
    const recommend = stack.get('recommend')!;
    const plan = (config: PipelineConfig, runId: string, pipelines?: ReadonlyMap<string, PipelineConfig>) =>
      planRun({ store, runs, queue: noQueue, ...(pipelines && { pipelines }) }, config, {
        runId,
        trigger: 's3',
        keys: [`incoming/${config.name}/a.jsonl`],
        now: new Date('2026-12-07T20:00:00Z'),
      });

    await plan(recommend, 'r-20261207T200000Z-000001', stack);
    await plan(docs, 'r-20261207T200000Z-000002', stack);
    await plan(recommend, 'r-20261207T200000Z-000003', await shipped('recommend'));
    await plan(recommend, 'r-20261207T200000Z-000004');

    const recorded = async (runId: string) => {
      const run = await runs.getRun(runId);
      return { workPool: run?.workPool, splitStack: run?.splitStack };
    };
    expect(await recorded('r-20261207T200000Z-000001')).toEqual({ workPool: 'compute', splitStack: true });
    expect(await recorded('r-20261207T200000Z-000002')).toEqual({ workPool: 'endpoint', splitStack: true });
    // One work function: the stack serves recommend alone, or plan was given no stack (local runs).
    expect(await recorded('r-20261207T200000Z-000003')).toEqual({ workPool: 'compute', splitStack: false });
    expect(await recorded('r-20261207T200000Z-000004')).toEqual({ workPool: 'compute', splitStack: false });
  });
});

describe('DynamoRunStore on dynalite: the work pool on the run item', () => {
  it('keeps the pool and the split through creation, finish and a redrive reopening', async () => {
    const runs = new DynamoRunStore({ doc, tableName: await freshTable() });
    const { run, units } = aRunWithUnits(1, { pipeline: 'recommend', workPool: 'compute', splitStack: true });
    await runs.createRun(run, units);
    expect(await runs.getRun(run.runId)).toEqual(run);

    await runs.failUnit(run.runId, 'u0000', 'dead-lettered');
    await runs.finishRun(run.runId, aSummary(run, { status: 'failed' }));
    expect(await runs.reopenFailedRun(run.runId)).toMatchObject({ reopened: true });

    expect(await runs.getRun(run.runId)).toMatchObject({
      status: 'running',
      workPool: 'compute',
      splitStack: true,
    });
  });

  it('writes two plain attributes, and reads none from an older item or from values that are not a pool', async () => {
    const tableName = await freshTable();
    const runs = new DynamoRunStore({ doc, tableName });
    const { run, units } = aRunWithUnits(1, { pipeline: 'recommend', workPool: 'compute', splitStack: true });
    await runs.createRun(run, units);
    const key = { pk: `RUN#${run.runId}`, sk: 'RUN' };
    const item = (await doc.send(new GetCommand({ TableName: tableName, Key: key }))).Item!;
    expect(item).toMatchObject({
      runId: run.runId,
      pipeline: 'recommend',
      workPool: 'compute',
      splitStack: true,
    });

    // The item as plan wrote it before the pool was recorded.
    const { workPool: _pool, splitStack: _split, ...older } = item;
    await doc.send(new PutCommand({ TableName: tableName, Item: older }));
    const read = await runs.getRun(run.runId);
    expect(read).toMatchObject({ runId: run.runId, pipeline: 'recommend', status: 'running' });
    expect(read).not.toHaveProperty('workPool');
    expect(read).not.toHaveProperty('splitStack');

    await doc.send(
      new PutCommand({ TableName: tableName, Item: { ...older, workPool: 'gpu', splitStack: 'yes' } }),
    );
    const odd = await runs.getRun(run.runId);
    expect(odd).not.toHaveProperty('workPool');
    expect(odd).not.toHaveProperty('splitStack');
  });
});
