import { FeatureValueError } from '../errors.ts';

/** Spellings of "no value" in CSV exports, besides the empty field. */
const MISSING_WORDS = new Set(['nan', 'NaN', 'NAN', 'null', 'NULL', 'NA', 'N/A']);

/** A raw record as a reader yields it: JSONL values or CSV strings by column. */
export type RawRecord = Readonly<Record<string, unknown>>;

/**
 * A record's value as a number; NaN when missing (absent, null, empty, `NA`...).
 * Booleans are 1/0. Anything else that is not a finite number is the record's fault.
 */
export function numericValue(record: RawRecord, column: string): number {
  const raw = record[column];
  if (raw === undefined || raw === null) return Number.NaN;
  if (typeof raw === 'number') {
    if (Number.isNaN(raw)) return raw;
    if (!Number.isFinite(raw))
      throw new FeatureValueError(`column "${column}": ${raw} is not a finite number`);
    return raw;
  }
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw === 'string') {
    const text = raw.trim();
    if (text === '' || MISSING_WORDS.has(text)) return Number.NaN;
    const value = Number(text);
    if (!Number.isFinite(value)) {
      throw new FeatureValueError(`column "${column}": ${JSON.stringify(text.slice(0, 40))} is not a number`);
    }
    return value;
  }
  throw new FeatureValueError(
    `column "${column}": a ${Array.isArray(raw) ? 'list' : typeof raw} is not a number`,
  );
}

/** A record's value as a category (trimmed text); undefined when missing. */
export function categoryValue(record: RawRecord, column: string): string | undefined {
  const raw = record[column];
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') {
    const text = raw.trim();
    return text === '' ? undefined : text;
  }
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  throw new FeatureValueError(
    `column "${column}": a ${Array.isArray(raw) ? 'list' : typeof raw} is not a category`,
  );
}
