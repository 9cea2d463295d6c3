import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MemoryObjectStore } from '../shared/adapters/local/memory-object-store.ts';
import { parsePipelineConfig, type ScorePipelineConfig } from '../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import type { UnitWorkDeps } from '../shared/jobs/job-kind.ts';
import { workScoreUnit } from '../shared/jobs/score/score-stage.ts';
import { FeatureStatsAccumulator } from '../shared/scoring/features/fit-features.ts';
import { InWorkerScoringEndpoint } from '../shared/scoring/in-worker/in-worker-scoring-endpoint.ts';
import { maxModelBytesFor, XgboostModelCache } from '../shared/scoring/in-worker/model-cache.ts';
import { identityColumnMap, rankReasons } from '../shared/scoring/xgboost/reason-codes.ts';
import { TreeShapExplainer } from '../shared/scoring/xgboost/tree-shap.ts';
import { parseXgboostModelJson } from '../shared/scoring/xgboost/xgboost-json.ts';
import { XgboostPredictor } from '../shared/scoring/xgboost/xgboost-predictor.ts';

const run = promisify(execFile);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Debian's python3-xgboost installs for the system interpreter, not for a python3 earlier on PATH. */
const PYTHON = '/usr/bin/python3';

export interface TreeShapBenchOptions {
  /** Rows scored and explained. @default 5000 */
  readonly rows?: number;
  /** Boosting rounds of the binary:logistic model. @default 100 */
  readonly trees?: number;
  /** Tree depth. @default 6 */
  readonly depth?: number;
  /** Reason codes per row. @default 3 */
  readonly topK?: number;
  /** Timed runs of each side; the best counts. @default 3 */
  readonly repeats?: number;
  /** Interpreter with xgboost and sklearn. @default '/usr/bin/python3' */
  readonly python?: string;
}

interface Rate {
  readonly description: string;
  readonly bestSeconds: number;
  readonly rowsPerSecond: number;
}

export type TreeShapBenchResult =
  | {
      readonly name: 'tree-shap';
      readonly available: true;
      readonly model: { objective: string; trees: number; depth: number; features: number };
      readonly rows: number;
      readonly topK: number;
      /** Sluice scoring alone (the evaluator, no explanation). */
      readonly scoreOnly: Rate;
      /** Sluice scoring plus TreeSHAP plus the top K reasons per row. */
      readonly scoreAndExplain: Rate;
      /** XGBoost's own pred_contribs with nthread=1 (contributions only, no scoring, no ranking). */
      readonly baseline: Rate;
      /** scoreAndExplain rows/s over XGBoost pred_contribs rows/s; the target is >= 0.3. */
      readonly ratio: number;
      readonly target: 0.3;
      /** What explaining costs: scoreAndExplain rows/s over scoreOnly rows/s. */
      readonly explainSlowdown: number;
      /**
       * The worker's scoring path (workScoreUnit: CSV read, features, the in-worker model,
       * the unit's Parquet part) on the same model and rows written as CSV, with and
       * without `explain.topK`; `ratio` is the explained path over XGBoost pred_contribs.
       */
      readonly workerPath: {
        readonly rows: number;
        readonly withoutExplain: Rate;
        readonly withExplain: Rate;
        readonly ratio: number;
        readonly explainSlowdown: number;
      };
      /** Largest |Sluice - XGBoost| over every contribution and bias: the run also checks parity. */
      readonly maxAbsDifference: number;
      /** 1-minute load average when the timings started: rows/s are only comparable at similar load. */
      readonly loadAverage1m: number;
    }
  | { readonly name: 'tree-shap'; readonly available: false; readonly reason: string };

function best(repeats: number, work: () => void): number {
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i += 1) {
    const started = process.hrtime.bigint();
    work();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - started) / 1e9);
  }
  return fastest;
}

/**
 * Reason-code cost: rows/s of Sluice scoring with `explain.topK` (evaluator + exact
 * TreeSHAP + top-K ranking per row) against scoring alone, and against XGBoost's own
 * `pred_contribs` on one thread, on the same model and rows in the same run. The model
 * (binary:logistic, 100 trees of depth 6 on 20 columns, 5% missing) and the rows are
 * generated at bench time by scripts/fixtures/make-tree-shap-fixtures.py; XGBoost is
 * timed inside Python (pred_contribs only, a fresh DMatrix per run, nthread=1), Sluice
 * inside Node (after a warm-up on 500 rows). When python xgboost is missing the result
 * says so instead of failing.
 */
