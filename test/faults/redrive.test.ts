import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { LocalWorkQueue } from '../../shared/adapters/local/local-work-queue.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import { BreakableEmbedder } from '../support/breakable-embedder.ts';
import { sluice } from '../support/cli.ts';
import { type LocalAws, startLocalAws } from '../support/local-deployment.ts';
import { aRunWithUnits, aSummary, someCounts } from '../support/run-fixtures.ts';

const PIPELINE = {
  name: 'flaky',
  kind: 'embed',
  endpoint: { name: 'flaky-embed', dimension: 16, maxRetries: 0, timeoutMs: 10_000 },
  chunking: { maxTokens: 32, overlapTokens: 4 },
  planning: { targetUnitTokens: 300 },
  workers: { maxConcurrency: 2, maxReceiveCount: 2 },
};

describe('sluice redrive (local)', () => {
  let work: string;
  let home: string;
  let pipelines: string;
  let backend: BreakableEmbedder;
  let server: ModelServer;
  const docs = Array.from({ length: 30 }, (_, i) => ({
    id: `d${String(i).padStart(2, '0')}`,
    text: `${i === 21 ? 'POISON ' : ''}document ${i} about queues and units and retries`.repeat(1 + (i % 3)),
  }));

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-redrive-'));
    home = path.join(work, 'home');
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    await writeFile(path.join(pipelines, 'flaky.json'), JSON.stringify(PIPELINE));
    const lines = docs.map((d) => JSON.stringify(d));
    lines.splice(10, 0, '{"id":"half a record');
    await writeFile(path.join(work, 'docs.jsonl'), `${lines.join('\n')}\n`);
    // Fails every batch holding a POISON document until the cause is "fixed".
    backend = new BreakableEmbedder(16, {
      broken: true,
      fails: (inputs) => inputs.some((text) => text.includes('POISON')),
    });
    server = await startModelServer({ backend });
  });
  afterAll(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  const common = () => ['--home', home, '--pipelines', pipelines, '--endpoint-url', server.url];
  const query = async (sql: string) => (await sluice('query', sql, '--home', home, '--json')).json();

  it('runs only the failed units again, after the cause is fixed, and finishes the run once more', async () => {
    const failed = await sluice(
      'run',
      path.join(work, 'docs.jsonl'),
      '--pipeline',
      'flaky',
      ...common(),
      '--json',
    );
    expect(failed.code).toBe(1);
    const first = failed.json();
    expect(first.status).toBe('failed');
    expect(first.counts.units).toBeGreaterThan(2);
    expect(first.failedUnits).toEqual([
      { unitId: expect.any(String), lastError: expect.stringContaining('GPU fell over') },
    ]);
    const runId: string = first.runId;
    // The source was not read whole: its document manifest is left for the redrive.
    expect(first.sources).toMatchObject({
      compared: 0,
      skipped: 1,
      skippedSources: [
        { reason: expect.stringMatching(/unit \S+ failed: this run did not read the whole source/) },
      ],
    });

    // A dead-lettered unit's records are in neither table; the others are all there.
    const before = await query(`select distinct doc_id from embeddings where run_id = '${runId}' order by 1`);
    expect(before.map((r: { doc_id: string }) => r.doc_id)).not.toContain('d21');
    const status = (await sluice('status', runId, '--home', home, '--json')).json();
    const failedUnit = status.units.find((u: { status: string }) => u.status === 'failed');
    expect(failedUnit).toMatchObject({ attempts: 2, lastError: expect.stringContaining('GPU fell over') });
    const succeededBefore = status.units.filter((u: { status: string }) => u.status === 'succeeded');

    backend.broken = false;
    const redriven = await sluice('redrive', runId, ...common(), '--json');
    expect(redriven.code).toBe(0);
    expect(redriven.json()).toMatchObject({
      runId,
      status: 'succeeded',
      redriven: 1,
      counts: { records: 31, rejected: 1, failedUnits: 0, units: first.counts.units },
      failedUnits: [],
      sources: { compared: 1, skipped: 0, removedDocuments: 0 },
    });

    // Every record exactly once: each document with contiguous chunks, the broken line rejected once.
    const chunks = await query(
      `select doc_id, list(chunk_index order by chunk_index) as idx from embeddings where run_id = '${runId}' group by doc_id order by doc_id`,
    );
    expect(chunks.map((r: { doc_id: string }) => r.doc_id)).toEqual(docs.map((d) => d.id));
    for (const row of chunks as { idx: number[] }[]) expect(row.idx).toEqual(row.idx.map((_, i) => i));
    expect(await query(`select line, reason from rejects where run_id = '${runId}'`)).toEqual([
      { line: 11, reason: expect.stringContaining('malformed JSON') },
    ]);
    expect(await query(`select status, records from runs where run_id = '${runId}'`)).toEqual([
      { status: 'succeeded', records: 31 },
    ]);
    // Only the failed unit ran again.
    const after = (await sluice('status', runId, '--home', home, '--json')).json();
    for (const unit of succeededBefore)
      expect(after.units.find((u: { unitId: string }) => u.unitId === unit.unitId).attempts).toBe(
        unit.attempts,
      );
    expect(after.units.find((u: { unitId: string }) => u.unitId === failedUnit.unitId)).toMatchObject({
      status: 'succeeded',
      attempts: 3,
    });

    const again = await sluice('redrive', runId, ...common());
    expect(again).toMatchObject({ code: 0, out: [`run ${runId} succeeded: nothing to redrive`] });
  });

  it('delivers the unfinished units of a run whose process is gone only when asked to (--resume)', async () => {
    const { store, runs } = openHome(home);
    await store.put(
      'incoming/flaky/resume.jsonl',
      `${docs
        .slice(0, 5)
        .map((d) => JSON.stringify(d))
        .join('\n')}\n`,
    );
    const config = await loadPipelineConfig(pipelines, 'flaky');
    // Planned (units recorded and sent) by a process that died before delivering any.
    const lost = new LocalWorkQueue({
      maxReceiveCount: 1,
      concurrency: 1,
      onUnit: async () => {},
      onFinalize: async () => {},
    });
    const { run } = await planRun({ store, runs, queue: lost }, config, {
      runId: 'r-20260301T100000Z-5e5e5e',
      trigger: 'local',
      keys: ['incoming/flaky/resume.jsonl'],
      now: new Date('2026-03-01T10:00:00Z'),
    });

    const refused = await sluice('redrive', run.runId, ...common());
    expect(refused.code).toBe(2);
    expect(refused.err).toEqual([expect.stringMatching(/is still running .* --resume/)]);

    const resumed = await sluice('redrive', run.runId, ...common(), '--resume', '--json');
    expect(resumed.code).toBe(0);
    expect(resumed.json()).toMatchObject({ status: 'succeeded', counts: { records: 5, rejected: 0 } });
  });

  it('says in one line what is wrong with the request (exit 2)', async () => {
    const missing = await sluice('redrive', 'r-20260301T100000Z-ffffff', '--home', home);
    expect(missing.code).toBe(2);
    expect(missing.err).toEqual([expect.stringContaining('no run r-20260301T100000Z-ffffff')]);
    expect((await sluice('redrive', '--home', home)).err).toEqual([
      'sluice redrive: give exactly one RUN_ID',
    ]);
    const half = await sluice('redrive', 'r-20260301T100000Z-ffffff', '--runs-table', 'sluice-runs');
    expect(half).toMatchObject({ code: 2, err: [expect.stringContaining('either --work-queue-url')] });
    const queueOnly = await sluice('redrive', 'r-20260301T100000Z-ffffff', '--work-queue-url', 'https://q');
    expect(queueOnly).toMatchObject({ code: 2, err: [expect.stringContaining('need --runs-table')] });
  });
});

