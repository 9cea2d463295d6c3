import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { createAdapters } from '../../functions/config/adapters.ts';
import { createFinalizeHandler } from '../../functions/finalize.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { createWorkHandler } from '../../functions/work.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import { runSummaryKey } from '../../shared/output/keys.ts';
import { readTable } from '../faults/support/run-tables.ts';
import { aPipeline, testObservability } from '../functions/factories.ts';
import { type LocalAws, startLocalAws } from '../support/local-deployment.ts';

const BUCKET = 'sluice-wire';
const TABLE = 'sluice-runs-wire';
/** Spaces, a literal `+` and non-ASCII: everything S3's key encoding in notifications touches. */
const SOURCE_KEY = 'incoming/docs/mixed batch+1 café.jsonl';

/**
 * The whole deployed flow on the wire: S3 (fauxqs) -> ingest queue (fauxqs SQS) -> plan
 * -> work queue -> work (SageMaker runtime API of the local model server; runs table in
 * dynalite) -> finalize queue -> finalize, every hop through the real SDK clients and the
 * handlers' own factories, then the Parquet results read back record by record.
 */
describe('pipeline on the wire (fauxqs, dynalite, local model server)', () => {
  let local: LocalAws;
  let deps: ReturnType<typeof createAdapters>;

  beforeAll(async () => {
    local = await startLocalAws({
      bucket: BUCKET,
      runsTable: TABLE,
      queues: {
        'sluice-ingest': { visibilityTimeoutSeconds: 5 },
        'sluice-work': { visibilityTimeoutSeconds: 5 },
        'sluice-finalize': { visibilityTimeoutSeconds: 5 },
      },
      model: { backend: new HashEmbedder(384) },
    });
    // The one endpoint override the env contract has: SageMaker runtime calls go to the local server.
    const env = local.environment({
      workQueue: 'sluice-work',
      finalizeQueue: 'sluice-finalize',
      pipelines: [
        aPipeline('docs', {
          endpoint: { name: 'sluice-docs-embed', model: 'sluice-hash-embed-v1', dimension: 384 },
          chunking: { maxTokens: 64, overlapTokens: 8 },
          // Small units, so the one file is cut into several byte ranges.
          planning: { targetUnitTokens: 1_500 },
          workers: { maxReceiveCount: 3 },
        }),
      ],
    });
    deps = createAdapters(env, local.handlerClients(env));
  });

  afterAll(() => local?.stop());

  /**
   * Drops `text` under SOURCE_KEY as S3 would tell the ingest queue, then delivers the
   * queues to plan, work and finalize until the run is no longer running.
   */
  async function dropAndRun(text: string) {
    await local.clients.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: SOURCE_KEY,
        Body: text,
        ContentType: 'application/x-ndjson',
      }),
    );

    // fauxqs 1.9 implements no bucket notification configuration (PutBucketNotificationConfiguration
    // is not among its S3 actions), so the notification S3 would send is built here from the real
    // HeadObject answer, in S3's event structure, and sent to the ingest queue, preceded by the
    // s3:TestEvent S3 sends when notifications are first configured.
    const head = await local.clients.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: SOURCE_KEY }));
    await local.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: local.queueUrls['sluice-ingest'],
        MessageBody: JSON.stringify(s3TestEvent()),
      }),
    );
    await local.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: local.queueUrls['sluice-ingest'],
        MessageBody: JSON.stringify(
          s3Notification('ObjectCreated:Put', SOURCE_KEY, { size: head.ContentLength!, eTag: head.ETag! }),
        ),
      }),
    );
    return runIngested({ messages: 2, inputs: [SOURCE_KEY] });
  }

  /** Deletes SOURCE_KEY and tells the ingest queue as S3 would, then runs what plan makes of it. */
  async function deleteAndRun() {
    await local.clients.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: SOURCE_KEY }));
    await local.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: local.queueUrls['sluice-ingest'],
        MessageBody: JSON.stringify(s3Notification('ObjectRemoved:Delete', SOURCE_KEY)),
      }),
    );
    return runIngested({ messages: 1, inputs: [] });
  }

  /** Delivers the ingest queue to plan, then work and finalize until the one run it planned ends. */
  async function runIngested(expected: { messages: number; inputs: string[] }) {
    const observability = {
      plan: testObservability(),
      work: testObservability(),
      finalize: testObservability(),
    };
    const plan = createPlanHandler(deps, observability.plan);
    const work = createWorkHandler(deps, observability.work);
    const finalize = createFinalizeHandler(deps, observability.finalize);

    const before = new Set((await deps.runs.listRuns()).map((r) => r.runId));
    const ingested = await local.deliver(
      'sluice-ingest',
      (event, context) => plan(event, context) as Promise<SQSBatchResponse>,
    );
    expect(ingested).toEqual({ delivered: expected.messages, failed: 0 });

    const planned = (await deps.runs.listRuns()).filter((r) => !before.has(r.runId));
    expect(planned.map((r) => ({ pipeline: r.pipeline, trigger: r.trigger, inputs: r.inputs }))).toEqual([
      { pipeline: 'docs', trigger: 's3', inputs: expected.inputs },
    ]);
    const runId = planned[0]!.runId;

    let units = 0;
    const deadline = Date.now() + 10_000;
    while ((await runItem(runId)).status === 'running') {
      expect(Date.now(), 'the run finishes within 10 s').toBeLessThan(deadline);
      const worked = await local.deliver('sluice-work', (event, context) => {
        units += event.Records.length;
        return work(event, context);
      });
      expect(worked.failed).toBe(0);
      const finalized = await local.deliver('sluice-finalize', (event, context) => finalize(event, context));
      expect(finalized.failed).toBe(0);
    }
    return { runId, units, observability };
  }

  let firstRunId: string;
  let redropRunId: string;
  const input = buildInput();

  it('puts every input record in embeddings or rejects exactly once', async () => {
    const { runId, units, observability } = await dropAndRun(input.text);
    firstRunId = runId;

    const run = (await runItem(runId))!;
    expect(run.status).toBe('succeeded');
    expect(units).toBe(run.totalUnits);
    expect(run.totalUnits).toBeGreaterThan(2);

    const embeddings = await tableRows('embeddings', runId);
    const rejects = await tableRows('rejects', runId);

    // Every good document: all of its chunks, indexes 0..n-1, none twice; never rejected.
    const chunksByDoc = new Map<string, number[]>();
    for (const row of embeddings) {
      expect(row.source_key).toBe(SOURCE_KEY);
      expect(row.model).toBe('sluice-hash-embed-v1');
      expect((row.embedding as number[]).length).toBe(384);
      expect(row.chunk_id).toBe(`${row.doc_id}#${row.chunk_index}`);
      const chunks = chunksByDoc.get(String(row.doc_id)) ?? [];
      chunksByDoc.set(String(row.doc_id), [...chunks, Number(row.chunk_index)]);
    }
    expect([...chunksByDoc.keys()].sort()).toEqual([...input.good.values()].sort());
    for (const [docId, indexes] of chunksByDoc) {
      expect(
        indexes.sort((a, b) => a - b),
        `chunks of ${docId}`,
      ).toEqual(indexes.map((_, i) => i));
    }
    expect(new Set(embeddings.map((row) => row.chunk_id)).size).toBe(embeddings.length);
    expect([...chunksByDoc.values()].some((indexes) => indexes.length > 1)).toBe(true);

    // Every bad line: exactly one reject, by line number; good lines never rejected.
    const rejectedLines = rejects.map((row) => Number(row.line)).sort((a, b) => a - b);
    expect(rejectedLines).toEqual([...input.bad.keys()].sort((a, b) => a - b));
    for (const row of rejects) {
      expect(row.source_key).toBe(SOURCE_KEY);
      expect(row.reason).toContain(input.bad.get(Number(row.line)));
    }
    for (const line of input.good.keys()) expect(rejectedLines).not.toContain(line);

    // The run's summary says what the tables hold.
    const summary = run.summary as RunSummary;
    expect(summary.counts).toMatchObject({
      records: input.good.size + input.bad.size,
      rejected: rejects.length,
      units: run.totalUnits,
      failedUnits: 0,
      chunks: embeddings.length,
      embedded: embeddings.length,
    });
    const summaryJson = await local.clients.s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: runSummaryKey('docs', runId) }),
    );
    expect(JSON.parse(await summaryJson.Body!.transformToString())).toEqual(summary);

    expect(observability.plan.metricTotals()).toMatchObject({ RunsPlanned: 1, UnitsPlanned: run.totalUnits });
    expect(observability.work.metricTotals()).toMatchObject({
      UnitsSucceeded: run.totalUnits,
      RecordsProcessed: summary.counts.records,
      RecordsRejected: summary.counts.rejected,
    });
    expect(observability.finalize.metricTotals()).toEqual({ RunsSucceeded: 1 });
  });

  it('counts the documents a re-drop of the same object no longer has, and forgets them in the chunk index', async () => {
    // The last six documents go (they follow every bad line and both id-less documents, so
    // no other line number, and so no other id, changes).
    const lines = input.text.trimEnd().split('\n');
    const kept = `${lines.slice(0, -6).join('\n')}\n`;
    const goneIds = lines.slice(-6).map((line) => (JSON.parse(line) as { id: string }).id);
    expect(goneIds).toEqual(['doc-054', 'doc-055', 'doc-056', 'doc-057', 'doc-058', 'doc-059']);
    const firstRows = await tableRows('embeddings', firstRunId);
    const goneChunks = firstRows.filter((row) => goneIds.includes(String(row.doc_id))).length;

    const { runId } = await dropAndRun(kept);
    const run = (await runItem(runId))!;
    expect(run.status).toBe('succeeded');
    const summary = run.summary as RunSummary;
    expect(summary.counts).toMatchObject({
      removedDocuments: 6,
      removedChunks: goneChunks,
      embedded: 0,
      skippedUnchanged: firstRows.length - goneChunks,
    });
    expect(summary.sources).toMatchObject({ compared: 1, skipped: 0, removedDocuments: 6 });
    const docs = await deps.chunkIndex.lookupDocs('docs', goneIds);
    expect([...docs.values()].map((d) => d.chunkCount)).toEqual([0, 0, 0, 0, 0, 0]);
    redropRunId = runId;
  });

  it("counts every document of a deleted object as removed, from S3's deletion notice", async () => {
    // The re-drop's table is the source's whole snapshot: carried chunks included.
    const snapshot = await tableRows('embeddings', redropRunId);
    const ids = [...new Set(snapshot.map((row) => String(row.doc_id)))];

    const { runId, units } = await deleteAndRun();
    const run = (await runItem(runId))!;
    expect(run).toMatchObject({ status: 'succeeded', totalUnits: 0 });
    expect(units).toBe(0);
    const summary = run.summary as RunSummary;
    expect(summary.counts).toMatchObject({
      records: 0,
      removedDocuments: ids.length,
      removedChunks: snapshot.length,
    });
    expect(summary.sources).toMatchObject({ compared: 1, deleted: 1, skipped: 0 });
    expect(await tableRows('sources', runId)).toEqual([
      expect.objectContaining({
        run_id: runId,
        source_key: SOURCE_KEY,
        status: 'deleted',
        documents: 0n,
        removed_documents: BigInt(ids.length),
        removed_chunks: BigInt(snapshot.length),
      }),
    ]);
    const docs = await deps.chunkIndex.lookupDocs('docs', ids);
    expect(docs.size).toBe(ids.length);
    expect(new Set([...docs.values()].map((d) => d.chunkCount))).toEqual(new Set([0]));
  });

  /** The rows of a run's parts of one table, read back through the bucket as Athena would. */
  const tableRows = (table: 'embeddings' | 'rejects' | 'sources', runId: string) =>
    readTable(deps.store, table, 'docs', runId);

  async function runItem(
    runId: string,
  ): Promise<Record<string, unknown> & { status: string; totalUnits: number }> {
    const out = await local.clients.doc.send(
      new GetCommand({ TableName: TABLE, Key: { pk: `RUN#${runId}`, sk: 'RUN' } }),
    );
    return out.Item as Record<string, unknown> & { status: string; totalUnits: number };
  }
});

