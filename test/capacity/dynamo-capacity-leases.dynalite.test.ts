import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
} from '../support/local-aws.ts';
import { aRun } from '../support/run-fixtures.ts';
import { capacityLeasesContract } from './capacity-leases-contract.ts';

let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let tables = 0;

beforeAll(async () => {
  server = await startDynalite();
  client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

async function freshTable(): Promise<string> {
  tables += 1;
  const tableName = `sluice-runs-${tables}`;
  await createRunsTable(client, tableName);
  return tableName;
}

capacityLeasesContract('DynamoCapacityLeases on dynalite', async () => ({
  leases: new DynamoCapacityLeases({ doc, tableName: await freshTable() }),
  cleanup: async () => {},
}));

describe('DynamoCapacityLeases', () => {
  it('keeps leases in the runs table under their own keys, out of the runs index', async () => {
    const tableName = await freshTable();
    const leases = new DynamoCapacityLeases({ doc, tableName });
    const runs = new DynamoRunStore({ doc, tableName });
    const run = aRun();
    await runs.createRun(run, []);
    await leases.take({
      runId: run.runId,
      component: 'sluice-embed-model',
      copies: 2,
      takenAt: run.startedAt,
    });

    const item = await doc.send(
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
