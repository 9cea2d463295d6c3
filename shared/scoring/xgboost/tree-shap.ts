import { FeatureValueError, ModelFormatError } from '../errors.ts';
import { type CompiledForest, parseXgboostModelJson, type XgboostObjective } from './xgboost-json.ts';

/**
 * Exact per-row feature contributions of an XGBoost gbtree model: path-dependent
 * TreeSHAP (Lundberg, Erion and Lee, "Consistent Individualized Feature Attribution for
 * Tree Ensembles", 2018, Algorithm 2), the same quantity XGBoost returns for
 * `predict(..., pred_contribs=True)`.
 *
 * A feature's contribution is its Shapley value for the set function "expected tree
 * output when only the features in S are known", where an unknown feature's split is
 * averaged over both children weighted by their training cover (`sum_hessian`). The
 * bias is that expectation with no feature known (cover-weighted mean leaf value of each
 * tree, plus the base margin). Contributions are in margin space (before the sigmoid or
 * softmax) and, per output group, contributions + bias = the group's margin.
 *
 * Rows are routed exactly as {@link XgboostPredictor} routes them: values rounded to
 * float32, left when `x < threshold`, a missing value (NaN) the node's default way.
 *
 * The recursion walks every node of every tree once per row, keeping the "unique path"
 * (one element per distinct feature split on from the root, with the fraction of
 * training cover that takes this branch (`zero`) and whether the row takes it (`one`))
 * and the path's permutation weights, in preallocated typed arrays: one segment per
 * depth, so a child copies its parent's path instead of allocating. Cost per row is
 * O(trees x leaves x depth^2), as in the paper.
 */
export class TreeShapExplainer {
  readonly objective: XgboostObjective;
  readonly numFeatures: number;
  /** Output groups: 1 for regression and binary, the class count for multi:softprob. */
  readonly numGroups: number;
  /** Values per row in {@link explainMatrix}'s output: `numGroups * (numFeatures + 1)`. */
  readonly valuesPerRow: number;
  /** Expected margin per group with no feature known (what XGBoost puts in the last contribution column). */
  readonly bias: Float64Array;

  private readonly forest: CompiledForest;
  private readonly left: Int32Array;
  private readonly splitFeature: Int32Array;
  private readonly value: Float32Array;
  private readonly missingRight: Uint8Array;
  /** `reciprocal[n]` = 1 / n: the recursions divide by small integers at every step. */
  private readonly reciprocal: Float64Array;
  /** Share of its parent's cover that reaches each node (1 for roots). */
  private readonly coverShare: Float64Array;
  /** Elements one path segment holds: the deepest root-to-leaf path plus the root's dummy element. */
  private readonly stride: number;
  private readonly pathFeature: Int32Array;
  private readonly pathZero: Float64Array;
  private readonly pathOne: Float64Array;
  private readonly pathWeight: Float64Array;
  /** The row being explained, float32-rounded as the predictor routes it. */
  private readonly row: Float32Array;
  /** Where the current tree's group writes its contributions. */
  private out: Float64Array = new Float64Array(0);
  private outBase = 0;

  constructor(forest: CompiledForest, source = 'model') {
    const { cover, left, value, treeRoots, treeGroups, nodeCount } = forest;
    if (!cover) {
      throw new ModelFormatError(
        `${source}: the trees carry no sum_hessian (node cover), which reason codes need; save the model with XGBoost's JSON format (Booster.save_model("model.json"))`,
      );
    }
    for (let i = 0; i < nodeCount; i += 1) {
      if (!(cover[i]! > 0)) {
        throw new ModelFormatError(
          `${source}: node ${i} has sum_hessian ${cover[i]}, reason codes need every node's cover > 0`,
        );
      }
    }
    this.forest = forest;
    this.left = left;
    this.splitFeature = forest.feature;
    this.value = value;
    this.missingRight = forest.missingRight;
    this.objective = forest.objective;
    this.numFeatures = forest.numFeatures;
    this.numGroups = forest.numGroups;
    this.valuesPerRow = forest.numGroups * (forest.numFeatures + 1);

    this.coverShare = new Float64Array(nodeCount).fill(1);
    const mean = new Float64Array(nodeCount);
    const depth = new Int32Array(nodeCount);
    let maxDepth = 0;
    // Children always come after their parent (breadth-first layout), so a forward pass
    // sets depths and shares and a backward pass folds means from the leaves up.
    for (let i = 0; i < nodeCount; i += 1) {
      const l = left[i]!;
      if (l < 0) continue;
      for (const child of [l, l + 1]) {
        this.coverShare[child] = cover[child]! / cover[i]!;
        depth[child] = depth[i]! + 1;
        maxDepth = Math.max(maxDepth, depth[child]!);
      }
    }
    for (let i = nodeCount - 1; i >= 0; i -= 1) {
      const l = left[i]!;
      mean[i] = l < 0 ? value[i]! : (mean[l]! * cover[l]! + mean[l + 1]! * cover[l + 1]!) / cover[i]!;
    }
    this.bias = Float64Array.from(forest.baseMargin);
    for (let t = 0; t < treeRoots.length; t += 1) this.bias[treeGroups[t]!]! += mean[treeRoots[t]!]!;

    this.stride = maxDepth + 2;
    const segments = maxDepth + 2;
    this.pathFeature = new Int32Array(segments * this.stride);
    this.pathZero = new Float64Array(segments * this.stride);
    this.pathOne = new Float64Array(segments * this.stride);
    this.pathWeight = new Float64Array(segments * this.stride);
    this.row = new Float32Array(Math.max(1, forest.numFeatures));
    this.reciprocal = Float64Array.from({ length: this.stride + 2 }, (_, n) => (n === 0 ? 0 : 1 / n));
  }

