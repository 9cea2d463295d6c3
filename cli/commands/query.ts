import { describeCost, queryDeployed } from '../deployed/deployed-query.ts';
import { DEPLOYED_OPTIONS, deployedTarget, refuseMixedFlags } from '../deployed/deployed-target.ts';
import { openCheckedHome } from '../home.ts';
import { QueryRefused, queryLocalTables } from '../query/local-tables.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';

function formatCell(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (Array.isArray(value))
    return value.length > 4
      ? `[${value
          .slice(0, 4)
          .map((v) => (typeof v === 'number' ? v.toFixed(4) : String(v)))
          .join(', ')}, … ${value.length} values]`
      : JSON.stringify(value);
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Rows as an aligned text table under a header and a rule. */
function printTable(
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
  io: CommandIo,
): void {
  const table = [[...columns], ...rows.map((row) => columns.map((c) => formatCell(row[c])))];
  const widths = columns.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  table.forEach((row, r) => {
    io.out(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
    if (r === 0) io.out(widths.map((w) => '-'.repeat(w)).join('  '));
  });
}

const rowCount = (n: number) => `${n} row${n === 1 ? '' : 's'}`;

/** A positive whole number flag, or one line naming it. */
function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${flag} must be a whole number above 0, got ${value}`);
  return n;
}

export async function queryCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    home: { type: 'string' },
    json: { type: 'boolean', default: false },
    unsafe: { type: 'boolean', default: false },
    ...DEPLOYED_OPTIONS,
    'max-rows': { type: 'string' },
    timeout: { type: 'string' },
  });
  if (positionals.length !== 1)
    throw new UsageError('give exactly one SQL string, e.g. sluice query "select count(*) from embeddings"');
  refuseMixedFlags(values, ['max-rows', 'timeout']);
  if (values.deployed) return queryDeployedCommand(positionals[0]!, values, io);
  const home = await openCheckedHome(values.home, 'read');
  let result: Awaited<ReturnType<typeof queryLocalTables>>;
  try {
    result = await queryLocalTables(home.bucketDir, positionals[0]!, { unsafe: values.unsafe });
  } catch (error) {
    if (error instanceof QueryRefused) throw new UsageError(`query refused: ${error.message}`);
    throw new UsageError(`query failed: ${(error as Error).message.split('\n')[0]}`);
  }
  if (values.json) {
    io.out(JSON.stringify(result.rows));
    return 0;
  }
  printTable(result.columns, result.rows, io);
  io.out(`(${rowCount(result.rows.length)})`);
  return 0;
}

/**
 * `sluice query "SQL" --deployed`: Athena in the stack's workgroup and Glue database. Rows
 * go to stdout as for a local query; what Athena scanned (and so billed) goes to stderr
 * with `--json`, after the table without it. A query Athena fails is exit 1 with its reason.
 */
async function queryDeployedCommand(
  sql: string,
  values: {
    readonly json: boolean;
    readonly unsafe: boolean;
    readonly stack?: string;
    readonly 'runs-table'?: string;
    readonly 'max-rows'?: string;
    readonly timeout?: string;
  },
  io: CommandIo,
): Promise<number> {
  const target = deployedTarget(values);
  const maxRows = positiveInt('max-rows', values['max-rows'], 1000);
  const timeoutMs = positiveInt('timeout', values.timeout, 300) * 1000;
  // A query Athena refuses, fails or cancels throws a one-line error: cli/main.ts prints it, exit 1.
  const { result, cost } = await queryDeployed(sql, target, { maxRows, timeoutMs, unsafe: values.unsafe });
  const more = result.truncated ? `; more rows than --max-rows ${maxRows}, the rest not fetched` : '';
  if (values.json) {
    io.out(JSON.stringify(result.rows));
    io.err(`${describeCost(cost)}; query ${result.queryExecutionId}${more}`);
    return 0;
  }
  printTable(
    result.columns.map((c) => c.name),
    result.rows,
    io,
  );
  io.out(`(${rowCount(result.rows.length)}${more})`);
  io.out(`${describeCost(cost)}; query ${result.queryExecutionId} in workgroup ${target.workGroup}`);
  return 0;
}
