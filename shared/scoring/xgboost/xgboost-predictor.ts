import { FeatureValueError } from '../errors.ts';
import { type CompiledForest, parseXgboostModelJson, type XgboostObjective } from './xgboost-json.ts';

/** Rows scored together: small enough that a block's features stay in L1, large enough to amortise a tree's setup. */
const BLOCK_ROWS = 64;

/**
 * Scores rows with an XGBoost gbtree model, reproducing XGBoost's CPU predictor to
 * float32 precision: features are rounded to float32 (as a DMatrix stores them), a row
 * goes left when `x < split_condition` and, when `x` is missing (NaN), the way the node's
 * `default_left` says; tree outputs are summed in float32 in tree order starting from the
 * base margin; then the objective's transform (identity, sigmoid, softmax) is applied.
 *
 * Single-threaded and allocation-free per row: rows are processed in blocks, tree by
 * tree, so each tree's nodes stay hot in cache while a block walks it.
 */
export class XgboostPredictor {
  readonly objective: XgboostObjective;
  readonly numFeatures: number;
  /** Values per row in the output: 1 for regression and binary, one per class for multi:softprob. */
  readonly outputsPerRow: number;
  readonly numTrees: number;
  /** Nodes of all trees (what the compiled forest's size grows with). */
  readonly nodeCount: number;
  private readonly forest: CompiledForest;
  private readonly block: Float32Array;
  private readonly margins: Float32Array;

  constructor(forest: CompiledForest) {
    this.forest = forest;
    this.objective = forest.objective;
    this.numFeatures = forest.numFeatures;
    this.outputsPerRow = forest.numGroups;
    this.numTrees = forest.treeRoots.length;
    this.nodeCount = forest.nodeCount;
    this.block = new Float32Array(BLOCK_ROWS * Math.max(1, forest.numFeatures));
    this.margins = new Float32Array(BLOCK_ROWS * forest.numGroups);
  }

  /** Loads a model from the text of XGBoost's JSON save (`Booster.save_model("model.json")`). */
  static fromJson(text: string, source = 'model'): XgboostPredictor {
    return new XgboostPredictor(parseXgboostModelJson(text, source));
  }

  /** One line for people: what this model is. */
  describe(): string {
    return `XGBoost gbtree ${this.objective}, ${this.numTrees} trees, ${this.numFeatures} features${
      this.outputsPerRow > 1 ? `, ${this.outputsPerRow} classes` : ''
    }`;
  }

  /**
   * Scores `numRows` rows stored row-major in `data` (`numColumns` values per row, NaN =
   * missing). Rows narrower than the model are read as missing in the trailing columns;
   * wider rows are refused, as XGBoost refuses them.
   *
   * @returns row-major predictions, `outputsPerRow` per row (probabilities for the
   * classifiers, the prediction itself for regression).
   */
  predictMatrix(data: Float64Array, numRows: number, numColumns = this.numFeatures): Float64Array {
    const out = new Float64Array(numRows * this.outputsPerRow);
    this.marginsInto(data, numRows, numColumns, out);
    this.transform(out, numRows);
    return out;
  }

  /** Scores rows given one array each (NaN = missing). */
  predictRows(rows: readonly ArrayLike<number>[]): Float64Array {
    const width = this.numFeatures;
    const data = new Float64Array(rows.length * width).fill(Number.NaN);
    rows.forEach((row, r) => {
      if (row.length > width) throw this.tooWide(r, row.length);
      for (let c = 0; c < row.length; c += 1) data[r * width + c] = row[c]!;
    });
    return this.predictMatrix(data, rows.length, width);
  }

  /** Raw margins (the sum of tree outputs and the base margin) before the objective's transform. */
  predictMargins(data: Float64Array, numRows: number, numColumns = this.numFeatures): Float64Array {
    const out = new Float64Array(numRows * this.outputsPerRow);
    this.marginsInto(data, numRows, numColumns, out);
    return out;
  }

  private tooWide(row: number, columns: number): FeatureValueError {
    return new FeatureValueError(
      `row ${row} has ${columns} values, the model takes at most ${this.numFeatures}`,
    );
  }

  private marginsInto(data: Float64Array, numRows: number, numColumns: number, out: Float64Array): void {
    if (numColumns > this.numFeatures) throw this.tooWide(0, numColumns);
    if (data.length < numRows * numColumns) {
      throw new FeatureValueError(`${data.length} values cannot hold ${numRows} rows of ${numColumns}`);
    }
    const { treeRoots, treeGroups, feature, missingRight, value, left, baseMargin } = this.forest;
    const width = this.numFeatures;
    const groups = this.outputsPerRow;
    const block = this.block;
    const margins = this.margins;
    const numTrees = treeRoots.length;
    for (let start = 0; start < numRows; start += BLOCK_ROWS) {
      const rows = Math.min(BLOCK_ROWS, numRows - start);
      // Float32Array stores round to float32 exactly as a DMatrix does.
      if (numColumns === width) {
        block.set(data.subarray(start * width, (start + rows) * width));
      } else {
        block.fill(Number.NaN, 0, rows * width);
        for (let r = 0; r < rows; r += 1) {
          const from = (start + r) * numColumns;
          block.set(data.subarray(from, from + numColumns), r * width);
        }
      }
      for (let r = 0; r < rows; r += 1) {
        for (let g = 0; g < groups; g += 1) margins[r * groups + g] = baseMargin[g]!;
      }
      for (let t = 0; t < numTrees; t += 1) {
        const root = treeRoots[t]!;
        const group = treeGroups[t]!;
        for (let r = 0, offset = 0; r < rows; r += 1, offset += width) {
          let node = root;
          let child = left[node]!;
          while (child >= 0) {
            const x = block[offset + feature[node]!]!;
            // Missing values are rare and the test predictable; the comparison itself is
            // kept branch-free (left when x < threshold, right = left + 1).
            node = Number.isNaN(x) ? child + missingRight[node]! : child + +(x >= value[node]!);
            child = left[node]!;
          }
          // Accumulating in a Float32Array rounds each sum to float32, as XGBoost's own loop does.
          margins[r * groups + group]! += value[node]!;
        }
      }
      out.set(margins.subarray(0, rows * groups), start * groups);
    }
  }

  private transform(out: Float64Array, numRows: number): void {
    if (this.objective === 'binary:logistic') {
      for (let i = 0; i < numRows; i += 1) out[i] = Math.fround(1 / (1 + Math.exp(-out[i]!)));
    } else if (this.objective === 'multi:softprob') {
      const k = this.outputsPerRow;
      for (let r = 0; r < numRows; r += 1) {
        const base = r * k;
        let max = out[base]!;
        for (let c = 1; c < k; c += 1) max = Math.max(max, out[base + c]!);
        let sum = 0;
        for (let c = 0; c < k; c += 1) {
          const e = Math.fround(Math.exp(out[base + c]! - max));
          out[base + c] = e;
          sum += e;
        }
        const total = Math.fround(sum);
        for (let c = 0; c < k; c += 1) out[base + c] = Math.fround(out[base + c]! / total);
      }
    }
  }
}