  /** Loads a model from the text of XGBoost's JSON save (`Booster.save_model("model.json")`). */
  static fromJson(text: string, source = 'model'): TreeShapExplainer {
    return new TreeShapExplainer(parseXgboostModelJson(text, source), source);
  }

  /**
   * Explains `numRows` rows stored row-major in `data` (`numColumns` values per row,
   * NaN = missing; narrower rows read the trailing columns as missing).
   *
   * @returns row-major, {@link valuesPerRow} per row, laid out as XGBoost's
   * `pred_contribs`: for each group, one contribution per model feature and then the bias.
   */
  explainMatrix(data: Float64Array, numRows: number, numColumns = this.numFeatures): Float64Array {
    if (numColumns > this.numFeatures) {
      throw new FeatureValueError(
        `rows have ${numColumns} values, the model takes at most ${this.numFeatures}`,
      );
    }
    if (data.length < numRows * numColumns) {
      throw new FeatureValueError(`${data.length} values cannot hold ${numRows} rows of ${numColumns}`);
    }
    const out = new Float64Array(numRows * this.valuesPerRow);
    for (let r = 0; r < numRows; r += 1) {
      this.explainRowInto(data.subarray(r * numColumns, (r + 1) * numColumns), out, r * this.valuesPerRow);
    }
    return out;
  }

  /** One row's contributions (see {@link explainMatrix} for the layout). */
  explainRow(row: ArrayLike<number>): Float64Array {
    const out = new Float64Array(this.valuesPerRow);
    this.explainRowInto(row, out, 0);
    return out;
  }

  /**
   * Writes one row's contributions at `out[offset .. offset + valuesPerRow)`, overwriting
   * what was there; allocation-free, for callers that explain many rows into one buffer.
   */
  explainRowInto(row: ArrayLike<number>, out: Float64Array, offset = 0): void {
    const width = this.numFeatures;
    if (row.length > width) {
      throw new FeatureValueError(`row has ${row.length} values, the model takes at most ${width}`);
    }
    const x = this.row;
    x.fill(Number.NaN);
    for (let c = 0; c < row.length; c += 1) x[c] = row[c]!;
    out.fill(0, offset, offset + this.valuesPerRow);
    for (let g = 0; g < this.numGroups; g += 1) out[offset + g * (width + 1) + width] = this.bias[g]!;
    const { treeRoots, treeGroups } = this.forest;
    this.out = out;
    for (let t = 0; t < treeRoots.length; t += 1) {
      this.outBase = offset + treeGroups[t]! * (width + 1);
      this.recurse(treeRoots[t]!, 0, 0, 1, 1, -1);
    }
  }

