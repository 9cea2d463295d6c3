import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DuckDBConnection, DuckDBInstance, StatementType } from '@duckdb/node-api';
import { ConfigError } from '../../shared/errors/errors.ts';
import { TABLE_COLUMNS } from '../../shared/output/parquet-tables.ts';
import { CURRENT_VIEWS } from '../../shared/views/current-views.ts';

/** A statement the sandbox does not run (anything but a SELECT): exit 2 with one line. */
export class QueryRefused extends ConfigError {}

export interface QueryOptions {
  /**
   * Run the SQL without the sandbox: any statement, any file, extension installs.
   * @default false
   */
  readonly unsafe?: boolean;
}

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
 * columns, so queries do not fail on a fresh home. The current-state views
 * (`embeddings_current`, `scores_current`: shared/views) are defined over them. Unless `unsafe`, the SQL runs
 * sandboxed: SELECT statements only, reading nothing but the results folder.
 */
export async function queryLocalTables(
  bucketDir: string,
  sql: string,
  options: QueryOptions = {},
): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const spill = options.unsafe ? undefined : await mkdtemp(path.join(tmpdir(), 'sluice-query-'));
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
    // The current-state views, from the same SQL the deployed stack's Athena views hold.
    for (const view of CURRENT_VIEWS) await connection.run(`CREATE VIEW ${view.name} AS ${view.sql}`);
    if (spill === undefined) {
      const reader = await connection.runAndReadAll(sql);
      return {
        columns: reader.columnNames(),
        rows: reader.getRowObjectsJS().map((row) => toJsonValue(row) as Record<string, unknown>),
      };
    }
    await lockDown(connection, [path.join(path.resolve(bucketDir), 'results'), spill]);
    const reader = await runSelectsOnly(connection, sql);
    return {
      columns: reader.columnNames(),
      rows: reader.getRowObjectsJS().map((row) => toJsonValue(row) as Record<string, unknown>),
    };
  } finally {
    connection.closeSync();
    instance.closeSync();
    if (spill !== undefined) await rm(spill, { recursive: true, force: true });
  }
}

/**
 * DuckDB's own sandbox: files only under `directories` (the results, and a folder to
 * spill to), no external access otherwise (no other file, no network), no extension
 * installed or loaded by itself, and the configuration locked so the SQL cannot `SET`
 * any of it back (DuckDB's "Securing DuckDB" settings, checked against 1.5).
 */
async function lockDown(connection: DuckDBConnection, directories: readonly string[]): Promise<void> {
  const list = directories.map((dir) => sqlString(`${dir}${path.sep}`)).join(', ');
  for (const statement of [
    `SET allowed_directories = [${list}]`,
    `SET temp_directory = ${sqlString(directories.at(-1)!)}`,
    'SET enable_external_access = false',
    'SET autoinstall_known_extensions = false',
    'SET autoload_known_extensions = false',
    'SET allow_community_extensions = false',
    'SET lock_configuration = true',
  ])
    await connection.run(statement);
}

/** The first keyword of each statement that is not a query, to name what was refused. */
function refusedKeyword(sql: string): string {
  const statements = sql
    .replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ')
    .split(';')
    .map((part) => /^\s*([A-Za-z_]+)/.exec(part)?.[1]?.toUpperCase())
    .filter((word): word is string => word !== undefined);
  const queries = new Set(['SELECT', 'WITH', 'FROM', 'VALUES', 'TABLE', 'DESCRIBE', 'SUMMARIZE', 'SHOW']);
  return statements.find((word) => !queries.has(word)) ?? 'non-SELECT';
}

/**
 * Runs the SQL only when every statement in it is a SELECT (DESCRIBE, SHOW and SUMMARIZE
 * are SELECTs too): the allowed results folder must not be written (COPY, EXPORT), nor
 * views dropped or databases attached. The check parses without binding
 * (`json_serialize_sql` serializes SELECT statements only), since binding some
 * statements acts already (EXPORT DATABASE creates its folder); each statement's type is
 * checked again once prepared. Returns the last statement's rows.
 */
async function runSelectsOnly(connection: DuckDBConnection, sql: string) {
  const parsed = await connection.runAndReadAll(`SELECT json_serialize_sql(${sqlString(sql)}) AS j`);
  const tree = JSON.parse(String(parsed.getRowObjectsJS()[0]?.j)) as {
    error?: boolean;
    error_message?: string;
  };
  if (tree.error) {
    if (tree.error_message?.startsWith('Only SELECT'))
      throw new QueryRefused(
        `${refusedKeyword(sql)} statements are not allowed: sluice query runs SELECT only over the results (--unsafe lifts the sandbox)`,
      );
    throw new Error(tree.error_message ?? 'the SQL could not be parsed');
  }
  const extracted = await connection.extractStatements(sql);
  if (extracted.count === 0) throw new QueryRefused('no SQL statement given');
  const prepared = [];
  for (let i = 0; i < extracted.count; i++) {
    const statement = await extracted.prepare(i);
    if (statement.statementType !== StatementType.SELECT)
      throw new QueryRefused(
        `statement ${i + 1} is not a SELECT: sluice query runs SELECT only (--unsafe lifts the sandbox)`,
      );
    prepared.push(statement);
  }
  let reader = await prepared[0]!.runAndReadAll();
  for (const statement of prepared.slice(1)) reader = await statement.runAndReadAll();
  return reader;
}
