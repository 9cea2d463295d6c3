import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { scoreCsv } from '../../cli/model-server/xgboost-backend.ts';
import { parseCsvRows } from '../../shared/scoring/xgboost/csv-contract.ts';
import { XgboostPredictor } from '../../shared/scoring/xgboost/xgboost-predictor.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../events/fixtures/xgboost');
const read = (name: string, file: string) => readFileSync(path.join(fixtures, name, file), 'utf8');

/** 1e-6 absolute, or relative once |expected| > 1 (regression targets here are ~100). */
function worstError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i += 1) {
    const e = expected[i]!;
    worst = Math.max(worst, Math.abs(actual[i]! - e) / Math.max(1, Math.abs(e)));
  }
  return worst;
}

// Fixtures written by scripts/xgboost-fixtures.py with XGBoost itself (see VERSION there).
describe.each([
  { name: 'regression', objective: 'reg:squarederror', outputs: 1 },
  { name: 'binary', objective: 'binary:logistic', outputs: 1 },
  { name: 'multiclass', objective: 'multi:softprob', outputs: 3 },
])('XGBoost parity: $name', ({ name, objective, outputs }) => {
  const predictor = XgboostPredictor.fromJson(read(name, 'model.json'), `${name}/model.json`);
  const rows = parseCsvRows(read(name, 'rows.csv'));
  const expected = parseCsvRows(read(name, 'expected.csv'));

  it('loads the model XGBoost saved', () => {
    expect(predictor.objective).toBe(objective);
    expect(predictor.outputsPerRow).toBe(outputs);
    expect(expected.numColumns).toBe(outputs);
    expect(rows.numRows).toBe(200);
  });

  it('has missing values in the rows it scores, so default directions are exercised', () => {
    expect(Array.from(rows.data).filter(Number.isNaN).length).toBeGreaterThan(100);
  });

  it("matches XGBoost's own predictions to 1e-6", () => {
    const actual = predictor.predictMatrix(rows.data, rows.numRows, rows.numColumns);
    expect(actual.length).toBe(expected.data.length);
    expect(worstError(actual, expected.data)).toBeLessThan(1e-6);
  });

  it('gives the same answers row by row as in one matrix', () => {
    const asRows = Array.from({ length: rows.numRows }, (_, r) =>
      rows.data.subarray(r * rows.numColumns, (r + 1) * rows.numColumns),
    );
    expect(Array.from(predictor.predictRows(asRows))).toEqual(
      Array.from(predictor.predictMatrix(rows.data, rows.numRows, rows.numColumns)),
    );
  });

  it('answers the text/csv contract with the same predictions, one line per row', () => {
    const answer = scoreCsv(predictor, read(name, 'rows.csv'));
    const lines = answer.trimEnd().split('\n');
    expect(lines).toHaveLength(200);
    expect(lines.every((line) => line.split(',').length === outputs)).toBe(true);
    expect(worstError(parseCsvRows(answer).data, expected.data)).toBeLessThan(1e-6);
  });
});
