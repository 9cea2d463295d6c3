import 'aws-sdk-client-mock-vitest/extend';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPlanHandler, type ScheduledRunResult } from '../../functions/plan.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { prefixSourcesKey } from '../../shared/incremental/deleted-sources.ts';
import {
  aLambdaContext,
  anEnvironment,
  anIngestEvent,
  anSqsRecord,
  aPipeline,
  eventSample,
  SAMPLE_BUCKET,
  s3NotificationBody,
  sqsEventOf,
  testAdapters,
  testObservability,
  WORK_QUEUE_URL,
} from './factories.ts';

const s3 = mockClient(S3Client);
const sqs = mockClient(SQSClient);
const dynamo = mockClient(DynamoDBDocumentClient);

const NOW = new Date('2026-03-01T10:00:05.000Z');
const SIZES: Record<string, number> = {
  'incoming/docs/my report 2026.jsonl': 48_213,
  'incoming/docs/café menu+1.jsonl': 9_120,
  'incoming/faq/questions.jsonl': 2_048,
  'datasets/docs/2026-02.jsonl': 30_000,
  'datasets/docs/2026-03.jsonl': 31_000,
};

function setup() {
  const env = anEnvironment([aPipeline('docs'), aPipeline('faq')]);
  const observability = testObservability();
  const handler = createPlanHandler(testAdapters(env), { ...observability, now: () => NOW });
  return { handler, observability };
}

/** Every unit descriptor sent to the work queue. */
const sentUnits = (): WorkUnit[] =>
  sqs
    .commandCalls(SendMessageBatchCommand)
    .flatMap((call) => call.args[0].input.Entries ?? [])
    .map((entry) => JSON.parse(entry.MessageBody!) as WorkUnit);

/** The run items written to the runs table. */
const runItems = () =>
  dynamo
    .commandCalls(PutCommand)
    .map((call) => call.args[0].input.Item!)
    .filter((item) => item.sk === 'RUN');

