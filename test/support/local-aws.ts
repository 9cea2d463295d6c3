import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { buildApp } from 'fauxqs';
import { RUNS_BY_STARTED_AT_INDEX, RUNS_TABLE_KEYS } from '../../shared/adapters/aws/dynamo-run-store.ts';

/** A local server speaking an AWS API on loopback, started and stopped by the test that needs it. */
export interface LocalAwsServer {
  /** `http://127.0.0.1:<port>`, for a client's `endpoint`. */
  readonly endpoint: string;
  stop(): Promise<void>;
}

/** Settings for SDK clients pointed at a local server: fake credentials, never the real AWS. */
export function localClientConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  } as const;
}

/** dynalite (DynamoDB API, in memory) on 127.0.0.1 and a free port; tables are ACTIVE at once. */
export async function startDynalite(): Promise<LocalAwsServer> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/**
 * fauxqs (SQS and S3 on one port, in memory) on 127.0.0.1 and a free port, logger off.
 * `startFauxqs()` always binds 0.0.0.0, so this builds the same app and listens on loopback
 * only. Queue URLs then take the request's host (`http://127.0.0.1:<port>/000000000000/<name>`),
 * so SQS clients need no DNS tricks; S3 clients need `forcePathStyle: true`.
 */
export async function startFauxqsServer(): Promise<LocalAwsServer> {
  const app = buildApp({ logger: false });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { endpoint: address, stop: () => app.close() };
}

/** Creates the runs table exactly as DynamoRunStore expects it, and waits until it is ACTIVE. */
export async function createRunsTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const { partitionKey, sortKey } = RUNS_TABLE_KEYS;
  const index = RUNS_BY_STARTED_AT_INDEX;
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: partitionKey, AttributeType: 'S' },
        { AttributeName: sortKey, AttributeType: 'S' },
        { AttributeName: index.partitionKey, AttributeType: 'S' },
        { AttributeName: index.sortKey, AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: partitionKey, KeyType: 'HASH' },
        { AttributeName: sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: index.indexName,
          KeySchema: [
            { AttributeName: index.partitionKey, KeyType: 'HASH' },
            { AttributeName: index.sortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...index.projectedAttributes] },
        },
      ],
    }),
  );
  // waitUntilTableExists polls every 20 s at least; dynalite is ready at once or within a few ms.
  for (let i = 0; i < 100; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await delay(20);
  }
  throw new Error(`table ${tableName} did not become ACTIVE`);
}
