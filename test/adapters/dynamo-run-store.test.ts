import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { runStoreContract } from '../contract/run-store-contract.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
} from '../support/local-aws.ts';

// One dynalite for the file; a fresh table per test keeps tests independent.
let server: LocalAwsServer;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let tables = 0;

beforeAll(async () => {
  server = await startDynalite();
  client = new DynamoDBClient({ ...localClientConfig(server.endpoint), maxAttempts: 1 });
  doc = DynamoDBDocumentClient.from(client);
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

runStoreContract('DynamoRunStore on dynalite', async () => {
  tables += 1;
  const tableName = `sluice-runs-${tables}`;
  await createRunsTable(client, tableName);
  return { store: new DynamoRunStore({ doc, tableName }), cleanup: async () => {} };
});
