import {
  type AthenaClient,
  type ColumnInfo,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  type QueryExecution,
  type Row,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { SluiceError } from '../../errors/errors.ts';
import { realSleep, type Sleep } from './backoff.ts';

/** A value of an Athena result cell, typed from the column's `ResultSetMetadata` type. */
export type AthenaValue = string | number | boolean | null | AthenaValue[];

export interface AthenaColumn {
  readonly name: string;
  /** Athena's type name as `ColumnInfo.Type` gives it: `varchar`, `bigint`, `double`, `array`, ... */
  readonly type: string;
}

export interface AthenaQueryResult {
  readonly queryExecutionId: string;
  readonly columns: readonly AthenaColumn[];
  /** One object per row, keyed by column name, at most `maxRows` of them. */
  readonly rows: readonly Record<string, AthenaValue>[];
  /** True when the result had more rows than `maxRows` and the rest were not fetched. */
  readonly truncated: boolean;
  /** `Statistics.DataScannedInBytes`: what Athena bills (per TB scanned, 10 MB minimum per query). */
  readonly bytesScanned: number;
  /** `Statistics.TotalExecutionTimeInMillis`, when Athena reports it. */
  readonly executionMillis: number | undefined;
  /** `DDL`, `DML` or `UTILITY`. */
  readonly statementType: string | undefined;
}

export interface AthenaQueryOptions {
  readonly athena: AthenaClient;
  /** The workgroup: its enforced settings give the result location and encryption. */
  readonly workGroup: string;
  /** Glue database unqualified table names resolve in. */
  readonly database: string;
  /** @default 'AwsDataCatalog' */
  readonly catalog?: string;
  /** @default 1000 */
  readonly maxRows?: number;
  /**
   * How long to wait for the query to finish before stopping it (StopQueryExecution, so it
   * scans no further) and failing.
   * @default 300_000 (5 minutes)
   */
  readonly timeoutMs?: number;
  /** First poll delay; each later one doubles up to `maxPollMs`. @default 250 */
  readonly firstPollMs?: number;
  /** @default 5000 */
  readonly maxPollMs?: number;
  readonly sleep?: Sleep;
  /** Milliseconds since the epoch; injected so tests can move time without waiting. @default Date.now */
  readonly now?: () => number;
}

/** A query Athena ended as FAILED or CANCELLED, or could not start; `message` is one line with Athena's reason. */
export class AthenaQueryFailed extends SluiceError {
  constructor(
    message: string,
    readonly queryExecutionId: string | undefined,
    readonly state: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A query still running after `timeoutMs`; it was asked to stop. */
export class AthenaQueryTimedOut extends SluiceError {
  constructor(
    message: string,
    readonly queryExecutionId: string,
  ) {
    super(message);
  }
}

/** GetQueryResults returns at most 1,000 rows a page. */
const PAGE_LIMIT = 1000;
const DEFAULT_CATALOG = 'AwsDataCatalog';

/**
 * (secondary adapter) Runs one SQL statement in a workgroup and returns its rows:
 * StartQueryExecution, GetQueryExecution polled with doubling delays until a final state,
 * then GetQueryResults page by page (NextToken) until `maxRows` rows are read. For a
 * `DML` statement (SELECT) the first row of the first page repeats the column names and
 * is dropped; DDL and utility statements (SHOW, DESCRIBE) have no such row.
 */
export async function runAthenaQuery(sql: string, options: AthenaQueryOptions): Promise<AthenaQueryResult> {
  const where = `workgroup ${options.workGroup}`;
  const id = await startQuery(sql, options, where);
  const execution = await waitForFinalState(id, options, {
    sleep: options.sleep ?? realSleep,
    now: options.now ?? Date.now,
    timeoutMs: options.timeoutMs ?? 300_000,
    maxPollMs: options.maxPollMs ?? 5000,
    where,
  });
  assertSucceeded(execution, id, where);
  const statementType = execution.StatementType;
  const maxRows = options.maxRows ?? 1000;
  const { columns, rows, truncated } = await readResults(
    id,
    options.athena,
    maxRows,
    statementType === 'DML',
  );
  return {
    queryExecutionId: id,
    columns,
    rows,
    truncated,
    bytesScanned: execution.Statistics?.DataScannedInBytes ?? 0,
    executionMillis: execution.Statistics?.TotalExecutionTimeInMillis,
    statementType,
  };
}

/** StartQueryExecution in the workgroup and database; its query execution id. */
async function startQuery(sql: string, options: AthenaQueryOptions, where: string): Promise<string> {
  let id: string | undefined;
  try {
    const started = await options.athena.send(
      new StartQueryExecutionCommand({
        QueryString: sql,
        WorkGroup: options.workGroup,
        QueryExecutionContext: { Database: options.database, Catalog: options.catalog ?? DEFAULT_CATALOG },
      }),
    );
    id = started.QueryExecutionId;
  } catch (error) {
    throw new AthenaQueryFailed(
      `Athena refused the query in ${where} (database ${options.database}): ${oneLine(error)}`,
      undefined,
      undefined,
      { cause: error },
    );
  }
  if (!id)
    throw new AthenaQueryFailed(
      `Athena started no query in ${where}: no QueryExecutionId`,
      undefined,
      undefined,
    );
  return id;
}

/** A query that ended FAILED or CANCELLED is one line with Athena's reason. */
function assertSucceeded(execution: QueryExecution, id: string, where: string): void {
  const state = execution.Status?.State;
  if (state === 'SUCCEEDED') return;
  const reason =
    execution.Status?.StateChangeReason ?? execution.Status?.AthenaError?.ErrorMessage ?? 'no reason given';
  throw new AthenaQueryFailed(
    `Athena query ${id} ${state === 'CANCELLED' ? 'was cancelled' : 'failed'} in ${where}: ${firstLine(reason)}`,
    id,
    state,
  );
}

async function waitForFinalState(
  id: string,
  options: AthenaQueryOptions,
  wait: { sleep: Sleep; now: () => number; timeoutMs: number; maxPollMs: number; where: string },
): Promise<QueryExecution> {
  const deadline = wait.now() + wait.timeoutMs;
  let delay = options.firstPollMs ?? 250;
  for (;;) {
    const { QueryExecution: execution } = await options.athena.send(
      new GetQueryExecutionCommand({ QueryExecutionId: id }),
    );
    const state = execution?.Status?.State;
    if (execution && (state === 'SUCCEEDED' || state === 'FAILED' || state === 'CANCELLED')) return execution;
    if (wait.now() + delay > deadline) {
      // Stop it so a forgotten query does not go on scanning (and billing) after we give up.
      await options.athena
        .send(new StopQueryExecutionCommand({ QueryExecutionId: id }))
        .catch(() => undefined);
      throw new AthenaQueryTimedOut(
        `Athena query ${id} in ${wait.where} still ${state ?? 'unknown'} after ${Math.round(wait.timeoutMs / 1000)} s: stopped it; raise --timeout or narrow the query (filter on pipeline and run_date partitions)`,
        id,
      );
    }
    await wait.sleep(delay);
    delay = Math.min(wait.maxPollMs, delay * 2);
  }
}

async function readResults(
  id: string,
  athena: AthenaClient,
  maxRows: number,
  firstRowIsHeader: boolean,
): Promise<{ columns: AthenaColumn[]; rows: Record<string, AthenaValue>[]; truncated: boolean }> {
  let columns: AthenaColumn[] = [];
  const rows: Record<string, AthenaValue>[] = [];
  let nextToken: string | undefined;
  let first = true;
  do {
    // One extra row on the first page for the header, and one past the limit to learn whether more exist.
    const want = Math.min(PAGE_LIMIT, maxRows - rows.length + (first && firstRowIsHeader ? 1 : 0) + 1);
    const page = await athena.send(
      new GetQueryResultsCommand({
        QueryExecutionId: id,
        MaxResults: want,
        ...(nextToken ? { NextToken: nextToken } : {}),
      }),
    );
    let pageRows: Row[] = page.ResultSet?.Rows ?? [];
    if (first) {
      columns = (page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? []).map(columnOf);
      if (firstRowIsHeader) pageRows = pageRows.slice(1);
      first = false;
    }
    for (const row of pageRows) {
      if (rows.length === maxRows) return { columns, rows, truncated: true };
      rows.push(rowOf(row, columns));
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return { columns, rows, truncated: false };
}

function columnOf(info: ColumnInfo, index: number): AthenaColumn {
  return { name: info.Name ?? info.Label ?? `_col${index}`, type: (info.Type ?? 'varchar').toLowerCase() };
}

function rowOf(row: Row, columns: readonly AthenaColumn[]): Record<string, AthenaValue> {
  const out: Record<string, AthenaValue> = {};
  const data = row.Data ?? [];
  columns.forEach((column, i) => {
    out[column.name] = typedValue(data[i]?.VarCharValue, column.type);
  });
  return out;
}

const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'integer', 'int', 'bigint']);
const FLOAT_TYPES = new Set(['double', 'float', 'real']);

/**
 * Athena returns every cell as text (`VarCharValue`, absent for NULL). Integers and floats
 * become numbers (a bigint beyond 2^53 stays text rather than lose digits); booleans become
 * booleans; an `array` of numbers (an embedding) becomes numbers. Decimals, dates,
 * timestamps, maps and rows stay text as Athena prints them.
 */
export function typedValue(text: string | undefined, type: string): AthenaValue {
  if (text === undefined) return null;
  if (INTEGER_TYPES.has(type)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : text;
  }
  if (FLOAT_TYPES.has(type)) return Number(text);
  if (type === 'boolean') return text === 'true';
  if (type === 'array') return arrayOf(text);
  return text;
}

/** `[0.1, -2.5]` -> numbers; an array with any non-numeric element stays text (its elements may hold commas). */
function arrayOf(text: string): AthenaValue {
  if (!text.startsWith('[') || !text.endsWith(']')) return text;
  const inner = text.slice(1, -1).trim();
  if (inner === '') return [];
  const parts = inner.split(',').map((p) => p.trim());
  const numbers = parts.map((p) => (p === '' ? Number.NaN : Number(p)));
  return numbers.every((n) => !Number.isNaN(n)) ? numbers : text;
}

function firstLine(text: string): string {
  return text.split('\n')[0]?.trim() ?? text;
}

function oneLine(error: unknown): string {
  if (error instanceof Error) return firstLine(`${error.name}: ${error.message}`);
  return String(error);
}