export async function runTreeShapBench(options: TreeShapBenchOptions = {}): Promise<TreeShapBenchResult> {
  const { rows = 5_000, trees = 100, depth = 6, topK = 3, repeats = 3, python = PYTHON } = options;
  try {
    await run(python, ['-c', 'import xgboost, sklearn']);
  } catch {
    return {
      name: 'tree-shap',
      available: false,
      reason: `python xgboost/sklearn are not importable by ${python}; install them with: apt-get install -y python3-xgboost python3-sklearn`,
    };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-tree-shap-bench-'));
  try {
    await run(
      python,
      [
        path.join(root, 'scripts', 'fixtures', 'make-tree-shap-fixtures.py'),
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
    const forest = parseXgboostModelJson(await readFile(path.join(dir, 'model.json'), 'utf8'), 'bench model');
    const predictor = new XgboostPredictor(forest);
    const explainer = new TreeShapExplainer(forest, 'bench model');
    const rowBytes = await readFile(path.join(dir, 'rows.f64'));
    const data = new Float64Array(rowBytes.buffer, rowBytes.byteOffset, rowBytes.byteLength / 8);
    const expectedBytes = await readFile(path.join(dir, 'contribs.f32'));
    const expected = new Float32Array(
      expectedBytes.buffer,
      expectedBytes.byteOffset,
      expectedBytes.byteLength / 4,
    );
    const columns = timing.columns;
    const names = identityColumnMap(Array.from({ length: columns }, (_, i) => `f${i}`));
    const contribs = new Float64Array(rows * explainer.valuesPerRow);

    const scoreAndExplain = (n: number) => {
      const scores = predictor.predictMatrix(data, n, columns);
      let reasons = 0;
      for (let r = 0; r < n; r += 1) {
        const offset = r * explainer.valuesPerRow;
        explainer.explainRowInto(data.subarray(r * columns, (r + 1) * columns), contribs, offset);
        reasons += rankReasons(contribs.subarray(offset, offset + columns), names, topK).length;
      }
      return scores.length + reasons;
    };
    const loadAverage1m = Number(os.loadavg()[0]!.toFixed(2));
    predictor.predictMatrix(data, Math.min(rows, 500), columns);
    scoreAndExplain(Math.min(rows, 500));
    const scoreSeconds = best(repeats, () => predictor.predictMatrix(data, rows, columns));
    const explainSeconds = best(repeats, () => scoreAndExplain(rows));

    let maxAbsDifference = 0;
    for (let i = 0; i < expected.length; i += 1) {
      maxAbsDifference = Math.max(maxAbsDifference, Math.abs(contribs[i]! - expected[i]!));
    }
    const node = `TypeScript, Node ${process.version}, one thread`;
    const workerRows = Math.min(rows, 2_000);
    const worker = await timeWorkerPath(
      await readFile(path.join(dir, 'model.json')),
      data,
      workerRows,
      columns,
      topK,
      repeats,
    );
    const explainRate = rows / explainSeconds;
    const scoreRate = rows / scoreSeconds;
    const xgboostRate = rows / timing.bestSeconds;
    return {
      name: 'tree-shap',
      available: true,
      model: { objective: forest.objective, trees: forest.treeRoots.length, depth, features: columns },
      rows,
      topK,
      scoreOnly: {
        description: `Sluice XgboostPredictor.predictMatrix (${node})`,
        bestSeconds: scoreSeconds,
        rowsPerSecond: Math.round(scoreRate),
      },
      scoreAndExplain: {
        description: `Sluice predictMatrix + TreeShapExplainer.explainRowInto + rankReasons top ${topK} (${node})`,
        bestSeconds: explainSeconds,
        rowsPerSecond: Math.round(explainRate),
      },
      baseline: {
        description: `XGBoost ${timing.xgboostVersion} Booster.predict(pred_contribs=True), nthread=1`,
        bestSeconds: timing.bestSeconds,
        rowsPerSecond: Math.round(xgboostRate),
      },
      ratio: Number((explainRate / xgboostRate).toFixed(3)),
      target: 0.3,
      explainSlowdown: Number((explainRate / scoreRate).toFixed(4)),
      workerPath: {
        rows: workerRows,
        withoutExplain: {
          description: `workScoreUnit, model.hosting in-worker, no explain (${node})`,
          bestSeconds: worker.plainSeconds,
          rowsPerSecond: Math.round(workerRows / worker.plainSeconds),
        },
        withExplain: {
          description: `workScoreUnit, model.hosting in-worker, explain.topK ${topK} (${node})`,
          bestSeconds: worker.explainSeconds,
          rowsPerSecond: Math.round(workerRows / worker.explainSeconds),
        },
        ratio: Number((workerRows / worker.explainSeconds / xgboostRate).toFixed(3)),
        explainSlowdown: Number((worker.plainSeconds / worker.explainSeconds).toFixed(4)),
      },
      maxAbsDifference,
      loadAverage1m,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Seconds (best of `repeats`) of one score unit over `rows` rows through the worker's
 * path, without and with `explain.topK`: the rows written as CSV (an empty field for a
 * missing value), a spec of one numeric column per model feature (no transform, missing
 * kept), the in-worker model, the unit's `scores` part written to a memory store.
 */
async function timeWorkerPath(
  model: Uint8Array,
  data: Float64Array,
  rows: number,
  columns: number,
  topK: number,
  repeats: number,
): Promise<{ plainSeconds: number; explainSeconds: number }> {
  const names = Array.from({ length: columns }, (_, i) => `f${i}`);
  const lines = [`id,${names.join(',')}`];
  for (let r = 0; r < rows; r += 1) {
    const values = Array.from(data.subarray(r * columns, (r + 1) * columns), (v) =>
      Number.isNaN(v) ? '' : String(v),
    );
    lines.push(`r${r},${values.join(',')}`);
  }
  const store = new MemoryObjectStore();
  const source = 'incoming/bench/rows.csv';
  await store.put(source, `${lines.join('\n')}\n`);
  await store.put('models/bench/model.json', model);
  const configOf = (explain: boolean): ScorePipelineConfig =>
    parsePipelineConfig({
      name: 'bench',
      kind: 'score',
      featureSpec: { features: names.map((column) => ({ type: 'numeric', column })) },
      featureStats: { key: 'models/bench/feature-stats.json' },
      model: { endpointName: 'bench', modelKey: 'models/bench/model.json', hosting: 'in-worker' },
      ...(explain ? { explain: { topK } } : {}),
    }) as ScorePipelineConfig;
  const plain = configOf(false);
  const stats = new FeatureStatsAccumulator(plain.featureSpec as never);
  for (let r = 0; r < rows; r += 1)
    stats.observe(Object.fromEntries(names.map((n, c) => [n, data[r * columns + c]!])));
  await store.put(plain.featureStats.key, JSON.stringify(stats.finish()));
  const size = (await store.head(source))!.size;
  const endpoint = new InWorkerScoringEndpoint({
    store,
    modelKey: plain.model.modelKey,
    cache: new XgboostModelCache(),
    limits: { maxModelBytes: maxModelBytesFor(plain.workers.memoryMiB) },
  });
  const deps = { store, scoringEndpoint: endpoint } as unknown as UnitWorkDeps;
  let pass = 0;
  const time = async (config: ScorePipelineConfig, n: number): Promise<number> => {
    let fastest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i += 1) {
      pass += 1;
      const unit: WorkUnit = {
        runId: `r-20261207T030000Z-${pass.toString(16).padStart(6, '0')}`,
        unitId: 'u00000',
        pipeline: 'bench',
        sourceKey: source,
        byteStart: 0,
        byteEnd: size,
        firstLine: 1,
        format: 'csv',
        compression: 'none',
        packed: [],
        estCost: rows,
        stage: 'score',
      };
      const started = process.hrtime.bigint();
      const work = await workScoreUnit(deps, config, unit);
      fastest = Math.min(fastest, Number(process.hrtime.bigint() - started) / 1e9);
      if (work.counts.scored !== rows)
        throw new Error(`worker path scored ${work.counts.scored} of ${rows} rows`);
    }
    return fastest;
  };
  const explained = configOf(true);
  await time(plain, 1); // warm-up: JIT, transformer, model
  await time(explained, 1);
  return { plainSeconds: await time(plain, repeats), explainSeconds: await time(explained, repeats) };
}
