import type { InteractionFields } from './recommend-config.ts';

/** One validated interaction. `value` is 1 for implicit feedback; `timestamp` in epoch seconds. */
export interface Interaction {
  readonly userId: string;
  readonly itemId: string;
  readonly value: number;
  readonly timestamp?: number;
}

export type InteractionParse =
  | { readonly ok: true; readonly interaction: Interaction }
  | { readonly ok: false; readonly reason: string };

// ISO 8601 date or date-time: 2026-03-01, 2026-03-01T12:00Z, 2026-03-01T12:00:00.123+02:00
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Reads one input record (a JSONL object, a CSV row or a Parquet row) into an interaction,
 * or says why it is rejected: missing user or item, non-numeric value, bad timestamp. Ids
 * are compared as strings (a JSON number id 42 is "42"). An absent timestamp is allowed.
 * Parquet gives typed values: INT64 columns as bigints, TIMESTAMP and DATE columns as Dates.
 */
export function parseInteraction(
  record: Readonly<Record<string, unknown>>,
  fields: InteractionFields,
): InteractionParse {
  const userId = idOf(record[fields.userField]);
  if (userId === undefined) return reject(`missing user (field ${fields.userField})`);
  const itemId = idOf(record[fields.itemField]);
  if (itemId === undefined) return reject(`missing item (field ${fields.itemField})`);
  let value = 1;
  if (fields.valueField !== undefined) {
    const parsed = numberOf(record[fields.valueField]);
    if (parsed === undefined)
      return reject(`non-numeric value ${excerpt(record[fields.valueField])} (field ${fields.valueField})`);
    value = parsed;
  }
  if (fields.timestampField === undefined) return { ok: true, interaction: { userId, itemId, value } };
  const raw = record[fields.timestampField];
  if (raw === undefined || raw === null || raw === '')
    return { ok: true, interaction: { userId, itemId, value } };
  const timestamp = timestampOf(raw);
  if (timestamp === undefined)
    return reject(
      `bad timestamp ${excerpt(raw)} (field ${fields.timestampField}: ISO 8601 or epoch seconds expected)`,
    );
  return { ok: true, interaction: { userId, itemId, value, timestamp } };
}

/** Epoch seconds from a number, a decimal string, a Date, or an ISO 8601 date(-time); undefined otherwise. */
export function timestampOf(raw: unknown): number | undefined {
  if (raw instanceof Date) {
    const ms = raw.getTime();
    return Number.isFinite(ms) ? ms / 1000 : undefined;
  }
  const asNumber = numberOf(raw);
  if (asNumber !== undefined) return asNumber;
  if (typeof raw !== 'string' || !ISO_8601.test(raw.trim())) return undefined;
  const ms = Date.parse(raw.trim());
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}

function idOf(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw.length > 0 ? raw : undefined;
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
  if (typeof raw === 'bigint') return String(raw);
  return undefined;
}

function numberOf(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'bigint') return Number(raw);
  if (typeof raw !== 'string' || !DECIMAL.test(raw.trim())) return undefined;
  const parsed = Number(raw.trim());
  return Number.isFinite(parsed) ? parsed : undefined;
}

function excerpt(raw: unknown): string {
  const text =
    raw === undefined
      ? 'missing'
      : typeof raw === 'bigint'
        ? String(raw)
        : (JSON.stringify(raw) ?? String(raw));
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

function reject(reason: string): InteractionParse {
  return { ok: false, reason };
}
