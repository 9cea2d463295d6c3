import 'aws-sdk-client-mock-vitest/extend';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  InvokeEndpointCommand,
  SageMakerRuntimeClient,
  ValidationError,
} from '@aws-sdk/client-sagemaker-runtime';
import { ChangeMessageVisibilityBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkHandler } from '../../functions/work.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import {
  aLambdaContext,
  anEnvironment,
  aPipeline,
  aWorkEvent,
  eventSample,
  streamingBody,
  testAdapters,
  testObservability,
  WORK_QUEUE_URL,
} from '../functions/factories.ts';

const s3 = mockClient(S3Client);
const sqs = mockClient(SQSClient);
const dynamo = mockClient(DynamoDBDocumentClient);
const sagemaker = mockClient(SageMakerRuntimeClient);

const MAX_RECEIVE_COUNT = 3;
const sampleUnit = (): WorkUnit =>
  JSON.parse(eventSample<SQSEvent>('sqs-work-unit.json').Records[0]!.body) as WorkUnit;
const noCapacity = () =>
  new ValidationError({
    message:
      'Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress (if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API.',
    $metadata: { httpStatusCode: 400 },
  });

/** The runs table as a unit's delivery sees it: the unit exists and is pending. */
function runsTable() {
  dynamo.on(UpdateCommand).callsFake((input: { UpdateExpression: string; Key: { sk: string } }) => {
    if (input.UpdateExpression.startsWith('SET attempts')) {
      const unit = sampleUnit();
      return {
        Attributes: {
          sk: input.Key.sk,
          unitId: unit.unitId,
          sourceKey: unit.sourceKey,
          byteStart: unit.byteStart,
          byteEnd: unit.byteEnd,
          estCost: unit.estCost,
          packedFiles: 0,
          status: 'running',
          attempts: 1,
          lastError: null,
          counts: null,
          outputKeys: [],
        },
      };
    }
    if (input.UpdateExpression.startsWith('ADD terminalUnits'))
      return { Attributes: { terminalUnits: 1, totalUnits: 3 } };
    return {};
  });
}

const updates = () => dynamo.commandCalls(UpdateCommand).map((call) => call.args[0].input);

describe('work handler on a cold endpoint', () => {
  beforeEach(() => {
    runsTable();
    dynamo.on(BatchGetCommand).resolves({ Responses: {} });
    dynamo.on(GetCommand).resolves({});
    s3.on(GetObjectCommand).callsFake(() => ({
      Body: streamingBody('{"id":"a","text":"Alpha bravo charlie."}\n'),
    }));
    s3.on(PutObjectCommand).resolves({});
    // The unit wrote no part (nothing to take back when it fails).
    s3.on(HeadObjectCommand).rejects(
      Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } }),
    );
    sagemaker.on(InvokeEndpointCommand).rejects(noCapacity());
    sqs.on(SendMessageCommand).resolves({});
  });
  afterEach(() => {
    s3.reset();
    sqs.reset();
    dynamo.reset();
    sagemaker.reset();
  });

  const handlerOf = () => {
    const env = anEnvironment([aPipeline('docs', { workers: { maxReceiveCount: MAX_RECEIVE_COUNT } })]);
    const observability = testObservability();
    return { handler: createWorkHandler(testAdapters(env), observability), observability };
  };

  it('sends the unit back with DelaySeconds and reports the delivery handled, even on its last receive', async () => {
    const { handler, observability } = handlerOf();
    const before = Date.now();

    const response = await handler(aWorkEvent([sampleUnit()], MAX_RECEIVE_COUNT), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(sagemaker).toHaveReceivedCommandTimes(InvokeEndpointCommand, 1);
    expect(sagemaker).toHaveReceivedCommandWith(InvokeEndpointCommand, {
      EndpointName: 'sluice-docs-embed',
      InferenceComponentName: 'sluice-docs-embed-model',
    });
    const sends = sqs.commandCalls(SendMessageCommand).map((c) => c.args[0].input);
    expect(sends).toHaveLength(1);
    expect(sends[0]).toMatchObject({ QueueUrl: WORK_QUEUE_URL, DelaySeconds: 20 });
    const resent = JSON.parse(sends[0]!.MessageBody!) as WorkUnit;
    expect(resent).toEqual({ ...sampleUnit(), warmingSince: resent.warmingSince, warmingDeferrals: 1 });
    expect(resent.warmingSince).toBeGreaterThanOrEqual(before);
    // Not failed, not rescheduled by visibility: the message is simply deleted.
    expect(updates().some((u) => u.UpdateExpression?.includes(':status'))).toBe(false);
    expect(sqs).not.toHaveReceivedCommand(ChangeMessageVisibilityBatchCommand);
    expect(observability.metricTotals()).toMatchObject({ UnitsWaitingForCapacity: 1 });
    expect(observability.metricTotals().UnitAttemptsFailed ?? 0).toBe(0);
  });

  it('fails the unit for good once it has waited past the warm-up limit, and deletes the message', async () => {
    const { handler, observability } = handlerOf();
    const waiting = { ...sampleUnit(), warmingSince: Date.now() - 1801_000, warmingDeferrals: 6 };

    const response = await handler(aWorkEvent([waiting], 1), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(sqs.commandCalls(SendMessageCommand).map((c) => c.args[0].input.QueueUrl)).not.toContain(
      WORK_QUEUE_URL,
    );
    const failed = updates().find((u) => u.UpdateExpression === 'SET #status = :status, lastError = :error');
    expect(failed?.ExpressionAttributeValues).toMatchObject({
      ':error':
        "endpoint sluice-docs-embed had no capacity for 1800 s (capacity.warmupLimitSeconds); check the capacity sweeper and the endpoint's events",
    });
    expect(observability.metricTotals()).toMatchObject({ UnitsFailed: 1 });
  });
});
