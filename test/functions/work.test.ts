import 'aws-sdk-client-mock-vitest/extend';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { InvokeEndpointCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import {
  ChangeMessageVisibilityBatchCommand,
  GetQueueUrlCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkHandler } from '../../functions/work.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import {
  aLambdaContext,
  anEnvironment,
  anSqsRecord,
  aPipeline,
  aWorkEvent,
  blobBody,
  eventSample,
  FINALIZE_QUEUE_URL,
  SAMPLE_BUCKET,
  sqsEventOf,
  streamingBody,
  testAdapters,
  testObservability,
  WORK_QUEUE_URL,
} from './factories.ts';

const s3 = mockClient(S3Client);
const sqs = mockClient(SQSClient);
const dynamo = mockClient(DynamoDBDocumentClient);
const sagemaker = mockClient(SageMakerRuntimeClient);

const MAX_RECEIVE_COUNT = 3;
/** The unit of `events/sqs-work-unit.json`. */
const sampleEvent = () => eventSample<SQSEvent>('sqs-work-unit.json');
const sampleUnit = (): WorkUnit => JSON.parse(sampleEvent().Records[0]!.body) as WorkUnit;

const SOURCE = [
  '{"id":"a","text":"Alpha bravo charlie."}',
  `{"id":"b","text":"${'Long document sentence with several words in it. '.repeat(20).trim()}"}`,
  'not json at all',
  '{"id":"c","text":"Delta echo foxtrot."}',
].join('\n');

const awsError = (name: string, status: number, message = `${name} (simulated)`) =>
  Object.assign(new Error(message), {
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });

/** DynamoDB as the runs table answers a unit's calls: the unit exists and `terminalBefore` of `totalUnits` are done. */
function runsTable(options: {
  totalUnits: number;
  terminalBefore?: number;
  unitStatus?: 'pending' | 'succeeded';
}) {
  const unitStatus = options.unitStatus ?? 'pending';
  dynamo.on(UpdateCommand).callsFake((input: { UpdateExpression: string; Key: { sk: string } }) => {
    const expression = input.UpdateExpression;
    if (expression.startsWith('SET attempts')) {
      const reviving = expression.includes(':running');
      if (reviving && unitStatus === 'succeeded') throw awsError('ConditionalCheckFailedException', 400);
      const unit = sampleUnit();
      return {
        Attributes: {
          pk: `RUN#${unit.runId}`,
          sk: input.Key.sk,
          unitId: unit.unitId,
          sourceKey: unit.sourceKey,
          byteStart: unit.byteStart,
          byteEnd: unit.byteEnd,
          estCost: unit.estCost,
          packedFiles: 0,
          status: reviving ? 'running' : unitStatus,
          attempts: 1,
          lastError: null,
          counts: null,
          outputKeys: [],
        },
      };
    }
    if (expression.startsWith('ADD terminalUnits')) {
      return {
        Attributes: { terminalUnits: (options.terminalBefore ?? 0) + 1, totalUnits: options.totalUnits },
      };
    }
    return {};
  });
}

/** The run item as the runs table holds it while the run is running. */
function aRunItem(counts: { doneUnits?: number; failedUnits?: number; totalUnits: number }) {
  const runId = sampleUnit().runId;
  return {
    pk: `RUN#${runId}`,
    sk: 'RUN',
    runId,
    pipeline: 'docs',
    trigger: 's3',
    startedAt: '2026-03-01T10:00:02.000Z',
    inputs: [sampleUnit().sourceKey],
    status: 'running',
    finishedAt: null,
    doneUnits: 0,
    failedUnits: 0,
    ...counts,
  };
}

/** Which unit transitions were written, by the update expression each one uses. */
const updates = () => dynamo.commandCalls(UpdateCommand).map((call) => call.args[0].input);
const completions = () => updates().filter((u) => u.UpdateExpression?.includes('#counts'));
const failures = () =>
  updates().filter((u) => u.UpdateExpression === 'SET #status = :status, lastError = :error');
const recordedErrors = () => updates().filter((u) => u.UpdateExpression === 'SET lastError = :error');

function setup() {
  const env = anEnvironment([aPipeline('docs', { workers: { maxReceiveCount: MAX_RECEIVE_COUNT } })]);
  const observability = testObservability();
  const handler = createWorkHandler(testAdapters(env), observability);
  return { handler, observability };
}

async function putParquet(key: string): Promise<Record<string, unknown>[]> {
  const call = s3.commandCalls(PutObjectCommand).find((c) => c.args[0].input.Key === key);
  expect(call, `PutObject ${key}`).toBeDefined();
  const body = call!.args[0].input.Body as Uint8Array;
  const file = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
  return parquetReadObjects({ file });
}

