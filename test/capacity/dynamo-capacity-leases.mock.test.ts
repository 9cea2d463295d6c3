import 'aws-sdk-client-mock-vitest/extend';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';

const dynamo = mockClient(DynamoDBDocumentClient);
const TABLE = 'sluice-runs';
const leases = () =>
  new DynamoCapacityLeases({
    doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
    tableName: TABLE,
  });
const LEASE = { runId: 'r-1', component: 'm', copies: 1, takenAt: '2026-12-07T03:00:00.000Z' };

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
const throttled = () =>
  Object.assign(new Error('Throughput exceeds the current capacity of your table'), {
    name: 'ProvisionedThroughputExceededException',
    $metadata: { httpStatusCode: 400 },
  });

/** Failure modes dynalite does not produce: anything but a lost condition reaches the caller. */
describe('DynamoCapacityLeases (SDK failure modes)', () => {
  afterEach(() => {
    dynamo.reset();
  });

  it('lets a throttled take fail the plan (no lease, no run going on without one)', async () => {
    dynamo.on(PutCommand).rejects(throttled());
    await expect(leases().take(LEASE)).rejects.toMatchObject({
      name: 'ProvisionedThroughputExceededException',
    });
  });

  it('reads the lease a racing take stored when its own put loses the condition', async () => {
    dynamo.on(PutCommand).rejects(conditionFailed());
    dynamo.on(GetCommand).resolves({ Item: { ...LEASE, copies: 3, pk: 'CAPACITY#m', sk: 'LEASE#r-1' } });
    expect(await leases().take(LEASE)).toEqual({ ...LEASE, copies: 3 });
    expect(dynamo).toHaveReceivedCommandWith(GetCommand, { ConsistentRead: true });
  });

  it('fails a release that is throttled, so finalize is redelivered', async () => {
    dynamo.on(UpdateCommand).rejects(throttled());
    await expect(leases().release('m', 'r-1', LEASE.takenAt, 'finalize')).rejects.toMatchObject({
      name: 'ProvisionedThroughputExceededException',
    });
  });

  it('keeps a later lastReleasedAt: a refused move of the component state is no error', async () => {
    dynamo
      .on(UpdateCommand)
      .resolvesOnce({
        Attributes: { ...LEASE, releasedAt: '2026-12-07T03:05:00.000Z', releasedBy: 'finalize' },
      })
      .rejectsOnce(conditionFailed());
    expect(await leases().release('m', 'r-1', '2026-12-07T03:05:00.000Z', 'finalize')).toMatchObject({
      releasedAt: '2026-12-07T03:05:00.000Z',
    });
    expect(dynamo).toHaveReceivedCommandTimes(UpdateCommand, 2);
  });

  it('fails markReady, markProgress and forget on errors other than a lost condition', async () => {
    dynamo.on(UpdateCommand).rejects(throttled());
    dynamo.on(DeleteCommand).rejects(throttled());
    await expect(leases().markReady('m', 'r-1', LEASE.takenAt)).rejects.toThrow(/Throughput/);
    await expect(leases().markProgress('m', 'r-1', 1, LEASE.takenAt)).rejects.toThrow(/Throughput/);
    await expect(leases().forget('m', 'r-1')).rejects.toThrow(/Throughput/);
  });

  it('fails markRaised on a throttled write (the sweep reports it), and answers false to a lost condition', async () => {
    dynamo.on(UpdateCommand).rejectsOnce(throttled()).rejectsOnce(conditionFailed());
    await expect(leases().markRaised('m', 'r-1', LEASE.takenAt, LEASE.takenAt)).rejects.toThrow(/Throughput/);
    expect(await leases().markRaised('m', 'r-1', LEASE.takenAt, LEASE.takenAt)).toBe(false);
  });
});
