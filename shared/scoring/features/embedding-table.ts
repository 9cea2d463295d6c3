import { ConfigError } from '../../errors/errors.ts';

/** A learned lookup table: category -> vector of a fixed dimension. */
export type EmbeddingTable = ReadonlyMap<string, Float64Array>;

function vectorOf(values: unknown[], dimension: number, where: string): Float64Array {
  if (values.length !== dimension) {
    throw new ConfigError(`${where}: has ${values.length} values, the feature's dimension is ${dimension}`);
  }
  const vector = new Float64Array(dimension);
  values.forEach((v, i) => {
    const n = typeof v === 'string' ? Number(v.trim()) : v;
    if (typeof n !== 'number' || !Number.isFinite(n) || (typeof v === 'string' && v.trim() === '')) {
      throw new ConfigError(`${where}: value ${i + 1} is not a finite number`);
    }
    vector[i] = n;
  });
  return vector;
}

/**
 * Reads an embedding lookup table: a JSON object `{"category": [v1, ..., vd], ...}`, or
 * CSV lines `category,v1,...,vd` (a first line whose values are not numbers is taken as
 * a header and skipped). Every vector must have `dimension` values; a bad table fails
 * the run at start with one line naming the category or line.
 */
export function parseEmbeddingTable(
  text: string,
  options: { format: 'json' | 'csv'; dimension: number; source?: string },
): EmbeddingTable {
  const { format, dimension, source = 'embedding table' } = options;
  const table = new Map<string, Float64Array>();
  if (format === 'json') {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${source}: not valid JSON (${(error as Error).message.split('\n')[0]})`, {
        cause: error,
      });
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ConfigError(`${source}: must be a JSON object of category -> vector`);
    }
    for (const [category, values] of Object.entries(raw)) {
      if (!Array.isArray(values))
        throw new ConfigError(`${source}: "${category}" must be an array of numbers`);
      table.set(category, vectorOf(values, dimension, `${source}: "${category}"`));
    }
    return table;
  }
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const [category, ...values] = line.split(',');
    const looksLikeHeader =
      i === 0 && values.some((v) => v.trim() !== '' && !Number.isFinite(Number(v.trim())));
    if (looksLikeHeader) return;
    table.set(category!.trim(), vectorOf(values, dimension, `${source}: line ${i + 1}`));
  });
  return table;
}
