import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { aRun } from '../support/run-fixtures.ts';
import { capacityLeasesContract } from './capacity-leases-contract.ts';

// Marshalled as the Lambdas' document client is (functions/config/adapters.ts).
const dynalite = useDynaliteTables({ translateConfig: { marshallOptions: { removeUndefinedValues: true } } });

capacityLeasesContract('DynamoCapacityLeases on dynalite', async () => ({
  leases: new DynamoCapacityLeases({ doc: dynalite.doc, tableName: await dynalite.newTable() }),
  cleanup: async () => {},
}));

describe('DynamoCapacityLeases', () => {
  it('keeps leases in the runs table under their own keys, out of the runs index', async () => {
    const tableName = await dynalite.newTable();
    const leases = new DynamoCapacityLeases({ doc: dynalite.doc, tableName });
    const runs = new DynamoRunStore({ doc: dynalite.doc, tableName });
    const run = aRun();
    await runs.createRun(run, []);
    await leases.take({
      runId: run.runId,
      component: 'sluice-embed-model',
      copies: 2,
      takenAt: run.startedAt,
    });

    const item = await dynalite.doc.send(
      new GetCommand({
        TableName: tableName,
        Key: { pk: 'CAPACITY#sluice-embed-model', sk: `LEASE#${run.runId}` },
      }),
    );
    expect(item.Item).toMatchObject({ runId: run.runId, copies: 2 });
    expect(item.Item?.gsi1pk).toBeUndefined();
    expect((await runs.listRuns()).map((r) => r.runId)).toEqual([run.runId]);
  });
});
