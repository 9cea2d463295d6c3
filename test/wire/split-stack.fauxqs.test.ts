import { readFile } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { createAdapters, type SluiceAdapters } from '../../functions/config/adapters.ts';
import type { Environment } from '../../functions/config/environment.ts';
import { createFinalizeHandler } from '../../functions/finalize.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { createWorkHandler } from '../../functions/work.ts';
import type { RunSummary, WorkUnit } from '../../shared/domain/types.ts';
import type { TableName } from '../../shared/output/keys.ts';
import { readTable } from '../faults/support/run-tables.ts';
import { aPipeline, s3NotificationBody, testObservability } from '../functions/factories.ts';
import { type LocalAws, STACK_QUEUES, stackQueues, startLocalAws } from '../support/local-deployment.ts';

const BUCKET = 'sluice-split';
const TABLE = 'sluice-runs-split';
const DOCS_KEY = 'incoming/docs/notes.jsonl';
const RECS_KEY = 'incoming/recs/interactions.jsonl';
/** Work and finalize rounds a run may take before the test gives up on it (no timed assertions). */
const MAX_ROUNDS = 40;

/** An embed pipeline (endpoint pool), cut into small units. */
const docs = aPipeline('docs', {
  endpoint: { name: 'sluice-docs-embed', model: 'sluice-hash-embed-v1', dimension: 384 },
  chunking: { maxTokens: 64, overlapTokens: 8 },
  planning: { targetUnitTokens: 1_500 },
  workers: { maxReceiveCount: 3 },
});

/** A unit one queue delivered to its work function. */
interface Received {
  readonly queue: string;
  readonly pipeline: string;
  readonly stage: string | undefined;
  readonly unitId: string;
}

/** What a stack's run left: its summary and its tables' rows without the run id, in a stable order. */
interface RunResult {
  readonly summary: RunSummary;
  readonly rows: Partial<Record<TableName, Record<string, unknown>[]>>;
}

const TABLES_OF: Record<string, TableName[]> = {
  docs: ['embeddings', 'rejects'],
  recs: ['recommendations', 'rejects'],
};

/**
 * A stack whose pipelines split between two work functions (issue 14), on the wire: fauxqs
 * S3 and SQS (ingest, work + DLQ, compute + DLQ, finalize), dynalite, the local model
 * server. `Work` and `WorkCompute` run the same handler; which queue a unit is on decides
 * which one works it. An embed and a recommend run go through plan, both work queues and
 * finalize at once, their first deliveries near the time limit so units hand their rest on.
 */
