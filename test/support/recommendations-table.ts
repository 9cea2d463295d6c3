import { CreateTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { RECOMMENDATIONS_TABLE_KEYS } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';

/** The stack's recommendations table on a local DynamoDB (dynalite): `pk`/`sk` strings, no index. */
export async function createRecommendationsTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const { partitionKey, sortKey } = RECOMMENDATIONS_TABLE_KEYS;
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: partitionKey, AttributeType: 'S' },
        { AttributeName: sortKey, AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: partitionKey, KeyType: 'HASH' },
        { AttributeName: sortKey, KeyType: 'RANGE' },
      ],
    }),
  );
  // dynalite makes a table ACTIVE within a few ms.
  for (let i = 0; i < 100; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`table ${tableName} did not become ACTIVE`);
}
