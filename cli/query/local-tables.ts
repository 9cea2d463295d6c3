import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { TABLE_COLUMNS } from '../../shared/output/parquet-tables.ts';

const DUCK_TYPES = {
  string: 'VARCHAR',
  int32: 'INTEGER',
  int64: 'BIGINT',
  double: 'DOUBLE',
  'float-list': 'FLOAT[]',
} as const;

async function hasParquet(dir: string): Promise<boolean> {
  try {
    for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile() && entry.name.endsWith('.parquet')) return true;
    }
  } catch {
    // no folder yet: the table is empty
  }
  return false;
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** JSON-safe values: BIGINT as a number when exact, dates as ISO strings. */
export function toJsonValue(value: unknown): unknown {
  if (typeof value === 'bigint')
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonValue(v)]));
  return value;
}

/**
 * Runs SQL with DuckDB over the local results, with the table names Athena uses. Each
 * table is a view over its Hive-partitioned Parquet parts (`pipeline`, `run_date`
 * columns come from the path); a table with no parts yet is an empty view of the same
 * columns, so queries do not fail on a fresh home.
 */
export async function queryLocalTables(
  bucketDir: string,
  sql: string,
): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    for (const [table, columns] of Object.entries(TABLE_COLUMNS)) {
      const dir = path.join(bucketDir, 'results', table);
      if (await hasParquet(dir)) {
        const glob = path.join(dir, '**', '*.parquet');
        await connection.run(
          `CREATE VIEW ${table} AS SELECT * FROM read_parquet(${sqlString(glob)}, hive_partitioning = true, hive_types = {'pipeline': 'VARCHAR', 'run_date': 'VARCHAR'}, union_by_name = true)`,
        );
      } else {
        const cols = [
          ...columns.map((c) => `NULL::${DUCK_TYPES[c.type]} AS ${c.name}`),
          'NULL::VARCHAR AS pipeline',
          'NULL::VARCHAR AS run_date',
        ];
        await connection.run(`CREATE VIEW ${table} AS SELECT ${cols.join(', ')} WHERE false`);
      }
    }
    const reader = await connection.runAndReadAll(sql);
    return {
      columns: reader.columnNames(),
      rows: reader.getRowObjectsJS().map((row) => toJsonValue(row) as Record<string, unknown>),
    };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
