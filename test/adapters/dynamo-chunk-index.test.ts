import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { chunkIndexContract } from '../contract/chunk-index-contract.ts';
import {
  createRunsTable,
  type LocalAwsServer,
  localClientConfig,
  startDynalite,
} from '../support/local-aws.ts';

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

chunkIndexContract('DynamoChunkIndex on dynalite', async () => {
  tables += 1;
  const tableName = `sluice-chunks-${tables}`;
  await createRunsTable(client, tableName);
  return { index: new DynamoChunkIndex({ doc, tableName }), cleanup: async () => {} };
});
