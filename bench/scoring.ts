import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { XgboostPredictor } from '../shared/scoring/xgboost/xgboost-predictor.ts';

const run = promisify(execFile);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Debian's python3-xgboost installs for the system interpreter, not for a python3 earlier on PATH. */
const PYTHON = '/usr/bin/python3';

export interface ScoringBenchOptions {
  /** Rows scored. @default 200000 */
  readonly rows?: number;
  /** Boosting rounds of the binary:logistic model. @default 200 */
  readonly trees?: number;
  /** Tree depth. @default 6 */
  readonly depth?: number;
  /** Timed runs of each predictor; the best counts. @default 3 */
  readonly repeats?: number;
  /** Interpreter with xgboost. @default '/usr/bin/python3' */
  readonly python?: string;
}

export type ScoringResult =
  | {
      readonly name: 'scoring';
      readonly available: true;
      readonly model: { objective: string; trees: number; depth: number; features: number };
      readonly rows: number;
      readonly sluice: { description: string; bestSeconds: number; rowsPerSecond: number };
      readonly baseline: { description: string; bestSeconds: number; rowsPerSecond: number };
      /** Sluice rows/s over XGBoost rows/s; the target is >= 0.3. */
      readonly ratio: number;
      readonly target: 0.3;
      /** Largest |Sluice - XGBoost| over all predicted probabilities: the run also checks parity. */
      readonly maxAbsDifference: number;
    }
  | { readonly name: 'scoring'; readonly available: false; readonly reason: string };

/**
 * Local scoring throughput: Sluice's XGBoost JSON evaluator vs XGBoost's own CPU
 * predictor on the same model and rows, both single-threaded (Node's one thread;
 * XGBoost with nthread=1), in the same run. The model (binary:logistic, 200 trees of
 * depth 6 on 20 features with 5% missing) and the rows are generated at bench time by
 * scripts/xgboost-fixtures.py into a temporary folder; XGBoost is timed inside Python
 * (prediction only, a fresh DMatrix per run so its prediction cache cannot answer),
 * Sluice inside Node (prediction only, after one warm-up run). When python xgboost is
 * missing the result says so instead of failing.
 */
export async function runScoringBench(options: ScoringBenchOptions = {}): Promise<ScoringResult> {
  const { rows = 200_000, trees = 200, depth = 6, repeats = 3, python = PYTHON } = options;
  try {
    await run(python, ['-c', 'import xgboost']);
  } catch {
    return {
      name: 'scoring',
      available: false,
      reason: `python xgboost is not importable by ${python}; install it with: apt-get install -y python3-xgboost`,
    };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-scoring-bench-'));
  try {
    await run(
      python,
      [
        path.join(root, 'scripts', 'xgboost-fixtures.py'),
        'bench',
        '--out',
        dir,
        '--rows',
        String(rows),
        '--trees',
        String(trees),
        '--depth',
        String(depth),
        '--repeats',
        String(repeats),
      ],
      { maxBuffer: 1 << 20 },
    );
    const timing = JSON.parse(await readFile(path.join(dir, 'timing.json'), 'utf8')) as {
      xgboostVersion: string;
      columns: number;
      bestSeconds: number;
    };
    const predictor = XgboostPredictor.fromJson(
      await readFile(path.join(dir, 'model.json'), 'utf8'),
      'bench model',
    );
    const rowBytes = await readFile(path.join(dir, 'rows.f64'));
    const data = new Float64Array(rowBytes.buffer, rowBytes.byteOffset, rowBytes.byteLength / 8);
    const expectedBytes = await readFile(path.join(dir, 'expected.f32'));
    const expected = new Float32Array(
      expectedBytes.buffer,
      expectedBytes.byteOffset,
      expectedBytes.byteLength / 4,
    );

    predictor.predictMatrix(
      data.subarray(0, Math.min(data.length, 1000 * timing.columns)),
      1000,
      timing.columns,
    );
    let best = Number.POSITIVE_INFINITY;
    let predictions: Float64Array = new Float64Array(0);
    for (let i = 0; i < repeats; i += 1) {
      const started = process.hrtime.bigint();
      predictions = predictor.predictMatrix(data, rows, timing.columns);
      best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e9);
    }
    let maxAbsDifference = 0;
    for (let i = 0; i < expected.length; i += 1) {
      maxAbsDifference = Math.max(maxAbsDifference, Math.abs(predictions[i]! - expected[i]!));
    }
    const sluiceRate = rows / best;
    const xgboostRate = rows / timing.bestSeconds;
    return {
      name: 'scoring',
      available: true,
      model: { objective: predictor.objective, trees: predictor.numTrees, depth, features: timing.columns },
      rows,
      sluice: {
        description: `Sluice XgboostPredictor (TypeScript, Node ${process.version}, one thread)`,
        bestSeconds: best,
        rowsPerSecond: Math.round(sluiceRate),
      },
      baseline: {
        description: `XGBoost ${timing.xgboostVersion} Booster.predict, nthread=1`,
        bestSeconds: timing.bestSeconds,
        rowsPerSecond: Math.round(xgboostRate),
      },
      ratio: Number((sluiceRate / xgboostRate).toFixed(3)),
      target: 0.3,
      maxAbsDifference,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
