import type { PassThroughColumn, PassThroughType } from './score-output-config.ts';

/** A pass-through value as the `scores` writer takes it. */
export type PassThroughValue = string | number | bigint | boolean | null;

/** A row's pass-through values, or the one-line reason one of them cannot be written as its type. */
export type PassThroughResult =
  | { readonly ok: true; readonly values: Readonly<Record<string, PassThroughValue>> }
  | { readonly ok: false; readonly reason: string };

const INTEGER = /^[+-]?\d+$/;

/** Missing by the same rule as features: absent, null, or an empty CSV field. */
const isMissing = (value: unknown): boolean =>
  value === undefined || value === null || (typeof value === 'string' && value.trim() === '');

function asString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function asDouble(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string') {
    const n = Number(value.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function asBigint(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (typeof value === 'string' && INTEGER.test(value.trim())) return BigInt(value.trim());
  return undefined;
}

function asBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const text = value.trim().toLowerCase();
    if (text === 'true') return true;
    if (text === 'false') return false;
  }
  return undefined;
}

const CONVERT: Record<PassThroughType, (value: unknown) => PassThroughValue | undefined> = {
  string: asString,
  double: asDouble,
  bigint: asBigint,
  boolean: asBoolean,
};

/**
 * A row's `output.passThrough` values, each as its column's type: `string` keeps text as
 * read (a JSON or Parquet value that is not text becomes its JSON text), `double`,
 * `bigint` and `boolean` read numbers and flags from JSON, Parquet or CSV text. A missing
 * value is null. A present value that is not of its column's type is the row's reject
 * reason (never a silent null).
 */
export function passThroughOf(
  values: Readonly<Record<string, unknown>>,
  columns: readonly PassThroughColumn[],
): PassThroughResult {
  const out: Record<string, PassThroughValue> = {};
  for (const { column, type } of columns) {
    const value = values[column];
    if (isMissing(value)) {
      out[column] = null;
      continue;
    }
    const converted = CONVERT[type](value);
    if (converted === undefined)
      return {
        ok: false,
        reason: `pass-through column "${column}": ${asString(value).slice(0, 40)} is not a ${type}`,
      };
    out[column] = converted;
  }
  return { ok: true, values: out };
}