describe('plan handler', () => {
  beforeEach(() => {
    s3.on(HeadObjectCommand).callsFake((input: { Key: string }) => {
      const size = SIZES[input.Key];
      if (size === undefined)
        throw Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } });
      return { ContentLength: size };
    });
    dynamo.on(BatchWriteCommand).resolves({ UnprocessedItems: {} });
    dynamo.on(PutCommand).resolves({});
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    sqs.on(SendMessageCommand).resolves({});
  });

  afterEach(() => {
    s3.reset();
    sqs.reset();
    dynamo.reset();
  });

  describe('from the ingest queue', () => {
    it('decodes the keys S3 encodes (+ for a space, %-escaped UTF-8, %2B for +) before reading the objects', async () => {
      const { handler } = setup();
      const event = eventSample<SQSEvent>('sqs-s3-notification.json');

      const response = (await handler(event, aLambdaContext())) as SQSBatchResponse;

      expect(response).toEqual({ batchItemFailures: [] });
      expect(s3).toHaveReceivedCommandWith(HeadObjectCommand, {
        Bucket: SAMPLE_BUCKET,
        Key: 'incoming/docs/my report 2026.jsonl',
      });
      expect(s3).toHaveReceivedCommandWith(HeadObjectCommand, {
        Bucket: SAMPLE_BUCKET,
        Key: 'incoming/docs/café menu+1.jsonl',
      });
      expect(s3).toHaveReceivedCommandTimes(HeadObjectCommand, 2);
    });

    it('plans one run per pipeline over all the objects of the batch, and queues its units', async () => {
      const { handler, observability } = setup();
      const event = eventSample<SQSEvent>('sqs-s3-notification.json');

      await handler(event, aLambdaContext());

      const runs = runItems();
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({
        pipeline: 'docs',
        trigger: 's3',
        status: 'running',
        startedAt: NOW.toISOString(),
        inputs: ['incoming/docs/café menu+1.jsonl', 'incoming/docs/my report 2026.jsonl'],
      });
      expect(runs[0]!.runId).toMatch(/^r-20260301T100005Z-[0-9a-f]{6}$/);
      const units = sentUnits();
      expect(units.length).toBeGreaterThan(0);
      expect(sqs).toHaveReceivedCommandWith(SendMessageBatchCommand, { QueueUrl: WORK_QUEUE_URL });
      const keys = units.flatMap((u) => [u.sourceKey, ...u.packed.map((p) => p.key)]).sort();
      expect(keys).toEqual(['incoming/docs/café menu+1.jsonl', 'incoming/docs/my report 2026.jsonl']);
      expect(observability.metricTotals()).toMatchObject({ RunsPlanned: 1, UnitsPlanned: units.length });
    });

    it('counts a key named twice in one batch (S3 delivers at least once) as one input', async () => {
      const { handler } = setup();

      await handler(
        anIngestEvent('incoming/faq/questions.jsonl', 'incoming/faq/questions.jsonl'),
        aLambdaContext(),
      );

      expect(runItems()).toHaveLength(1);
      expect(runItems()[0]!.inputs).toEqual(['incoming/faq/questions.jsonl']);
      expect(s3).toHaveReceivedCommandTimes(HeadObjectCommand, 1);
    });

    it('ignores the s3:TestEvent S3 sends when notifications are configured', async () => {
      const { handler, observability } = setup();
      const testEvent = JSON.stringify(eventSample('s3-test-event.json'));

      const response = await handler(sqsEventOf(anSqsRecord(testEvent)), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(s3).not.toHaveReceivedAnyCommand();
      expect(dynamo).not.toHaveReceivedAnyCommand();
      expect(sqs).not.toHaveReceivedAnyCommand();
      expect(observability.logged('info').join('\n')).toContain('S3 test event');
    });

    it('skips, with a warning, keys of an unknown pipeline or outside incoming/, and still plans the others', async () => {
      const { handler, observability } = setup();

      const response = await handler(
        anIngestEvent('incoming/unknown/a.jsonl', 'elsewhere/docs/b.jsonl', 'incoming/faq/questions.jsonl'),
        aLambdaContext(),
      );

      expect(response).toEqual({ batchItemFailures: [] });
      expect(s3).toHaveReceivedCommandTimes(HeadObjectCommand, 1);
      expect(runItems().map((r) => r.pipeline)).toEqual(['faq']);
      const warnings = observability.logged('warn').join('\n');
      expect(warnings).toContain('incoming/unknown/a.jsonl');
      expect(warnings).toContain('pipeline unknown is not configured');
      expect(warnings).toContain('elsewhere/docs/b.jsonl');
    });

    it('skips notifications about another bucket and events other than creation and deletion', async () => {
      const { handler, observability } = setup();
      const tagged = s3NotificationBody('incoming/docs/old.jsonl').replace(
        'ObjectCreated:Put',
        'ObjectTagging:Put',
      );

      const response = await handler(
        sqsEventOf(
          anSqsRecord(tagged),
          anSqsRecord(s3NotificationBody('incoming/docs/x.jsonl', 'someone-elses')),
        ),
        aLambdaContext(),
      );

      expect(response).toEqual({ batchItemFailures: [] });
      expect(s3).not.toHaveReceivedAnyCommand();
      const warnings = observability.logged('warn').join('\n');
      expect(warnings).toContain('ObjectTagging:Put is neither an object creation nor a deletion');
      expect(warnings).toContain('bucket someone-elses is not the Sluice bucket');
    });

    it('plans no run for deletion notices alone whose keys all exist again (uploaded since)', async () => {
      const { handler, observability } = setup();
      const removal = anSqsRecord(
        s3NotificationBody('incoming/docs/my+report+2026.jsonl').replace(
          'ObjectCreated:Put',
          'ObjectRemoved:Delete',
        ),
      );

      const response = await handler(sqsEventOf(removal), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(s3).toHaveReceivedCommandWith(HeadObjectCommand, { Key: 'incoming/docs/my report 2026.jsonl' });
      expect(runItems()).toEqual([]);
      expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
      expect(sqs).not.toHaveReceivedAnyCommand();
      expect(observability.logged('info').join('\n')).toContain(
        'deleted keys exist again (uploaded since): nothing to plan',
      );
    });

    it('plans a deletion as a key to look up: gone, it is recorded for finalize as a deleted source; nothing is read', async () => {
      const env = anEnvironment([aPipeline('docs'), aPipeline('faq', { incremental: { enabled: false } })]);
      const observability = testObservability();
      const handler = createPlanHandler(testAdapters(env), { ...observability, now: () => NOW });
      const removal = (key: string) =>
        anSqsRecord(s3NotificationBody(key).replace('ObjectCreated:Put', 'ObjectRemoved:Delete'));

      const response = await handler(
        sqsEventOf(
          removal('incoming/docs/old.jsonl'),
          // Deleted and uploaded again since: looked up, found, and left to its upload's run.
          removal('incoming/docs/my report 2026.jsonl'),
          removal('incoming/faq/questions.jsonl'),
        ),
        aLambdaContext(),
      );

      expect(response).toEqual({ batchItemFailures: [] });
      expect(runItems()).toEqual([expect.objectContaining({ pipeline: 'docs', totalUnits: 0, inputs: [] })]);
      expect(sentUnits()).toEqual([]);
      const runId = runItems()[0]!.runId as string;
      const recorded = s3
        .commandCalls(PutObjectCommand)
        .map((call) => call.args[0].input)
        .find((input) => input.Key === `runs/docs/${runId}/deleted-sources.json`);
      expect(JSON.parse(String(recorded?.Body))).toEqual({
        format: 'sluice-deleted-sources/1',
        keys: ['incoming/docs/old.jsonl'],
      });
      // A run with no units goes straight to finalize, which counts the removals.
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
        MessageBody: expect.stringContaining(runId),
      });
      expect(observability.logged('warn').join('\n')).toContain(
        'pipeline faq keeps no source manifests (it is not incremental embedding): nothing to remove',
      );
    });

    it('fails only the message that is not an S3 notification, and says why in the log', async () => {
      const { handler, observability } = setup();
      const bad = anSqsRecord('{"hello":"world"}');
      const good = anSqsRecord(s3NotificationBody('incoming/faq/questions.jsonl'));

      const response = await handler(sqsEventOf(bad, good), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: bad.messageId }] });
      expect(runItems()).toHaveLength(1);
      const errors = observability.logged('error').join('\n');
      expect(errors).toContain('not an S3 notification');
      expect(errors).toContain(bad.messageId);
    });

    describe('when an AWS call fails, fails the messages of that pipeline only', () => {
      const failure = (name: string, status: number) =>
        Object.assign(new Error(`${name} (simulated)`), { name, $metadata: { httpStatusCode: status } });

      it.each([
        [
          'DynamoDB BatchWriteItem',
          () =>
            dynamo.on(BatchWriteCommand).callsFake((input: { RequestItems: Record<string, unknown[]> }) => {
              if (JSON.stringify(input.RequestItems).includes('incoming/faq/')) {
                throw failure('ProvisionedThroughputExceededException', 400);
              }
              return { UnprocessedItems: {} };
            }),
        ],
        [
          'SQS SendMessageBatch',
          () =>
            sqs.on(SendMessageBatchCommand).callsFake((input: { Entries: { MessageBody: string }[] }) => {
              if (input.Entries.some((e) => JSON.parse(e.MessageBody).pipeline === 'faq')) {
                throw failure('InternalError', 500);
              }
              return { Successful: [], Failed: [] };
            }),
        ],
        [
          'S3 HeadObject',
          () =>
            s3
              .on(HeadObjectCommand, { Key: 'incoming/faq/questions.jsonl' })
              .rejects(failure('Forbidden', 403)),
        ],
      ])('%s', async (_call, breakFaq) => {
        breakFaq();
        const { handler, observability } = setup();
        const docs = anSqsRecord(s3NotificationBody('incoming/docs/my+report+2026.jsonl'));
        const faq = anSqsRecord(s3NotificationBody('incoming/faq/questions.jsonl'));

        const response = await handler(sqsEventOf(docs, faq), aLambdaContext());

        expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: faq.messageId }] });
        expect(sentUnits().filter((unit) => unit.pipeline === 'docs').length).toBeGreaterThan(0);
        const errors = observability.logged('error').join('\n');
        expect(errors).toContain('planning failed');
        expect(errors).toContain('incoming/faq/questions.jsonl');
        expect(observability.metricTotals().RunsPlanned).toBe(1);
      });
    });
  });

  describe('from EventBridge Scheduler', () => {
    it('plans a run over every object under the prefix', async () => {
      s3.on(ListObjectsV2Command).resolves({
        Contents: [
          { Key: 'datasets/docs/', Size: 0 },
          { Key: 'datasets/docs/2026-02.jsonl', Size: 30_000 },
          { Key: 'datasets/docs/2026-03.jsonl', Size: 31_000 },
        ],
        IsTruncated: false,
      });
      // The sample carries scheduledTime: plan first looks for the run an earlier attempt recorded.
      dynamo.on(GetCommand).resolves({});
      // The first run over the prefix: no list of what an earlier one saw.
      s3.on(GetObjectCommand, { Key: prefixSourcesKey('docs', 'datasets/docs/') }).rejects(
        Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } }),
      );
      const { handler, observability } = setup();

      const result = (await handler(
        eventSample('scheduler-scheduled-run.json'),
        aLambdaContext(),
      )) as ScheduledRunResult;

      expect(s3).toHaveReceivedCommandWith(ListObjectsV2Command, {
        Bucket: SAMPLE_BUCKET,
        Prefix: 'datasets/docs/',
      });
      expect(runItems()).toHaveLength(1);
      expect(runItems()[0]).toMatchObject({
        pipeline: 'docs',
        trigger: 'schedule',
        inputs: ['datasets/docs/2026-02.jsonl', 'datasets/docs/2026-03.jsonl'],
      });
      expect(result).toEqual({
        runId: runItems()[0]!.runId,
        pipeline: 'docs',
        inputs: 2,
        units: sentUnits().length,
      });
      expect(observability.metricTotals()).toMatchObject({ RunsPlanned: 1 });
      // What it listed, for the next run over the prefix to find deleted files.
      expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
        Key: prefixSourcesKey('docs', 'datasets/docs/'),
        Body: expect.stringContaining('"keys":["datasets/docs/2026-02.jsonl","datasets/docs/2026-03.jsonl"]'),
      });
    });

    it('refuses a schedule for a pipeline this deployment does not configure', async () => {
      const { handler } = setup();

      await expect(
        handler({ kind: 'scheduled-run', pipeline: 'nightly', prefix: 'datasets/x/' }, aLambdaContext()),
      ).rejects.toThrow('scheduled run: pipeline nightly is not configured (known: docs, faq)');
      expect(dynamo).not.toHaveReceivedAnyCommand();
    });

    it('refuses an event that is neither an SQS batch nor a scheduled run, naming the field', async () => {
      const { handler } = setup();

      await expect(
        handler({ kind: 'scheduled-run', pipeline: 'docs' } as never, aLambdaContext()),
      ).rejects.toThrow(/plan event .*: prefix:/);
    });
  });
});
