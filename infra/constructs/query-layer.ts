import { Stack } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { TableName } from '../../shared/output/keys.ts';
import { TABLE_COLUMNS as PARQUET_COLUMNS } from '../../shared/output/parquet-tables.ts';
import { CurrentViews } from './current-views.ts';

type Column = glue.CfnTable.ColumnProperty;
const col = (name: string, type: string, comment?: string): Column => ({ name, type, comment });

/** Hive/Athena type of each Parquet column type the writer in shared/output uses. */
const GLUE_TYPE_OF: Readonly<Record<string, string>> = {
  string: 'string',
  int32: 'int',
  int64: 'bigint',
  double: 'double',
  'float-list': 'array<float>',
};

/**
 * Glue columns of a table, derived from the Parquet writer's own column list so the
 * catalog cannot drift from the files. `pipeline` and `run_date` are partition keys
 * (they live in the object key, not the files), so they are not data columns.
 */
export function glueColumnsOf(table: TableName): Column[] {
  return PARQUET_COLUMNS[table].map((c) => {
    const type = GLUE_TYPE_OF[c.type];
    if (!type) throw new Error(`no Glue type for Parquet column ${table}.${c.name} of type ${c.type}`);
    return col(c.name, type);
  });
}

/** Every table the writer in shared/output has a layout for, so a new table cannot be left out of the catalog. */
export const TABLE_NAMES = Object.keys(PARQUET_COLUMNS) as (keyof typeof PARQUET_COLUMNS & TableName)[];

/** First day partition projection enumerates; earlier runs are not queryable. */
export const PROJECTION_START_DATE = '2024-01-01';

export interface QueryLayerProps {
  readonly bucket: s3.IBucket;
  /** Pipeline names, the values of the `pipeline` partition key. */
  readonly pipelineNames: readonly string[];
  /**
   * Glue database name, unique per account and region (`deploymentNames(stackName).glueDatabase`).
   * @default 'sluice'
   */
  readonly databaseName?: string;
  /**
   * Athena workgroup name, unique per account and region (`deploymentNames(stackName).workGroup`).
   * @default 'sluice'
   */
  readonly workGroupName?: string;
}

/**
 * Glue tables over the Parquet results, with partition projection so new
 * `pipeline=`/`run_date=` partitions are queryable at once (no crawler, no
 * MSCK REPAIR), and an Athena workgroup that forces encrypted results into the bucket.
 */
export class QueryLayer extends Construct {
  readonly database: glue.CfnDatabase;
  readonly databaseName: string;
  readonly tables: ReadonlyMap<TableName, glue.CfnTable>;
  readonly workGroup: athena.CfnWorkGroup;
  readonly workGroupName: string;
  /** `s3://<bucket>/athena-results/` */
  readonly resultLocation: string;

  constructor(scope: Construct, id: string, props: QueryLayerProps) {
    super(scope, id);
    if (props.pipelineNames.length === 0) throw new Error('QueryLayer needs at least one pipeline name');
    const account = Stack.of(this).account;
    const bucketName = props.bucket.bucketName;
    this.databaseName = props.databaseName ?? 'sluice';
    this.workGroupName = props.workGroupName ?? 'sluice';

    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: account,
      databaseInput: {
        name: this.databaseName,
        description: `Sluice results: ${TABLE_NAMES.join(', ')} (Parquet, partition projection)`,
      },
    });

    const tables = new Map<TableName, glue.CfnTable>();
    for (const name of TABLE_NAMES) {
      const location = `s3://${bucketName}/results/${name}/`;
      const table = new glue.CfnTable(this, `Table-${name}`, {
        catalogId: account,
        databaseName: this.databaseName,
        tableInput: {
          name,
          description: `Sluice ${name} (Parquet under results/${name}/)`,
          tableType: 'EXTERNAL_TABLE',
          partitionKeys: [
            col('pipeline', 'string'),
            col('run_date', 'string', 'UTC date of the run, yyyy-MM-dd'),
          ],
          parameters: {
            EXTERNAL: 'TRUE',
            classification: 'parquet',
            'parquet.compression': 'SNAPPY',
            'projection.enabled': 'true',
            'projection.pipeline.type': 'enum',
            'projection.pipeline.values': props.pipelineNames.join(','),
            'projection.run_date.type': 'date',
            'projection.run_date.format': 'yyyy-MM-dd',
            'projection.run_date.range': `${PROJECTION_START_DATE},NOW`,
            'projection.run_date.interval': '1',
            'projection.run_date.interval.unit': 'DAYS',
            // Athena fills ${pipeline} and ${run_date} itself; they are not template literals.
            'storage.location.template': `${location}pipeline=\${pipeline}/run_date=\${run_date}/`,
          },
          storageDescriptor: {
            columns: glueColumnsOf(name),
            location,
            inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
            outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
            serdeInfo: {
              serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
              parameters: { 'serialization.format': '1' },
            },
          },
        },
      });
      table.node.addDependency(this.database);
      tables.set(name, table);
    }
    this.tables = tables;
    new CurrentViews(this, 'CurrentViews', {
      databaseName: this.databaseName,
      dependsOn: [...tables.values()],
    });

    this.resultLocation = `s3://${bucketName}/athena-results/`;
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: 'Sluice queries; results are encrypted and kept under athena-results/',
      state: 'ENABLED',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        resultConfiguration: {
          outputLocation: this.resultLocation,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
        },
      },
    });
  }
}
