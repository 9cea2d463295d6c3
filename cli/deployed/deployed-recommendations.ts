import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoRecommendationLists } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import type { RecommendationLists } from '../../shared/jobs/recommend/recommendation-lists.ts';
import { UsageError } from '../usage.ts';
import type { DeployedTarget } from './deployed-target.ts';

/** Read when `--recommendations-table` is absent. */
export const RECOMMENDATIONS_TABLE_ENV = 'SLUICE_RECOMMENDATIONS_TABLE';

let defaultDoc: DynamoDBDocumentClient | undefined;

/**
 * The stack's recommendations table: `--recommendations-table`, else
 * `SLUICE_RECOMMENDATIONS_TABLE`, else one line saying how to find it (CloudFormation names
 * it, like the runs table; the stack has it only when some pipeline is kind recommend).
 */
export function requireRecommendationsTable(
  flag: string | undefined,
  target: DeployedTarget,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const name = flag ?? env[RECOMMENDATIONS_TABLE_ENV]?.trim();
  if (name) return name;
  throw new UsageError(
    `--deployed needs the stack's recommendations table: --recommendations-table NAME or ${RECOMMENDATIONS_TABLE_ENV}=NAME (the stack's RecommendationsTableName output, present when some pipeline is kind recommend: aws cloudformation describe-stacks --stack-name ${target.stackName} --query "Stacks[0].Outputs[?OutputKey=='RecommendationsTableName'].OutputValue" --output text)`,
  );
}

/**
 * (primary adapter: CLI) -> the deployed recommendations table, read by key through the same
 * DynamoRecommendationLists the work function writes with (GetItem only).
 */
export function deployedRecommendationLists(
  tableName: string,
  doc?: DynamoDBDocumentClient,
): RecommendationLists {
  defaultDoc ??= DynamoDBDocumentClient.from(new DynamoDBClient({}));
  return new DynamoRecommendationLists({ doc: doc ?? defaultDoc, tableName });
}