  /**
   * Visits `node` having come down a branch whose cover share is `zero` and which the
   * row takes (`one` = 1) or not (0), splitting on `splitFeature` (-1 above the root).
   * `length` elements of the parent's path are in segment `level - 1`.
   */
  private recurse(
    node: number,
    level: number,
    length: number,
    zero: number,
    one: number,
    splitFeature: number,
  ) {
    const stride = this.stride;
    const feature = this.pathFeature;
    const zeros = this.pathZero;
    const ones = this.pathOne;
    const weights = this.pathWeight;
    const reciprocal = this.reciprocal;
    const base = level * stride;
    if (level > 0) {
      // Paths are a few elements long: a loop beats four copyWithin calls.
      for (let i = base - stride, j = base, end = base - stride + length; i < end; i += 1, j += 1) {
        feature[j] = feature[i]!;
        zeros[j] = zeros[i]!;
        ones[j] = ones[i]!;
        weights[j] = weights[i]!;
      }
    }

    // EXTEND: add the element, then update the weight of every path length so that
    // weights[base + i] is the share of feature orderings in which exactly i of the
    // path's features come before the one being credited.
    feature[base + length] = splitFeature;
    zeros[base + length] = zero;
    ones[base + length] = one;
    weights[base + length] = length === 0 ? 1 : 0;
    const grown = length + 1;
    const perGrown = reciprocal[grown]!;
    for (let i = length - 1; i >= 0; i -= 1) {
      const w = weights[base + i]!;
      weights[base + i + 1]! += one * w * (i + 1) * perGrown;
      weights[base + i] = zero * w * (length - i) * perGrown;
    }
    length = grown;

    const firstChild = this.left[node]!;
    if (firstChild < 0) {
      this.creditLeaf(base, length, this.value[node]!);
      return;
    }

    const split = this.splitFeature[node]!;
    const x = this.row[split]!;
    const hot = Number.isNaN(x)
      ? firstChild + this.missingRight[node]!
      : firstChild + +(x >= this.value[node]!);
    const cold = hot === firstChild ? firstChild + 1 : firstChild;

    // A feature split on again further down is taken out of the path and put back with
    // both splits' fractions multiplied, so each feature appears once.
    let incomingZero = 1;
    let incomingOne = 1;
    for (let k = 1; k < length; k += 1) {
      if (feature[base + k] !== split) continue;
      incomingZero = zeros[base + k]!;
      incomingOne = ones[base + k]!;
      this.unwind(base, length, k);
      length -= 1;
      break;
    }
    const share = this.coverShare;
    this.recurse(hot, level + 1, length, share[hot]! * incomingZero, incomingOne, split);
    // The row never reaches the cold side; its one fraction is 0, and with a zero cover
    // share too nothing below it can contribute.
    const coldZero = share[cold]! * incomingZero;
    if (coldZero !== 0) this.recurse(cold, level + 1, length, coldZero, 0, split);
  }

  /**
   * At a leaf, each feature on the path gets the leaf value times the difference of its
   * one and zero fractions, weighted by the sum of the path's weights with that feature
   * taken out (UNWIND without writing). One fractions are 0 or 1, and for every element
   * the row does not follow (one = 0) that sum is (length / zero) x a sum over the
   * weights that does not depend on the element: computed once per leaf, not per element.
   */
  private creditLeaf(base: number, length: number, leafValue: number): void {
    const feature = this.pathFeature;
    const zeros = this.pathZero;
    const ones = this.pathOne;
    const weights = this.pathWeight;
    const reciprocal = this.reciprocal;
    const out = this.out;
    const outBase = this.outBase;
    let coldSum = Number.NaN;
    for (let k = 1; k < length; k += 1) {
      if (ones[base + k] !== 0) {
        const zero = zeros[base + k]!;
        let unwound = 0;
        // one = 1: undo the extend from the longest path length down.
        const perLength = reciprocal[length]!;
        let next = weights[base + length - 1]!;
        for (let i = length - 2; i >= 0; i -= 1) {
          const w = next * length * reciprocal[i + 1]!;
          unwound += w;
          next = weights[base + i]! - w * zero * (length - i - 1) * perLength;
        }
        out[outBase + feature[base + k]!]! += unwound * (1 - zero) * leafValue;
        continue;
      }
      // one = 0: the unwound sum is (length / zero) x coldSum and the factor (one - zero)
      // is -zero, so zero cancels.
      if (Number.isNaN(coldSum)) {
        coldSum = 0;
        for (let i = length - 2; i >= 0; i -= 1) coldSum += weights[base + i]! * reciprocal[length - i - 1]!;
      }
      out[outBase + feature[base + k]!]! -= coldSum * length * leafValue;
    }
  }

  /** UNWIND: removes element `k` from the path of `length` in place, undoing its EXTEND on the weights. */
  private unwind(base: number, length: number, k: number): void {
    const feature = this.pathFeature;
    const zeros = this.pathZero;
    const ones = this.pathOne;
    const weights = this.pathWeight;
    const reciprocal = this.reciprocal;
    const zero = zeros[base + k]!;
    // One fractions are 0 or 1 (the row follows a branch or not).
    if (ones[base + k] !== 0) {
      const perLength = reciprocal[length]!;
      let next = weights[base + length - 1]!;
      for (let i = length - 2; i >= 0; i -= 1) {
        const previous = weights[base + i]!;
        const w = next * length * reciprocal[i + 1]!;
        weights[base + i] = w;
        next = previous - w * zero * (length - i - 1) * perLength;
      }
    } else {
      const perZero = length / zero;
      for (let i = length - 2; i >= 0; i -= 1) {
        weights[base + i] = weights[base + i]! * perZero * reciprocal[length - i - 1]!;
      }
    }
    for (let i = k; i < length - 1; i += 1) {
      feature[base + i] = feature[base + i + 1]!;
      zeros[base + i] = zeros[base + i + 1]!;
      ones[base + i] = ones[base + i + 1]!;
    }
  }
}
