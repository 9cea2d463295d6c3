import 'aws-sdk-client-mock-vitest/extend';
import { HeadObjectCommand, NotFound, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, describe, expect, it } from 'vitest';
import { createDeadLetterHandler } from '../../functions/dead-letter.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import {
  aLambdaContext,
  anSqsRecord,
  eventSample,
  FINALIZE_QUEUE_URL,
  SAMPLE_BUCKET,
  sqsEventOf,
  testAdapters,
  testObservability,
} from '../functions/factories.ts';

const s3 = mockClient(S3Client);
const sqs = mockClient(SQSClient);
const dynamo = mockClient(DynamoDBDocumentClient);

/** The unit of `events/sqs-work-unit.json`, as it arrives in the work DLQ. */
const sampleUnit = (): WorkUnit =>
  JSON.parse(eventSample<{ Records: [{ body: string }] }>('sqs-work-unit.json').Records[0].body) as WorkUnit;
const deadLetter = (body = JSON.stringify(sampleUnit())) =>
  anSqsRecord(body, { receiveCount: 1, queue: 'sluice-work-dlq' });

const conditionFailed = () =>
  Object.assign(new Error('The conditional request failed'), {
    name: 'ConditionalCheckFailedException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
  });

/**
 * The runs table as it is when a dead letter arrives: the unit is `running` (its worker
 * died) or already `failed`, and `terminalBefore` of `totalUnits` units are terminal.
 */
function runsTable(options: { unit: 'running' | 'failed'; terminalBefore: number; totalUnits: number }) {
  const unit = sampleUnit();
  dynamo.on(UpdateCommand).callsFake((input: { UpdateExpression: string; ConditionExpression?: string }) => {
    const expression = input.UpdateExpression;
    if (expression.startsWith('SET #status = :status, lastError')) {
      if (options.unit === 'failed') throw conditionFailed();
      return {};
    }
    if (expression.startsWith('ADD terminalUnits')) {
      if (options.unit === 'failed') throw conditionFailed(); // counted when it failed
      return { Attributes: { terminalUnits: options.terminalBefore + 1, totalUnits: options.totalUnits } };
    }
    if (expression.startsWith('SET finalizeClaimedBy')) {
      if (options.unit === 'failed') throw conditionFailed();
      return {};
    }
    return {};
  });
  dynamo.on(GetCommand).callsFake((input: { Key: { sk: string } }) =>
    input.Key.sk === 'RUN'
      ? {
          Item: {
            runId: unit.runId,
            pipeline: 'docs',
            trigger: 's3',
            startedAt: '2026-03-01T10:00:02.000Z',
            inputs: [unit.sourceKey],
            status: 'running',
            finishedAt: null,
            totalUnits: options.totalUnits,
            doneUnits: options.terminalBefore,
            failedUnits: 0,
          },
        }
      : { Item: { unitId: unit.unitId, status: options.unit } },
  );
}

function setup() {
  const observability = testObservability();
  const handler = createDeadLetterHandler(testAdapters(), observability);
  return { handler, observability };
}

const failUnitCalls = () =>
  dynamo
    .commandCalls(UpdateCommand)
    .map((c) => c.args[0].input)
    .filter((u) => u.UpdateExpression === 'SET #status = :status, lastError = :error');

describe('dead-letter handler (work DLQ consumer)', () => {
  afterEach(() => {
    s3.reset();
    sqs.reset();
    dynamo.reset();
  });

  it('marks failed a unit whose worker died on its last delivery and asks for finalize when that ends the run', async () => {
    runsTable({ unit: 'running', terminalBefore: 2, totalUnits: 3 });
    s3.on(HeadObjectCommand).rejects(new NotFound({ message: 'Not Found', $metadata: {} }));
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
    const { handler, observability } = setup();

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(failUnitCalls()).toHaveLength(1);
    expect(failUnitCalls()[0]).toMatchObject({
      Key: { pk: `RUN#${sampleUnit().runId}`, sk: `UNIT#${sampleUnit().unitId}` },
      ConditionExpression: 'attribute_exists(pk) AND NOT (#status IN (:succeeded, :failed))',
    });
    expect(String(failUnitCalls()[0]!.ExpressionAttributeValues?.[':error'])).toContain(
      'the worker stopped on its last delivery without reporting an error',
    );
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: FINALIZE_QUEUE_URL,
      MessageBody: JSON.stringify({ kind: 'finalize', runId: sampleUnit().runId }),
    });
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
    expect(observability.metricTotals()).toMatchObject({ UnitsDeadLettered: 1 });
  });

  it('replaces a part the dead attempt wrote with an empty one, so its records are in no table', async () => {
    runsTable({ unit: 'running', terminalBefore: 0, totalUnits: 3 });
    const embeddings = unitPartKey('embeddings', 'docs', sampleUnit().runId, sampleUnit().unitId);
    s3.on(HeadObjectCommand).rejects(new NotFound({ message: 'Not Found', $metadata: {} }));
    s3.on(HeadObjectCommand, { Bucket: SAMPLE_BUCKET, Key: embeddings }).resolves({ ContentLength: 4096 });
    s3.on(PutObjectCommand).resolves({});
    const { handler } = setup();

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 1);
    const put = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put.Key).toBe(embeddings);
    const body = put.Body as Uint8Array;
    expect(await parquetReadObjects({ file: body.slice().buffer })).toEqual([]);
    expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
  });

  it('changes nothing for a unit its last delivery already marked failed', async () => {
    runsTable({ unit: 'failed', terminalBefore: 1, totalUnits: 3 });
    s3.on(HeadObjectCommand).rejects(new NotFound({ message: 'Not Found', $metadata: {} }));
    const { handler, observability } = setup();

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
    expect(observability.metricTotals().UnitsDeadLettered).toBeUndefined();
    expect(observability.logged('info').join('\n')).toContain('already terminal');
  });

  it('logs a message that is not a unit whole, counts it and drops it', async () => {
    const { handler, observability } = setup();
    const bad = deadLetter('{"kind":"something else"}');

    const response = await handler(sqsEventOf(bad), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(dynamo).not.toHaveReceivedAnyCommand();
    expect(observability.metricTotals()).toMatchObject({ DeadLettersUnreadable: 1 });
    expect(observability.logged('error').join('\n')).toContain('{\\"kind\\":\\"something else\\"}');
  });

  it('reports the message for another try when the runs table cannot be updated', async () => {
    dynamo.on(UpdateCommand).rejects(
      Object.assign(new Error('Rate exceeded'), {
        name: 'ProvisionedThroughputExceededException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const { handler } = setup();
    const record = deadLetter();

    const response = await handler(sqsEventOf(record), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
  });
});
