import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createDeadLetterHandler } from '../../functions/dead-letter.ts';
import { createFinalizeHandler } from '../../functions/finalize.ts';
import { createPlanHandler } from '../../functions/plan.ts';
import { createWorkHandler } from '../../functions/work.ts';
import {
  type FailedDelivery,
  type Redelivery,
  redeliveryDelaySeconds,
} from '../../shared/adapters/aws/sqs-redelivery.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import { aLambdaContext, anSqsRecord, sqsEventOf, testObservability } from './factories.ts';

/** A redelivery that records what the handler asked it to postpone. */
function recordingRedelivery(): Redelivery & { readonly postponed: FailedDelivery[] } {
  const postponed: FailedDelivery[] = [];
  return {
    postponed,
    delayFor: (receiveCount) => redeliveryDelaySeconds(receiveCount),
    async postpone(failed) {
      postponed.push(...failed);
      return { postponed: failed.length, errors: [] };
    },
  };
}

/** Ports that must not be reached: the records below fail or succeed before any I/O. */
const unreachable = new Proxy({} as never, {
  get: (_target, property) => {
    if (property === 'then') return undefined;
    return () => {
      throw new Error(`unexpected call to ${String(property)}`);
    };
  },
});

const arnOf = (queue: string) => `arn:aws:sqs:us-east-1:123456789012:${queue}`;

describe('failed SQS messages come back after their own backoff', () => {
  it('plan: postpones exactly the failed ingest message, with its receive count, not the S3 test event', async () => {
    const redelivery = recordingRedelivery();
    const handler = createPlanHandler(
      {
        pipelines: new Map(),
        bucket: 'b',
        store: unreachable,
        runs: unreachable,
        queue: unreachable,
        redelivery,
      },
      testObservability(),
    );
    const testEvent = anSqsRecord(JSON.stringify({ Event: 's3:TestEvent', Service: 'Amazon S3' }), {
      queue: 'sluice-ingest',
    });
    const garbage = anSqsRecord('not an S3 notification', { queue: 'sluice-ingest', receiveCount: 3 });
    const response = (await handler(sqsEventOf(testEvent, garbage), aLambdaContext())) as SQSBatchResponse;

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: garbage.messageId }]);
    expect(redelivery.postponed).toEqual([
      { queueArn: arnOf('sluice-ingest'), receiptHandle: garbage.receiptHandle, receiveCount: 3 },
    ]);
  });

  it('work: postpones a failed unit message', async () => {
    const redelivery = recordingRedelivery();
    const handler = createWorkHandler(
      {
        pipelines: new Map(),
        store: unreachable,
        runs: unreachable,
        queue: unreachable,
        tokenCounter: unreachable,
        endpointsFor: () => unreachable,
        redelivery,
      },
      testObservability(),
    );
    const record = anSqsRecord('{"not":"a unit"}', { receiveCount: 2 });
    const response = await handler(sqsEventOf(record), aLambdaContext());

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: record.messageId }]);
    expect(redelivery.postponed).toEqual([
      { queueArn: arnOf('sluice-work'), receiptHandle: record.receiptHandle, receiveCount: 2 },
    ]);
  });

  it('finalize and dead-letter: postpone a failed message, never one that was handled (an unreadable dead letter is dropped)', async () => {
    const redelivery = recordingRedelivery();
    const finalize = createFinalizeHandler(
      { store: unreachable, runs: unreachable, redelivery },
      testObservability(),
    );
    const request = anSqsRecord('{"kind":"finalize"}', { queue: 'sluice-finalize' });
    await finalize(sqsEventOf(request), aLambdaContext());
    expect(redelivery.postponed.map((d) => d.receiptHandle)).toEqual([request.receiptHandle]);

    // A runs table that is down: the dead letter fails and comes back after its backoff.
    const runs = new Proxy({} as RunStore, {
      get: () => async () => {
        throw new Error('runs table unavailable (simulated)');
      },
    });
    const deadLetter = createDeadLetterHandler(
      { store: unreachable, runs, queue: unreachable, redelivery },
      testObservability(),
    );
    const unit = JSON.stringify({ runId: 'r-20261207T000000Z-abc123', unitId: 'u-0001', pipeline: 'docs' });
    const dead = anSqsRecord(unit, { queue: 'sluice-work-dlq', receiveCount: 4 });
    const unreadable = anSqsRecord('not a unit', { queue: 'sluice-work-dlq' });
    const event: SQSEvent = sqsEventOf(dead, unreadable);
    const response = await deadLetter(event, aLambdaContext());
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: dead.messageId }]);
    expect(redelivery.postponed.at(-1)).toEqual({
      queueArn: arnOf('sluice-work-dlq'),
      receiptHandle: dead.receiptHandle,
      receiveCount: 4,
    });
  });
});
