/**
 * The text/csv contract of SageMaker's built-in XGBoost container, as Sluice speaks it on
 * both sides (the worker that calls an endpoint and the local model server that answers):
 * a request is rows without a header, one line per row, values comma-separated, an empty
 * field meaning missing; the answer has one line per row with one value (regression,
 * binary) or one value per class (multi:softprob).
 */
import { FeatureValueError } from '../errors.ts';

/** Rows parsed from a text/csv request, row-major with NaN for missing values. */
export interface CsvMatrix {
  readonly data: Float64Array;
  readonly numRows: number;
  /** The widest row; narrower rows are padded with NaN (missing). */
  readonly numColumns: number;
}

const MISSING_WORDS = new Set(['nan', 'NaN', 'NAN', 'null', 'NA']);

function lineList(text: string): string[] {
  const lines = text.split('\n');
  // One trailing newline ends the last row; it does not start an empty one.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

/**
 * Parses a text/csv body of numeric rows. An empty field (or `nan`, `NA`, `null`) is
 * missing. A field that is not a number fails the whole request with one line naming
 * the row and column (1-based), as the container answers 400.
 */
export function parseCsvRows(text: string): CsvMatrix {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lines = lineList(body);
  if (lines.length === 0) throw new FeatureValueError('the request has no rows');
  const split = lines.map((line) => line.split(','));
  let numColumns = 0;
  for (const fields of split) numColumns = Math.max(numColumns, fields.length);
  const data = new Float64Array(lines.length * numColumns).fill(Number.NaN);
  for (let r = 0; r < split.length; r += 1) {
    const fields = split[r]!;
    for (let c = 0; c < fields.length; c += 1) {
      const field = fields[c]!.trim();
      if (field === '' || MISSING_WORDS.has(field)) continue;
      const value = Number(field);
      if (!Number.isFinite(value)) {
        throw new FeatureValueError(
          `row ${r + 1}, column ${c + 1}: ${JSON.stringify(field.slice(0, 40))} is not a number`,
        );
      }
      data[r * numColumns + c] = value;
    }
  }
  return { data, numRows: lines.length, numColumns };
}

/** Writes rows as a text/csv request body: NaN becomes an empty field, values keep full precision. */
export function formatCsvRows(data: Float64Array, numRows: number, numColumns: number): string {
  const lines = new Array<string>(numRows);
  const fields = new Array<string>(numColumns);
  for (let r = 0; r < numRows; r += 1) {
    for (let c = 0; c < numColumns; c += 1) {
      const v = data[r * numColumns + c]!;
      fields[c] = Number.isNaN(v) ? '' : String(v);
    }
    lines[r] = fields.join(',');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The shortest decimal that reads back as the same float32 (at most nine significant
 * digits), as numpy prints XGBoost's float32 output, instead of the 17 digits of its
 * float64 widening.
 */
export function formatFloat32(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const target = Math.fround(value);
  for (let digits = 1; digits < 9; digits += 1) {
    const candidate = Number(target.toPrecision(digits));
    if (Math.fround(candidate) === target) return String(candidate);
  }
  return String(Number(target.toPrecision(9)));
}

/** Writes predictions (row-major, `outputsPerRow` per row) as a text/csv answer body. */
export function formatPredictionsCsv(predictions: Float64Array, outputsPerRow: number): string {
  const numRows = predictions.length / outputsPerRow;
  const lines = new Array<string>(numRows);
  for (let r = 0; r < numRows; r += 1) {
    let line = formatFloat32(predictions[r * outputsPerRow]!);
    for (let c = 1; c < outputsPerRow; c += 1)
      line += `,${formatFloat32(predictions[r * outputsPerRow + c]!)}`;
    lines[r] = line;
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Reads a text/csv answer back into `numRows` x `outputsPerRow` predictions. Accepts one
 * line per row (Sluice's server, newer containers) and, for one output per row, the
 * single comma-separated line older XGBoost containers answer with.
 */
export function parsePredictionsCsv(text: string, numRows: number, outputsPerRow: number): Float64Array {
  const lines = lineList(text.trim() === '' ? '' : text);
  const values = lines.flatMap((line) => line.split(','));
  if (values.length !== numRows * outputsPerRow || (outputsPerRow > 1 && lines.length !== numRows)) {
    throw new FeatureValueError(
      `the model answered ${lines.length} lines and ${values.length} values for ${numRows} rows of ${outputsPerRow}`,
    );
  }
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i += 1) {
    const v = Number(values[i]!.trim());
    if (Number.isNaN(v))
      throw new FeatureValueError(`the model answered a non-number: ${values[i]!.slice(0, 40)}`);
    out[i] = v;
  }
  return out;
}
