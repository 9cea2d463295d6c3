import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BackendInputError } from '../../cli/model-server/backend.ts';
import { scoreCsv, XgboostJsonBackend } from '../../cli/model-server/xgboost-backend.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import {
  formatCsvRows,
  formatPredictionsCsv,
  parseCsvRows,
  parsePredictionsCsv,
} from '../../shared/scoring/xgboost/csv-contract.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../events/fixtures/xgboost');

describe('text/csv contract', () => {
  it('reads rows without header, empty fields and nan as missing, CRLF and a BOM', () => {
    const rows = parseCsvRows('\uFEFF1,,3\r\n4,nan\r\n\n');
    expect(rows.numRows).toBe(3);
    expect(rows.numColumns).toBe(3);
    expect(Array.from(rows.data)).toEqual([
      1,
      Number.NaN,
      3,
      4,
      Number.NaN,
      Number.NaN,
      ...Array(3).fill(Number.NaN),
    ]);
  });

  it('names the row and column of a field that is not a number', () => {
    expect(() => parseCsvRows('1,2\n3,abc\n')).toThrow('row 2, column 2: "abc" is not a number');
    expect(() => parseCsvRows('')).toThrow('the request has no rows');
  });

  it('writes rows back with empty fields for missing values, and reads them back the same', () => {
    const data = new Float64Array([0.1, Number.NaN, -3e-9, 1e21]);
    const text = formatCsvRows(data, 2, 2);
    expect(text).toBe('0.1,\n-3e-9,1e+21\n');
    expect(Array.from(parseCsvRows(text).data)).toEqual(Array.from(data));
  });

  it('answers with the exact float32 in at most nine digits, one line per row', () => {
    const p = Math.fround(0.9966523);
    const text = formatPredictionsCsv(new Float64Array([p, 0.25, 0.5, 0.25]), 2);
    expect(text).toBe('0.9966523,0.25\n0.5,0.25\n');
    expect(Math.fround(parsePredictionsCsv(text, 2, 2)[0]!)).toBe(p);
  });

  it('reads an answer one line per row, or in one comma-separated line as older containers write it', () => {
    expect(Array.from(parsePredictionsCsv('0.1\n0.2\n', 2, 1))).toEqual([0.1, 0.2]);
    expect(Array.from(parsePredictionsCsv('0.1,0.2', 2, 1))).toEqual([0.1, 0.2]);
    expect(() => parsePredictionsCsv('0.1,0.2', 1, 2)).not.toThrow();
    expect(() => parsePredictionsCsv('0.1\n', 2, 1)).toThrow(/answered 1 lines and 1 values for 2 rows of 1/);
    expect(() => parsePredictionsCsv('0.1,0.2\n0.3', 2, 2)).toThrow(/for 2 rows of 2/);
  });
});

describe('XgboostJsonBackend', () => {
  const backend = XgboostJsonBackend.fromFile(path.join(fixtures, 'multiclass', 'model.json'));

  it('says what it serves and records the model file and a digest of its bytes', () => {
    expect(backend.contentType).toBe('text/csv');
    expect(backend.model).toMatch(/^xgboost-json:model\.json@[0-9a-f]{12}$/);
    expect(backend.description).toContain('multi:softprob, 90 trees, 8 features, 3 classes');
  });

  it('answers one line per row with one probability per class', () => {
    const answer = backend.score('0,1,2,3,4,5,6,7\n,,,,,,,\n');
    const lines = answer.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      const probabilities = line.split(',').map(Number);
      expect(probabilities).toHaveLength(3);
      expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it('refuses a bad request as a client error (HTTP 400) with one line', () => {
    expect(() => backend.score('1,2,x\n')).toThrow(BackendInputError);
    expect(() => backend.score('1,2,x\n')).toThrow('row 1, column 3: "x" is not a number');
    expect(() => scoreCsv(backend.predictor, '1,2,3,4,5,6,7,8,9\n')).toThrow(
      'rows have 9 columns, the model takes at most 8 features',
    );
  });

  it('fails to start with a config error when the model file is missing or not a model', () => {
    expect(() => XgboostJsonBackend.fromFile('/nonexistent/model.json')).toThrow(ConfigError);
    expect(() => XgboostJsonBackend.fromFile('/nonexistent/model.json')).toThrow(
      '--model /nonexistent/model.json: cannot read the model file (ENOENT)',
    );
    expect(() => XgboostJsonBackend.fromFile(path.join(fixtures, 'binary', 'rows.csv'))).toThrow(
      /not valid JSON/,
    );
  });
});
