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

export async function queryCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    home: { type: 'string' },
    json: { type: 'boolean', default: false },
    unsafe: { type: 'boolean', default: false },
  });
  if (positionals.length !== 1)
    throw new UsageError('give exactly one SQL string, e.g. sluice query "select count(*) from embeddings"');
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
  const table = [result.columns, ...result.rows.map((row) => result.columns.map((c) => formatCell(row[c])))];
  const widths = result.columns.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  table.forEach((row, r) => {
    io.out(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
    if (r === 0) io.out(widths.map((w) => '-'.repeat(w)).join('  '));
  });
  io.out(`(${result.rows.length} row${result.rows.length === 1 ? '' : 's'})`);
  return 0;
}