describe('work handler', () => {
  beforeEach(() => {
    // The chunk index starts empty: every chunk is new.
    dynamo.on(BatchGetCommand).resolves({ Responses: {} });
    // No earlier attempt checkpointed: the unit's continuation does not exist.
    dynamo.on(GetCommand).resolves({});
    dynamo.on(BatchWriteCommand).resolves({});
    s3.on(GetObjectCommand).callsFake((input: { Range?: string }) => {
      const [, start, end] = /^bytes=(\d+)-(\d*)$/.exec(input.Range ?? 'bytes=0-') ?? [];
      const bytes = Buffer.from(SOURCE);
      const slice = bytes.subarray(Number(start), end ? Number(end) + 1 : undefined);
      return { Body: streamingBody(slice.toString('utf8')) };
    });
    s3.on(PutObjectCommand).resolves({});
    sagemaker.on(InvokeEndpointCommand).callsFake((input: { Body: Uint8Array }) => {
      const { inputs } = JSON.parse(new TextDecoder().decode(input.Body)) as { inputs: string[] };
      const vectors = inputs.map((_, i) => Array.from({ length: 8 }, (_, d) => (d === i % 8 ? 1 : 0)));
      return { Body: blobBody(JSON.stringify(vectors)), ContentType: 'application/json' };
    });
    sqs.on(SendMessageCommand).resolves({});
  });

  afterEach(() => {
    s3.reset();
    sqs.reset();
    dynamo.reset();
    sagemaker.reset();
  });

  describe('when the unit succeeds', () => {
    it('writes one Parquet part per table, completes the unit and counts its records', async () => {
      runsTable({ totalUnits: 3 });
      const { handler, observability } = setup();
      const unit = sampleUnit();

      const response = await handler(sampleEvent(), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      // The source is read at the version the unit was planned on.
      expect(s3).toHaveReceivedCommandWith(GetObjectCommand, {
        Bucket: SAMPLE_BUCKET,
        Key: 'incoming/docs/my report 2026.jsonl',
        VersionId: '3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY',
      });
      const embeddingsKey = unitPartKey('embeddings', 'docs', unit.runId, unit.unitId);
      const rejectsKey = unitPartKey('rejects', 'docs', unit.runId, unit.unitId);
      expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
        Bucket: SAMPLE_BUCKET,
        Key: embeddingsKey,
        ContentType: 'application/vnd.apache.parquet',
      });
      const rows = await putParquet(embeddingsKey);
      expect([...new Set(rows.map((r) => r.doc_id))]).toEqual(['a', 'b', 'c']);
      expect(rows.filter((r) => r.doc_id === 'b').length).toBeGreaterThan(1);
      const rejects = await putParquet(rejectsKey);
      expect(rejects).toEqual([
        expect.objectContaining({ line: 3n, reason: expect.stringContaining('malformed JSON') }),
      ]);

      expect(completions()).toHaveLength(1);
      expect(completions()[0]!.ExpressionAttributeValues).toMatchObject({
        ':records': 4,
        ':outputKeys': [embeddingsKey, rejectsKey],
      });
      expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
      expect(observability.metricTotals()).toMatchObject({
        UnitsSucceeded: 1,
        RecordsProcessed: 4,
        RecordsRejected: 1,
        EndpointThrottled: 0,
      });
    });

    it('asks for finalize when its completion finishes the run', async () => {
      runsTable({ totalUnits: 3, terminalBefore: 2 });
      const { handler } = setup();

      const response = await handler(sampleEvent(), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(dynamo).toHaveReceivedCommandWith(UpdateCommand, {
        UpdateExpression: 'SET finalizeClaimedBy = :unitId',
      });
      expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
        QueueUrl: FINALIZE_QUEUE_URL,
        MessageBody: JSON.stringify({ kind: 'finalize', runId: sampleUnit().runId }),
      });
    });

    it('does nothing for a redelivery of a unit another delivery already finished', async () => {
      runsTable({ totalUnits: 3, unitStatus: 'succeeded' });
      dynamo.on(GetCommand).resolves({ Item: aRunItem({ doneUnits: 1, totalUnits: 3 }) });
      const { handler, observability } = setup();

      const response = await handler(sampleEvent(), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(s3).not.toHaveReceivedAnyCommand();
      expect(sagemaker).not.toHaveReceivedAnyCommand();
      expect(completions()).toHaveLength(0);
      expect(sqs).not.toHaveReceivedAnyCommand();
      expect(observability.logged('info').join('\n')).toContain('already finished');
    });

    it('asks for finalize again when a redelivery finds every unit done but the run still running', async () => {
      runsTable({ totalUnits: 3, unitStatus: 'succeeded' });
      dynamo.on(GetCommand).resolves({ Item: aRunItem({ doneUnits: 2, failedUnits: 1, totalUnits: 3 }) });
      const { handler } = setup();

      const response = await handler(sampleEvent(), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
        QueueUrl: FINALIZE_QUEUE_URL,
        MessageBody: JSON.stringify({ kind: 'finalize', runId: sampleUnit().runId }),
      });
    });
  });

  describe('when the endpoint fails', () => {
    beforeEach(() => {
      sagemaker.on(InvokeEndpointCommand).rejects(awsError('ServiceUnavailable', 503));
    });

    it('records the error and reports the message for redelivery on an attempt before the last', async () => {
      runsTable({ totalUnits: 3 });
      sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: WORK_QUEUE_URL });
      sqs.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
      const { handler, observability } = setup();
      const event = aWorkEvent([sampleUnit()], MAX_RECEIVE_COUNT - 1);

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(recordedErrors()).toHaveLength(1);
      expect(recordedErrors()[0]!.ExpressionAttributeValues?.[':error']).toContain(
        'endpoint sluice-docs-embed failed 2 attempts',
      );
      expect(failures()).toHaveLength(0);
      expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
      expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
      // It comes back after its backoff (receive count 2: 60 s), not the hour-long visibility timeout.
      expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityBatchCommand, {
        Entries: [{ Id: '0', ReceiptHandle: event.Records[0]!.receiptHandle, VisibilityTimeout: 60 }],
      });
      expect(observability.metricTotals()).toMatchObject({ UnitAttemptsFailed: 1 });
      expect(observability.logged('warn').join('\n')).toContain('SQS will redeliver');
    });

    it.each([MAX_RECEIVE_COUNT, MAX_RECEIVE_COUNT + 1])(
      'marks the unit failed on the last delivery (receive count %i) and asks for finalize when that ends the run',
      async (receiveCount) => {
        runsTable({ totalUnits: 3, terminalBefore: 2 });
        const { handler, observability } = setup();
        const event = aWorkEvent([sampleUnit()], receiveCount);

        const response = await handler(event, aLambdaContext());

        expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
        expect(failures()).toHaveLength(1);
        expect(dynamo).toHaveReceivedCommandWith(UpdateCommand, {
          UpdateExpression: 'ADD terminalUnits :one, failedUnits :one, countedUnitIds :ids',
        });
        expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { QueueUrl: FINALIZE_QUEUE_URL });
        expect(observability.metricTotals()).toMatchObject({ UnitAttemptsFailed: 1, UnitsFailed: 1 });
        expect(observability.logged('error').join('\n')).toContain('last delivery');
      },
    );
  });

  describe('when the source changed since the run was planned', () => {
    it('fails the unit on its first delivery, naming the change, and asks for finalize when that ends the run', async () => {
      runsTable({ totalUnits: 3, terminalBefore: 2 });
      // The pinned version is gone (deleted, or the object replaced with versioning suspended).
      s3.on(GetObjectCommand).rejects(awsError('NoSuchVersion', 404));
      const { handler } = setup();
      const event = aWorkEvent([sampleUnit()], 1);

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(failures()).toHaveLength(1);
      expect(failures()[0]!.ExpressionAttributeValues?.[':error']).toContain(
        `s3://${SAMPLE_BUCKET}/incoming/docs/my report 2026.jsonl was deleted since the run was planned`,
      );
      expect(sagemaker).not.toHaveReceivedAnyCommand();
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { QueueUrl: FINALIZE_QUEUE_URL });
    });
  });

  describe('when AWS fails', () => {
    it('reports the message when the runs table cannot be updated', async () => {
      dynamo.on(UpdateCommand).rejects(awsError('ProvisionedThroughputExceededException', 400));
      const { handler } = setup();
      const event = sampleEvent();

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(s3).not.toHaveReceivedAnyCommand();
    });

    it('records the error when a Parquet part cannot be written, and reports the message', async () => {
      runsTable({ totalUnits: 3 });
      s3.on(PutObjectCommand).rejects(awsError('SlowDown', 503));
      const { handler } = setup();
      const event = sampleEvent();

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(recordedErrors()).toHaveLength(1);
      expect(completions()).toHaveLength(0);
    });
  });

  describe('when a message is not a unit', () => {
    it.each([
      ['not JSON', '{"runId": ', 'work unit message: body is not JSON'],
      ['missing fields', '{"runId":"r-20260301T100002Z-3f9a1c"}', 'work unit message: unitId:'],
      [
        'a bad run id',
        JSON.stringify({ ...sampleUnit(), runId: 'yesterday' }),
        'work unit message: runId: must be a run id',
      ],
      [
        'an unknown pipeline',
        JSON.stringify({ ...sampleUnit(), pipeline: 'nightly' }),
        'pipeline nightly is not configured (known: docs)',
      ],
    ])('fails only that message (%s) and logs why', async (_case, body, reason) => {
      runsTable({ totalUnits: 3 });
      const { handler, observability } = setup();
      const bad = anSqsRecord(body);
      const good = sampleEvent().Records[0]!;

      const response = await handler(sqsEventOf(bad, good), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: bad.messageId }] });
      expect(completions()).toHaveLength(1);
      const errors = observability.logged('error').join('\n');
      expect(errors).toContain('work message is not a unit this deployment can run');
      expect(errors).toContain(reason);
      expect(errors).toContain(bad.messageId);
    });
  });
});
