import 'aws-sdk-client-mock-vitest/extend';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { comparisonDeadline, createFinalizeHandler } from '../../functions/finalize.ts';
import { emptyCounts, type RunSummary, type UnitCounts } from '../../shared/domain/types.ts';
import { runRowKey, runSummaryKey } from '../../shared/output/keys.ts';
import {
  aFinalizeEvent,
  aLambdaContext,
  anSqsRecord,
  eventSample,
  SAMPLE_BUCKET,
  sqsEventOf,
  testAdapters,
  testObservability,
} from './factories.ts';

const s3 = mockClient(S3Client);
const dynamo = mockClient(DynamoDBDocumentClient);

const NOW = new Date('2026-03-01T10:00:42.000Z');
/** The run of `events/sqs-finalize.json`. */
const sampleEvent = () => eventSample<SQSEvent>('sqs-finalize.json');
const RUN_ID = (JSON.parse(sampleEvent().Records[0]!.body) as { runId: string }).runId;

const awsError = (name: string, status: number) =>
  Object.assign(new Error(`${name} (simulated)`), { name, $metadata: { httpStatusCode: status } });

function aRunItem(status: 'running' | 'succeeded' = 'running') {
  return {
    pk: `RUN#${RUN_ID}`,
    sk: 'RUN',
    runId: RUN_ID,
    pipeline: 'docs',
    trigger: 's3',
    startedAt: '2026-03-01T10:00:02.000Z',
    inputs: ['incoming/docs/my report 2026.jsonl'],
    status,
    finishedAt: null,
    totalUnits: 2,
    doneUnits: 2,
    failedUnits: 0,
  };
}

function aUnitItem(unitId: string, status: string, counts: Partial<UnitCounts> | null) {
  return {
    pk: `RUN#${RUN_ID}`,
    sk: `UNIT#${unitId}`,
    unitId,
    sourceKey: 'incoming/docs/my report 2026.jsonl',
    byteStart: 0,
    byteEnd: 100,
    estCost: 25,
    packedFiles: 0,
    status,
    attempts: 1,
    lastError: status === 'failed' ? 'endpoint sluice-docs-embed failed 7 attempts' : null,
    counts: counts === null ? null : { ...emptyCounts(), ...counts },
    outputKeys: [],
  };
}

function setup() {
  const observability = testObservability();
  const handler = createFinalizeHandler(testAdapters(), { ...observability, now: () => NOW });
  return { handler, observability };
}

const writtenSummary = (): RunSummary => {
  const call = s3
    .commandCalls(PutObjectCommand)
    .find((c) => c.args[0].input.Key === runSummaryKey('docs', RUN_ID));
  return JSON.parse(String(call!.args[0].input.Body)) as RunSummary;
};