describe('a split stack on the wire (fauxqs, dynalite): each unit on its pool queue', () => {
  let local: LocalAws;
  let recs: Record<string, unknown>;
  let docsText: string;
  let recsText: string;
  const reference: Record<string, RunResult> = {};

  beforeAll(async () => {
    local = await startLocalAws({
      bucket: BUCKET,
      runsTable: TABLE,
      queues: stackQueues({ split: true }),
      model: { backend: new HashEmbedder(384) },
    });
    const shipped = JSON.parse(await readFile('pipelines/recommend.json', 'utf8'));
    // Several ingest units and several similarity shards from 300 interactions.
    // JSONL, so that an ingest unit can stop mid-range and hand the rest on (a CSV unit cannot).
    recs = {
      ...shipped,
      name: 'recs',
      input: { ...shipped.input, format: 'jsonl' },
      planning: { targetUnitTokens: 250 },
      sharding: { targetUnitWork: 300, method: 'greedy' },
      workers: { maxConcurrency: 2, maxReceiveCount: 3 },
    };
    const interactions = (await readFile('events/data/interactions-sample.csv', 'utf8')).trim().split('\n');
    const header = interactions[0]!.split(',');
    recsText = interactions
      .slice(1, 301)
      .map((line) => JSON.stringify(Object.fromEntries(line.split(',').map((v, i) => [header[i], v]))))
      .join('\n')
      .concat('\n');
    const notes = (await readFile('events/data/docs-sample.jsonl', 'utf8')).trim().split('\n');
    docsText = `${notes.slice(0, 30).join('\n')}\n`;

    // The reference: each pipeline alone, a stack that does not split (every unit on the work queue).
    for (const [pipeline, key, text] of [
      [docs, DOCS_KEY, docsText],
      [recs, RECS_KEY, recsText],
    ] as const) {
      const env = local.environment({
        pipelines: [pipeline],
        workQueue: STACK_QUEUES.work,
        finalizeQueue: STACK_QUEUES.finalize,
      });
      expect(env.workComputeQueueUrl).toBeUndefined();
      const { results, received } = await dropAndRun(stackOf(env), [{ key, text }]);
      expect(received.every((r) => r.queue === STACK_QUEUES.work)).toBe(true);
      Object.assign(reference, results);
    }
  }, 120_000);

  afterAll(() => local?.stop());

  /** A stack's functions over `env`, each with its own adapters as each Lambda builds its own. */
  function stackOf(env: Environment) {
    const adapters = () => createAdapters(env, local.handlerClients(env));
    const deps = adapters();
    return {
      deps,
      plan: createPlanHandler(adapters(), testObservability()),
      work: createWorkHandler(adapters(), testObservability()),
      workCompute: createWorkHandler(adapters(), testObservability()),
      finalize: createFinalizeHandler(adapters(), testObservability()),
      queues:
        env.workComputeQueueUrl === undefined
          ? [STACK_QUEUES.work]
          : [STACK_QUEUES.work, STACK_QUEUES.compute],
    };
  }
  type Stack = ReturnType<typeof stackOf>;

  /**
   * Drops each file as S3 tells the ingest queue, delivers the ingest queue to plan, then
   * each work queue to its work function and the finalize queue to finalize until every run
   * planned has ended. The first batch each work queue delivers comes near the time limit.
   */
  async function dropAndRun(stack: Stack, drops: readonly { key: string; text: string }[]) {
    const before = new Set((await stack.deps.runs.listRuns()).map((r) => r.runId));
    for (const { key, text } of drops) {
      await local.clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: text }));
      await local.clients.sqs.send(
        new SendMessageCommand({
          QueueUrl: local.queueUrls[STACK_QUEUES.ingest],
          MessageBody: s3NotificationBody(key, BUCKET),
        }),
      );
    }
    const ingested = await local.deliver(
      STACK_QUEUES.ingest,
      (e, c) => stack.plan(e, c) as Promise<SQSBatchResponse>,
    );
    expect(ingested).toEqual({ delivered: drops.length, failed: 0 });
    const planned = (await stack.deps.runs.listRuns()).filter((r) => !before.has(r.runId));
    expect(planned).toHaveLength(drops.length);

    const received: Received[] = [];
    const nearLimit = new Set<string>();
    const workOf = (queue: string) => {
      const handler = queue === STACK_QUEUES.compute ? stack.workCompute : stack.work;
      return (event: SQSEvent, context: Context) => {
        for (const record of event.Records) {
          const unit = JSON.parse(record.body) as WorkUnit;
          received.push({ queue, pipeline: unit.pipeline, stage: unit.stage, unitId: unit.unitId });
        }
        if (nearLimit.has(queue)) return handler(event, context);
        nearLimit.add(queue);
        // Less than the checkpoint margin: each unit works a little and hands the rest on.
        return handler(event, { ...context, getRemainingTimeInMillis: () => 20_000 });
      };
    };
    const running = async () => {
      const runs = await Promise.all(planned.map((r) => stack.deps.runs.getRun(r.runId)));
      return runs.some((r) => r?.status === 'running');
    };
    for (let round = 0; await running(); round++) {
      expect(round, 'the runs end within the rounds allowed').toBeLessThan(MAX_ROUNDS);
      for (const queue of stack.queues) expect((await local.deliver(queue, workOf(queue))).failed).toBe(0);
      expect((await local.deliver(STACK_QUEUES.finalize, stack.finalize)).failed).toBe(0);
    }
    const results: Record<string, RunResult> = {};
    for (const run of planned) results[run.pipeline] = await resultOf(stack.deps, run.pipeline, run.runId);
    return { results, received };
  }

  async function resultOf(deps: SluiceAdapters, pipeline: string, runId: string): Promise<RunResult> {
    const summary = (await deps.runs.getSummary(runId))!;
    const rows: RunResult['rows'] = {};
    for (const table of TABLES_OF[pipeline]!)
      rows[table] = (await readTable(deps.store, table, pipeline, runId))
        .map(({ run_id: _run, ...row }) => JSON.stringify(row))
        .sort()
        .map((row) => JSON.parse(row) as Record<string, unknown>);
    return { summary, rows };
  }

  let split: Awaited<ReturnType<typeof dropAndRun>>;

  it('works every embed unit from the work queue and every recommend unit from the compute queue', async () => {
    const env = local.environment({
      pipelines: [docs, recs],
      workQueue: STACK_QUEUES.work,
      computeQueue: STACK_QUEUES.compute,
      finalizeQueue: STACK_QUEUES.finalize,
    });
    split = await dropAndRun(stackOf(env), [
      { key: DOCS_KEY, text: docsText },
      { key: RECS_KEY, text: recsText },
    ]);
    const { received } = split;

    const queueOf = (pipeline: string) => (pipeline === 'recs' ? STACK_QUEUES.compute : STACK_QUEUES.work);
    expect(received.filter((r) => r.queue !== queueOf(r.pipeline))).toEqual([]);
    const fromCompute = received.filter((r) => r.queue === STACK_QUEUES.compute);
    const fromWork = received.filter((r) => r.queue === STACK_QUEUES.work);
    // Planned units, continuations (`<unit>c`) and the next stage's units (finalize plans them).
    expect(new Set(fromCompute.map((r) => r.stage))).toEqual(new Set(['ingest', 'similarity']));
    expect(fromCompute.some((r) => r.stage === 'ingest' && r.unitId.endsWith('c'))).toBe(true);
    expect(fromWork.some((r) => r.unitId.endsWith('c'))).toBe(true);
    expect(fromWork.length).toBeGreaterThan(2);
    for (const deadLetters of [STACK_QUEUES.workDeadLetter, STACK_QUEUES.computeDeadLetter]) {
      const out = await local.clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: local.queueUrls[deadLetters],
          AttributeNames: ['ApproximateNumberOfMessages'],
        }),
      );
      expect(out.Attributes?.ApproximateNumberOfMessages, deadLetters).toBe('0');
    }
  });

  it('gives the same results as the stacks that do not split', () => {
    for (const pipeline of ['docs', 'recs']) {
      const got = split.results[pipeline]!;
      const want = reference[pipeline]!;
      expect(got.summary.status, pipeline).toBe('succeeded');
      expect(got.summary.counts.records, pipeline).toBe(want.summary.counts.records);
      expect(got.summary.counts.rejected, pipeline).toBe(want.summary.counts.rejected);
      expect(got.rows, pipeline).toEqual(want.rows);
    }
    expect(split.results.docs!.rows.embeddings!.length).toBeGreaterThan(30);
    expect(split.results.recs!.rows.recommendations!.length).toBe(
      split.results.recs!.summary.recommendations!.rows,
    );
    expect(split.results.recs!.summary.recommendations).toEqual(reference.recs!.summary.recommendations);
  });
});
