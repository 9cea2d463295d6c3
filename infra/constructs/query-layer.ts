import { Stack } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { TableName } from '../../shared/output/keys.ts';
import {
  TABLE_COLUMNS as PARQUET_COLUMNS,
  passThroughColumnsOf,
} from '../../shared/output/parquet-tables.ts';
import { CurrentViews } from './current-views.ts';

type Column = glue.CfnTable.ColumnProperty;
const col = (name: string, type: string, comment?: string): Column => ({ name, type, comment });

/** Hive/Athena type of each Parquet column type the writer in shared/output uses. */
const GLUE_TYPE_OF: Readonly<Record<string, string>> = {
  string: 'string',
  int32: 'int',
  int64: 'bigint',
  double: 'double',
  boolean: 'boolean',
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

/**
 * The `scores` columns the pipelines' `output.passThrough` add (the writer's
 * passThroughColumnsOf, typed the same), each name once: parts of every pipeline share
 * one table, so a name two pipelines type differently is refused at synth.
 */
export function passThroughGlueColumns(
  pipelines: readonly { readonly name: string; readonly kind: string; readonly output?: unknown }[],
): Column[] {
  const typed = new Map<string, { type: string; pipeline: string }>();
  for (const pipeline of pipelines) {
    if (pipeline.kind !== 'score') continue;
    const passThrough =
      (pipeline.output as { passThrough?: { column: string; type: string }[] }).passThrough ?? [];
    for (const c of passThroughColumnsOf(passThrough)) {
      const type = GLUE_TYPE_OF[c.type]!;
      const seen = typed.get(c.name);
      if (seen && seen.type !== type)
        throw new Error(
          `output.passThrough column ${c.name} is ${seen.type} in pipeline ${seen.pipeline} and ${type} in pipeline ${pipeline.name}: the scores table has one type per column`,
        );
      typed.set(c.name, { type, pipeline: seen?.pipeline ?? pipeline.name });
    }
  }
  return [...typed].map(([name, { type }]) => col(name, type, 'output.passThrough'));
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
  /** `scores` columns after the table's own: the pipelines' pass-through columns ({@link passThroughGlueColumns}). @default none */
  readonly scoresPassThrough?: readonly Column[];
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
            columns: [...glueColumnsOf(name), ...(name === 'scores' ? (props.scoresPassThrough ?? []) : [])],
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
