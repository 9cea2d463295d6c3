import { CfnOutput, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { RECOMMENDATIONS_TABLE_KEYS } from '../../shared/adapters/aws/dynamo-recommendation-lists.ts';
import type { SluiceFunction } from './sluice-function.ts';

/** The variable that names the table to the function that writes users' lists. */
export const RECOMMENDATIONS_TABLE_ENV = 'SLUICE_RECOMMENDATIONS_TABLE';

export interface RecommendationsTableProps {
  /**
   * What happens to the table when the stack is deleted (or stops having recommend pipelines).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Users' top-N lists of recommend pipelines, served by key (docs/recommendations.md,
 * "Serving by key"): one item per user and run (`pk` = `RECS#<pipeline>#<user>`, `sk` =
 * `RUN#<runId>`), written by the similarity stage's units, read with GetItem at the run the
 * runs table says is the pipeline's latest succeeded one. On-demand, point-in-time
 * recovery and AWS-managed encryption, as the runs table.
 */
export class RecommendationsTable extends Construct {
  readonly table: dynamodb.Table;

  /**
   * The table of a stack whose pipelines include a recommend one (undefined otherwise: no
   * table, output, variable or grant), its writer granted, and the `RecommendationsTableName`
   * output that `sluice recommend --deployed` takes (CloudFormation generates the name).
   */
  static forPipelines(
    stack: Construct,
    pipelines: readonly { readonly kind: string }[],
    props: RecommendationsTableProps & { readonly writer: SluiceFunction },
  ): RecommendationsTable | undefined {
    if (!pipelines.some((p) => p.kind === 'recommend')) return undefined;
    const table = new RecommendationsTable(stack, 'RecommendationsTable', props);
    table.grantWriteLists(props.writer);
    new CfnOutput(stack, 'RecommendationsTableName', {
      description: "DynamoDB table of users' recommendation lists (sluice recommend --deployed)",
      value: table.table.tableName,
    });
    return table;
  }

  constructor(scope: Construct, id: string, props: RecommendationsTableProps = {}) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: RECOMMENDATIONS_TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: RECOMMENDATIONS_TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /**
   * The writer: the table's name in the function's environment, `dynamodb:BatchWriteItem`
   * (the adapter's one write call: its users' lists put, their superseded runs' lists
   * deleted) and `dynamodb:Query` (a user's partition, to find those runs) on the table
   * itself, nothing else.
   */
  grantWriteLists(fn: SluiceFunction): void {
    fn.function.addEnvironment(RECOMMENDATIONS_TABLE_ENV, this.table.tableName);
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['dynamodb:BatchWriteItem', 'dynamodb:Query'],
      resourceArns: [this.table.tableArn],
    });
  }
}
