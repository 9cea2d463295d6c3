import 'aws-sdk-client-mock-vitest/extend';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type BatchWriteCommandInput,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { TransitionConflict } from '../../shared/errors/errors.ts';
import { aRunWithUnits, someCounts } from '../support/run-fixtures.ts';

const dynamo = mockClient(DynamoDBDocumentClient);
const TABLE = 'sluice-runs';

function makeStore() {
  const delays: number[] = [];
  const store = new DynamoRunStore({
    doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
    tableName: TABLE,
    maxBatchWriteAttempts: 3,
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0.5,
  });
  return { store, delays };
}

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
const putsIn = (call: { args: [{ input: unknown }] }) =>
  (call.args[0].input as BatchWriteCommandInput).RequestItems?.[TABLE] ?? [];

describe('DynamoRunStore (SDK calls)', () => {
  afterEach(() => {
    dynamo.reset();
  });

  describe('createRun', () => {
    it('writes units in batches of 25, then the run item only if it does not exist yet', async () => {
      dynamo.on(BatchWriteCommand).resolves({});
      dynamo.on(PutCommand).resolves({});
      const { run, units } = aRunWithUnits(60);

      await makeStore().store.createRun(run, units);

      const batches = dynamo.commandCalls(BatchWriteCommand).map(putsIn);
      expect(batches.map((b) => b.length).sort()).toEqual([10, 25, 25]);
      expect(batches.flat().map((r) => r.PutRequest?.Item?.sk)).toHaveLength(60);
      expect(dynamo).toHaveReceivedCommandWith(PutCommand, {
        TableName: TABLE,
        ConditionExpression: 'attribute_not_exists(pk)',
        Item: expect.objectContaining({
          pk: `RUN#${run.runId}`,
          sk: 'RUN',
          gsi1pk: 'RUNS',
          gsi1sk: `${run.startedAt}#${run.runId}`,
          totalUnits: 60,
          terminalUnits: 0,
        }),
      });
      // The run item goes last, so a run is never visible without all of its units.
      const order = dynamo.calls().map((c) => c.args[0].constructor.name);
      expect(order.at(-1)).toBe('PutCommand');
    });

    it('resends the items DynamoDB leaves unprocessed, with backoff', async () => {
      const { run, units } = aRunWithUnits(3);
      const unit2 = { PutRequest: { Item: { pk: `RUN#${run.runId}`, sk: 'UNIT#u0002' } } };
      dynamo
        .on(BatchWriteCommand)
        .resolvesOnce({ UnprocessedItems: { [TABLE]: [unit2] } })
        .resolves({});
      dynamo.on(PutCommand).resolves({});
      const { store, delays } = makeStore();

      await store.createRun(run, units);

      expect(dynamo).toHaveReceivedCommandTimes(BatchWriteCommand, 2);
      expect(putsIn(dynamo.commandCalls(BatchWriteCommand)[1]!)).toEqual([unit2]);
      expect(delays).toEqual([25]);
    });

    it('gives up when items stay unprocessed, without writing the run item', async () => {
      const { run, units } = aRunWithUnits(2);
      dynamo.on(BatchWriteCommand).callsFake((input: BatchWriteCommandInput) => ({
        UnprocessedItems: input.RequestItems,
      }));

      await expect(makeStore().store.createRun(run, units)).rejects.toThrow(
        'DynamoDB left 2 unit items unprocessed in sluice-runs after 3 attempts',
      );
      expect(dynamo).not.toHaveReceivedCommand(PutCommand);
    });

    it('refuses a run id that already exists', async () => {
      dynamo.on(BatchWriteCommand).resolves({});
      dynamo.on(PutCommand).rejects(conditionFailed());
      const { run, units } = aRunWithUnits(1);

      await expect(makeStore().store.createRun(run, units)).rejects.toBeInstanceOf(TransitionConflict);
    });

    it('refuses units that do not add up to the run', async () => {
      const { run, units } = aRunWithUnits(2);
      const { store } = makeStore();

      await expect(store.createRun({ ...run, totalUnits: 3 }, units)).rejects.toThrow('totalUnits=3');
      await expect(store.createRun(run, [units[0]!, units[0]!])).rejects.toThrow('appears twice');
      expect(dynamo).not.toHaveReceivedAnyCommand();
    });
  });

  describe('completeUnit', () => {
    const result = { counts: someCounts(), actualCost: 10, outputKeys: ['results/a.parquet'] };

    it('marks the unit, counts it idempotently, and claims the finish when it was the last', async () => {
      dynamo
        .on(UpdateCommand)
        .resolvesOnce({})
        .resolvesOnce({ Attributes: { terminalUnits: 4, totalUnits: 4 } })
        .resolvesOnce({});

      expect(await makeStore().store.completeUnit('r-1', 'u0003', result)).toEqual({
        recorded: true,
        finishedRun: true,
        unitStatus: 'succeeded',
      });

      expect(dynamo).toHaveReceivedNthCommandWith(UpdateCommand, 1, {
        Key: { pk: 'RUN#r-1', sk: 'UNIT#u0003' },
        ConditionExpression: 'attribute_exists(pk) AND NOT (#status IN (:succeeded, :failed))',
      });
      expect(dynamo).toHaveReceivedNthCommandWith(UpdateCommand, 2, {
        Key: { pk: 'RUN#r-1', sk: 'RUN' },
        UpdateExpression: 'ADD terminalUnits :one, doneUnits :one, countedUnitIds :ids',
        ConditionExpression: 'attribute_exists(pk) AND NOT contains(countedUnitIds, :unitId)',
      });
      expect(dynamo).toHaveReceivedNthCommandWith(UpdateCommand, 3, {
        Key: { pk: 'RUN#r-1', sk: 'RUN' },
        ConditionExpression: 'terminalUnits = totalUnits AND attribute_not_exists(finalizeClaimedBy)',
      });
    });

    it('does not try to claim the finish while units remain', async () => {
      dynamo
        .on(UpdateCommand)
        .resolvesOnce({})
        .resolvesOnce({ Attributes: { terminalUnits: 2, totalUnits: 4 } });

      expect(await makeStore().store.completeUnit('r-1', 'u0001', result)).toEqual({
        recorded: true,
        finishedRun: false,
        unitStatus: 'succeeded',
      });
      expect(dynamo).toHaveReceivedCommandTimes(UpdateCommand, 2);
    });

    it('lets failures other than a lost condition through', async () => {
      dynamo.on(UpdateCommand).rejects(
        Object.assign(new Error('Throughput exceeds the current capacity'), {
          name: 'ThrottlingException',
        }),
      );

      await expect(makeStore().store.completeUnit('r-1', 'u0001', result)).rejects.toThrow(
        'Throughput exceeds the current capacity',
      );
    });

    it('reports a unit that does not exist as a conflict', async () => {
      dynamo.on(UpdateCommand).rejects(conditionFailed());
      dynamo.on(GetCommand).resolves({});

      await expect(makeStore().store.completeUnit('r-1', 'u9999', result)).rejects.toThrow(
        'unit u9999 of run r-1 does not exist',
      );
    });
  });
});