/** S3 writes keys in notifications form-encoded: `+` for a space, `%2B` for `+`, UTF-8 %-escaped, `/` kept. */
function s3EncodeKey(key: string): string {
  return encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');
}

/** An S3 event record; a deletion's object has no size or ETag, as S3 sends it. */
function s3Notification(eventName: string, key: string, object?: { size: number; eTag: string }) {
  const now = new Date();
  return {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: 'us-east-1',
        eventTime: now.toISOString(),
        eventName,
        userIdentity: { principalId: 'AWS:AIDAEXAMPLEUSERID01' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: { 'x-amz-request-id': 'EXAMPLE0000000001', 'x-amz-id-2': 'EXAMPLE/id2' },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'sluice-ingest',
          bucket: {
            name: BUCKET,
            ownerIdentity: { principalId: 'A3NL1KOZZKEXAMPLE' },
            arn: `arn:aws:s3:::${BUCKET}`,
          },
          object: {
            key: s3EncodeKey(key),
            ...(object && { size: object.size, eTag: object.eTag.replace(/"/g, '') }),
            sequencer: now.getTime().toString(16).toUpperCase().padStart(18, '0'),
          },
        },
      },
    ],
  };
}

function s3TestEvent() {
  return {
    Service: 'Amazon S3',
    Event: 's3:TestEvent',
    Time: new Date().toISOString(),
    Bucket: BUCKET,
    RequestId: 'EXAMPLE0000000000',
    HostId: 'EXAMPLE/host',
  };
}

const WORDS = (
  'queue bucket unit worker token budget chunk overlap endpoint throttle retry backoff parquet ' +
  'partition schema record reject summary finalize plan skew median shard café naïve Zürich 東京'
).split(' ');

/**
 * About 60 good documents of varied length (some one word, some several chunks; two
 * without an id, so theirs is `<key>:<line>`), a blank line (not a record), and bad lines
 * of every kind the reader rejects. `good` maps line -> doc id, `bad` line -> reason fragment.
 */
function buildInput() {
  const lines: string[] = [];
  const good = new Map<number, string>();
  const bad = new Map<number, string>();
  let seed = 7;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  const sentence = (words: number) =>
    Array.from({ length: words }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
  const addGood = (id: string | undefined, words: number) => {
    lines.push(
      JSON.stringify({ ...(id === undefined ? {} : { id }), text: `${sentence(words)}.`, title: `t ${id}` }),
    );
    good.set(lines.length, id ?? `${SOURCE_KEY}:${lines.length}`);
  };
  const addBad = (line: string, reason: string) => {
    lines.push(line);
    bad.set(lines.length, reason);
  };
  for (let i = 0; i < 60; i++) {
    const words =
      i % 7 === 0
        ? 1 + Math.floor(random() * 3)
        : i % 5 === 0
          ? 120 + Math.floor(random() * 200)
          : 5 + Math.floor(random() * 60);
    addGood(i === 13 || i === 41 ? undefined : `doc-${String(i).padStart(3, '0')}`, words);
    if (i === 8) addBad('{"id": "broken", "text": "an unterminated string}', 'malformed JSON');
    if (i === 17) addBad('["an", "array", "is not a record"]', 'not a JSON object (got array)');
    if (i === 25) addBad('{"id":"no-text","title":"a record without its text"}', 'missing text field "text"');
    if (i === 33) addBad('{"id":"numeric-text","text":42}', 'text field "text" is not a string');
    if (i === 38) lines.push('');
    if (i === 47) addBad('plain words where JSON was expected', 'malformed JSON');
    if (i === 52) addBad('{"id":"blank","text":"   "}', 'text field "text" is empty');
  }
  return { text: `${lines.join('\n')}\n`, good, bad };
}