describe('sluice redrive (deployed: DynamoDB and SQS)', () => {
  let local: LocalAws;
  let queueUrl: string;

  beforeAll(async () => {
    local = await startLocalAws({ runsTable: 'sluice-runs', queues: { 'sluice-work': {} } });
    queueUrl = local.queueUrls['sluice-work']!;
    // The CLI builds its clients from the usual AWS environment; here it points at the local servers.
    local.useAwsEnvironment();
  });
  afterAll(() => local?.stop());

  it('reopens the failed run in the runs table once and sends its failed units to the work queue', async () => {
    const runs = new DynamoRunStore({ doc: local.clients.doc, tableName: 'sluice-runs' });
    // As plan records it: a docs run of a stack with one work function.
    const { run, units } = aRunWithUnits(3, { workPool: 'endpoint', splitStack: false });
    await runs.createRun(run, units);
    await runs.completeUnit(run.runId, 'u0000', {
      counts: someCounts({ records: 1 }),
      actualCost: 1,
      outputKeys: [],
    });
    await runs.failUnit(run.runId, 'u0001', 'dead-lettered');
    await runs.failUnit(run.runId, 'u0002', 'dead-lettered');
    await runs.finishRun(run.runId, aSummary(run, { status: 'failed' }));
    const { sqs } = local.clients;

    const deployed = ['--runs-table', 'sluice-runs', '--work-queue-url', queueUrl];
    const redriven = await sluice('redrive', run.runId, ...deployed, '--json');

    expect(redriven.err).toEqual([]);
    expect(redriven.code).toBe(0);
    expect(redriven.json()).toEqual({
      runId: run.runId,
      status: 'running',
      redriven: 2,
      unitIds: ['u0001', 'u0002'],
    });
    const received = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    expect(
      received.Messages?.map((m) => JSON.parse(m.Body!)).sort((a, b) => (a.unitId < b.unitId ? -1 : 1)),
    ).toEqual([units[1], units[2]]);
    expect(await runs.getRun(run.runId)).toMatchObject({ status: 'running', doneUnits: 1, failedUnits: 0 });

    const twice = await sluice('redrive', run.runId, ...deployed);
    expect(twice.code).toBe(2);
    expect(twice.err).toEqual([expect.stringContaining('is still running (2 of 3 units unfinished)')]);

    // With the messages moved back from the DLQ instead, only the run is reopened.
    const other = aRunWithUnits(2);
    await runs.createRun(other.run, other.units);
    await runs.completeUnit(other.run.runId, 'u0000', {
      counts: someCounts(),
      actualCost: 1,
      outputKeys: [],
    });
    await runs.failUnit(other.run.runId, 'u0001', 'dead-lettered');
    await runs.finishRun(other.run.runId, aSummary(other.run, { status: 'failed' }));
    const reset = await sluice(
      'redrive',
      other.run.runId,
      '--runs-table',
      'sluice-runs',
      '--reset-only',
      '--json',
    );
    expect(reset.code).toBe(0);
    expect(reset.json()).toEqual({
      runId: other.run.runId,
      status: 'running',
      reopened: 1,
      unitIds: ['u0001'],
    });
    expect(
      (
        await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
        )
      ).Messages ?? [],
    ).toEqual([]);
  });
});