describe('finalize handler', () => {
  beforeEach(() => {
    dynamo.on(GetCommand).resolves({ Item: aRunItem() });
    dynamo.on(QueryCommand).resolves({
      Items: [
        aUnitItem('u00000', 'succeeded', { records: 40, rejected: 2, chunks: 55, embedded: 55 }),
        aUnitItem('u00001', 'succeeded', { records: 21, rejected: 3, chunks: 30, embedded: 30 }),
      ],
    });
    dynamo.on(UpdateCommand).resolves({});
    s3.on(PutObjectCommand).resolves({});
    // No run here recorded deleted sources (finalize of an incremental run looks).
    s3.on(GetObjectCommand).rejects(awsError('NoSuchKey', 404));
    // Nor do its units list their ids (the duplicate-id check looks for each unit's list).
    s3.on(HeadObjectCommand).rejects(awsError('NotFound', 404));
  });

  afterEach(() => {
    s3.reset();
    dynamo.reset();
  });

  it('merges the units into the summary, writes summary.json and the runs row, and marks the run succeeded', async () => {
    const { handler, observability } = setup();

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(writtenSummary()).toMatchObject({
      runId: RUN_ID,
      status: 'succeeded',
      finishedAt: NOW.toISOString(),
      counts: { records: 61, rejected: 5, units: 2, failedUnits: 0, chunks: 85, embedded: 85 },
    });
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Bucket: SAMPLE_BUCKET,
      Key: runRowKey('docs', RUN_ID),
      ContentType: 'application/vnd.apache.parquet',
    });
    expect(dynamo).toHaveReceivedCommandWith(UpdateCommand, {
      Key: { pk: `RUN#${RUN_ID}`, sk: 'RUN' },
      ConditionExpression: '#status = :running',
    });
    expect(observability.metricTotals()).toEqual({ RunsSucceeded: 1 });
    expect(observability.logged('info').join('\n')).toContain('run succeeded');
  });

  it('marks the run failed, naming the failed units, when a unit was dead-lettered', async () => {
    dynamo.on(QueryCommand).resolves({
      Items: [aUnitItem('u00000', 'succeeded', { records: 40 }), aUnitItem('u00001', 'failed', null)],
    });
    const { handler, observability } = setup();

    await handler(sampleEvent(), aLambdaContext());

    expect(writtenSummary()).toMatchObject({
      status: 'failed',
      counts: { records: 40, failedUnits: 1 },
      failedUnits: [{ unitId: 'u00001', lastError: 'endpoint sluice-docs-embed failed 7 attempts' }],
    });
    expect(observability.metricTotals()).toEqual({ RunsFailed: 1 });
  });

  it('does nothing for a repeated request of a run that is already finished', async () => {
    dynamo.on(GetCommand).resolves({ Item: aRunItem('succeeded') });
    const { handler, observability } = setup();

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(s3).not.toHaveReceivedAnyCommand();
    expect(dynamo).not.toHaveReceivedCommand(UpdateCommand);
    expect(observability.metricTotals()).toEqual({});
    expect(observability.logged('info').join('\n')).toContain('already finished');
  });

  it('counts nothing when another finalize moved the run first (the conditional write lost)', async () => {
    dynamo.on(UpdateCommand).rejects(awsError('ConditionalCheckFailedException', 400));
    const { handler, observability } = setup();

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(observability.metricTotals()).toEqual({});
  });

  it('reports the request for redelivery while a unit is still open', async () => {
    dynamo.on(QueryCommand).resolves({
      Items: [aUnitItem('u00000', 'succeeded', { records: 40 }), aUnitItem('u00001', 'running', null)],
    });
    const { handler, observability } = setup();
    const event = sampleEvent();

    const response = await handler(event, aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
    expect(s3).not.toHaveReceivedAnyCommand();
    expect(observability.logged('error').join('\n')).toContain('still has 1 unfinished units');
  });

  it.each([
    ['DynamoDB GetItem', () => dynamo.on(GetCommand).rejects(awsError('InternalServerError', 500))],
    [
      'DynamoDB Query',
      () => dynamo.on(QueryCommand).rejects(awsError('ProvisionedThroughputExceededException', 400)),
    ],
    ['S3 PutObject', () => s3.on(PutObjectCommand).rejects(awsError('SlowDown', 503))],
    ['DynamoDB UpdateItem', () => dynamo.on(UpdateCommand).rejects(awsError('InternalServerError', 500))],
  ])('reports only the affected request when %s fails', async (_call, breakIt) => {
    breakIt();
    const { handler } = setup();
    const event = sampleEvent();

    const response = await handler(event, aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
  });

  it('fails a malformed request and a request for a run that does not exist, and logs why', async () => {
    dynamo.on(GetCommand, { Key: { pk: 'RUN#r-20260301T000000Z-000000', sk: 'RUN' } }).resolves({});
    const { handler, observability } = setup();
    const malformed = anSqsRecord('{"kind":"finalise","runId":"r-1"}', { queue: 'sluice-finalize' });
    const missing = aFinalizeEvent('r-20260301T000000Z-000000').Records[0]!;
    const good = sampleEvent().Records[0]!;

    const response = await handler(sqsEventOf(malformed, missing, good), aLambdaContext());

    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(
      [malformed.messageId, missing.messageId].sort(),
    );
    const errors = observability.logged('error').join('\n');
    expect(errors).toContain('finalize message is malformed');
    expect(errors).toContain('finalize message: kind:');
    expect(errors).toContain('run r-20260301T000000Z-000000 does not exist');
    expect(observability.metricTotals()).toEqual({ RunsSucceeded: 1 });
  });
});

describe('comparisonDeadline', () => {
  const contextWith = (remaining: number) => ({
    ...aLambdaContext(),
    getRemainingTimeInMillis: () => remaining,
  });

  it('leaves a third of the remaining time, at least two minutes, after the last source comparison starts', () => {
    const before = Date.now();
    const fifteenMinutes = comparisonDeadline(contextWith(900_000))!;
    expect(fifteenMinutes - before).toBeGreaterThanOrEqual(600_000);
    expect(fifteenMinutes - Date.now()).toBeLessThanOrEqual(600_000);
    const threeMinutes = comparisonDeadline(contextWith(180_000))!;
    expect(threeMinutes - Date.now()).toBeLessThanOrEqual(60_000);
    expect(threeMinutes - before).toBeGreaterThanOrEqual(60_000);
  });

  it('sets none without a Lambda context', () => {
    expect(comparisonDeadline(undefined)).toBeUndefined();
  });
});
