import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { RUNS_BY_STARTED_AT_INDEX, RUNS_TABLE_KEYS } from '../../shared/adapters/aws/dynamo-run-store.ts';

export interface RunsTableProps {
  /**
   * What happens to the table when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Runs, their units and chunk content hashes, in one table (`pk`/`sk`), with the
 * `byStartedAt` index (`gsi1pk`/`gsi1sk`) that lists recent runs without a scan.
 */
export class RunsTable extends Construct {
  static readonly startedAtIndexName = RUNS_BY_STARTED_AT_INDEX.indexName;
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: RunsTableProps = {}) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: RUNS_TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: RUNS_TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: RunsTable.startedAtIndexName,
      partitionKey: { name: RUNS_BY_STARTED_AT_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: RUNS_BY_STARTED_AT_INDEX.sortKey, type: dynamodb.AttributeType.STRING },
      // Only what listing runs reads: the run item's growing set of counted unit ids stays out of the index.
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: [...RUNS_BY_STARTED_AT_INDEX.projectedAttributes],
    });
  }
}
