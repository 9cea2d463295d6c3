import { AthenaClient } from '@aws-sdk/client-athena';
import { type AthenaQueryResult, runAthenaQuery } from '../../shared/adapters/aws/athena-query.ts';
import { type Price, pricesFor } from '../../shared/cost/pricing.ts';
import { UsageError } from '../usage.ts';
import type { DeployedTarget } from './deployed-target.ts';

/** Athena bills at least this much per query, rounded up to the next megabyte. */
const MIN_BILLED_BYTES = 10 * 1024 * 1024;
const BYTES_PER_TB = 1024 ** 4;

/** Statements a deployed query runs without `--unsafe`: those that read and change nothing. */
const READING_STATEMENTS = ['select', 'with', 'show', 'describe', 'explain', 'values'];

/**
 * The first keyword of a statement, after comments and opening parentheses: the guard that
 * stops a mistyped `DROP TABLE` reaching Athena. It is a guard against accidents, not a
 * sandbox: what the caller may do is their IAM policy's to decide (docs/deployed-cli.md).
 */
export function leadingKeyword(sql: string): string {
  const stripped = sql
    .replace(/--[^\n]*(\n|$)/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/^[\s(]+/, '');
  return (/^[A-Za-z]+/.exec(stripped)?.[0] ?? '').toLowerCase();
}

export function refuseWritingStatement(sql: string): void {
  const keyword = leadingKeyword(sql);
  if (!READING_STATEMENTS.includes(keyword)) {
    throw new UsageError(
      `query refused: --deployed runs ${READING_STATEMENTS.map((k) => k.toUpperCase()).join(', ')} statements only (this one starts with ${keyword ? keyword.toUpperCase() : 'no keyword'}); --unsafe sends it to Athena as written, where your IAM policy decides`,
    );
  }
}

export interface AthenaCost {
  readonly bytesScanned: number;
  /** What Athena bills: the bytes scanned rounded up to a megabyte, at least 10 MB. */
  readonly bytesBilled: number;
  /** Undefined when the region has no sourced Athena price (shared/cost/pricing.ts). */
  readonly usd: number | undefined;
  readonly price: Price | undefined;
  readonly region: string | undefined;
}

/** What a query cost: bytes billed (10 MB minimum, whole megabytes) at the region's price per TB. */
export function athenaCost(bytesScanned: number, region: string | undefined): AthenaCost {
  const mb = 1024 * 1024;
  const bytesBilled = Math.max(MIN_BILLED_BYTES, Math.ceil(bytesScanned / mb) * mb);
  let price: Price | undefined;
  try {
    price = region ? pricesFor(region).athenaTbScanned : undefined;
  } catch {
    price = undefined;
  }
  return {
    bytesScanned,
    bytesBilled,
    usd: price ? (bytesBilled / BYTES_PER_TB) * price.usd : undefined,
    price,
    region,
  };
}

/** `Athena scanned 12.3 MB (billed 13.0 MB: whole MB, 10 MB at least): about $0.000056 at $5 per TB scanned in us-east-1`. */
export function describeCost(cost: AthenaCost): string {
  const scanned = `Athena scanned ${formatBytes(cost.bytesScanned)} (billed ${formatBytes(cost.bytesBilled)}: whole MB, 10 MB at least)`;
  if (cost.usd === undefined || !cost.price)
    return `${scanned}; no sourced Athena price for ${cost.region ?? 'this region'} to cost it`;
  return `${scanned}: about $${cost.usd.toPrecision(2)} at $${cost.price.usd} per ${cost.price.unit} in ${cost.region}`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export interface DeployedQueryOptions {
  readonly maxRows: number;
  readonly timeoutMs: number;
  readonly unsafe: boolean;
  /** @default a client from the AWS environment, created once */
  readonly athena?: AthenaClient;
}

let defaultClient: AthenaClient | undefined;

/**
 * (primary adapter: CLI) -> Athena in the stack's workgroup and Glue database. The
 * workgroup enforces where results go and how they are encrypted, so the caller sets
 * neither.
 */
export async function queryDeployed(
  sql: string,
  target: DeployedTarget,
  options: DeployedQueryOptions,
): Promise<{ result: AthenaQueryResult; cost: AthenaCost }> {
  if (!options.unsafe) refuseWritingStatement(sql);
  defaultClient ??= new AthenaClient({});
  const athena = options.athena ?? defaultClient;
  const result = await runAthenaQuery(sql, {
    athena,
    workGroup: target.workGroup,
    database: target.database,
    maxRows: options.maxRows,
    timeoutMs: options.timeoutMs,
  });
  return { result, cost: athenaCost(result.bytesScanned, await regionOf(athena)) };
}

async function regionOf(client: AthenaClient): Promise<string | undefined> {
  try {
    return await client.config.region();
  } catch {
    return undefined;
  }
}
