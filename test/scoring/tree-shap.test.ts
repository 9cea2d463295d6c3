import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../shared/scoring/errors.ts';
import { parseCsvRows } from '../../shared/scoring/xgboost/csv-contract.ts';
import { TreeShapExplainer } from '../../shared/scoring/xgboost/tree-shap.ts';
import { compileXgboostModel } from '../../shared/scoring/xgboost/xgboost-json.ts';
import { XgboostPredictor } from '../../shared/scoring/xgboost/xgboost-predictor.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/tree-shap');
const read = (name: string, file: string) => readFileSync(path.join(fixtures, name, file), 'utf8');

/** A generated tree: a leaf with its value and cover, or a split with two subtrees. */
type GenTree =
  | { readonly leaf: number; readonly cover: number }
  | {
      readonly feature: number;
      readonly threshold: number;
      readonly defaultLeft: boolean;
      readonly left: GenTree;
      readonly right: GenTree;
    };

const coverOf = (tree: GenTree): number =>
  'leaf' in tree ? tree.cover : coverOf(tree.left) + coverOf(tree.right);

/** Writes a generated tree as XGBoost's JSON does (node 0 the root, leaf values in split_conditions). */
function treeJson(tree: GenTree, numFeatures: number) {
  const left: number[] = [];
  const right: number[] = [];
  const feature: number[] = [];
  const condition: number[] = [];
  const defaultLeft: number[] = [];
  const hessian: number[] = [];
  const visit = (node: GenTree): number => {
    const id = left.length;
    left.push(-1);
    right.push(-1);
    hessian.push(coverOf(node));
    if ('leaf' in node) {
      feature.push(0);
      condition.push(node.leaf);
      defaultLeft.push(0);
      return id;
    }
    feature.push(node.feature);
    condition.push(node.threshold);
    defaultLeft.push(node.defaultLeft ? 1 : 0);
    left[id] = visit(node.left);
    right[id] = visit(node.right);
    return id;
  };
  visit(tree);
  return {
    left_children: left,
    right_children: right,
    split_indices: feature,
    split_conditions: condition,
    default_left: defaultLeft,
    sum_hessian: hessian,
    split_type: left.map(() => 0),
    tree_param: { num_nodes: String(left.length), num_feature: String(numFeatures), size_leaf_vector: '0' },
  };
}

function modelJson(
  trees: readonly GenTree[],
  { numFeatures = 5, objective = 'reg:squarederror', numClass = 0, baseScore = '5E-1' } = {},
) {
  const groups = Math.max(1, numClass);
  return {
    learner: {
      learner_model_param: {
        base_score: baseScore,
        num_class: String(numClass),
        num_feature: String(numFeatures),
        num_target: '1',
      },
      objective: { name: objective },
      gradient_booster: {
        name: 'gbtree',
        model: {
          trees: trees.map((t) => treeJson(t, numFeatures)),
          tree_info: trees.map((_, i) => i % groups),
        },
      },
    },
  };
}

const f32 = Math.fround;

/** Where a row goes at a split, written out independently of the evaluator. */
const goesLeft = (node: Extract<GenTree, { feature: number }>, x: number) =>
  Number.isNaN(x) ? node.defaultLeft : f32(x) < f32(node.threshold);

/** The leaf value a row reaches, in float64. */
function leafValue(tree: GenTree, row: readonly number[]): number {
  if ('leaf' in tree) return f32(tree.leaf);
  return leafValue(goesLeft(tree, row[tree.feature] ?? Number.NaN) ? tree.left : tree.right, row);
}

/**
 * E[f(x) | x_S]: the paper's Algorithm 1 (known features follow the row, unknown ones
 * average both children by cover).
 */
function conditionalExpectation(tree: GenTree, row: readonly number[], known: ReadonlySet<number>): number {
  if ('leaf' in tree) return f32(tree.leaf);
  if (known.has(tree.feature)) {
    const next = goesLeft(tree, row[tree.feature] ?? Number.NaN) ? tree.left : tree.right;
    return conditionalExpectation(next, row, known);
  }
  const l = coverOf(tree.left);
  const r = coverOf(tree.right);
  return (
    (conditionalExpectation(tree.left, row, known) * l + conditionalExpectation(tree.right, row, known) * r) /
    coverOf(tree)
  );
}

/** Shapley values by enumerating every coalition: exponential, for a handful of features only. */
function bruteForceShapley(trees: readonly GenTree[], row: readonly number[], numFeatures: number): number[] {
  const value = (mask: number) => {
    const known = new Set<number>();
    for (let f = 0; f < numFeatures; f += 1) if (mask & (1 << f)) known.add(f);
    return trees.reduce((sum, t) => sum + conditionalExpectation(t, row, known), 0);
  };
  const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));
  const phi = new Array<number>(numFeatures).fill(0);
  for (let i = 0; i < numFeatures; i += 1) {
    for (let mask = 0; mask < 1 << numFeatures; mask += 1) {
      if (mask & (1 << i)) continue;
      let size = 0;
      for (let m = mask; m; m &= m - 1) size += 1;
      const weight = (factorial(size) * factorial(numFeatures - size - 1)) / factorial(numFeatures);
      phi[i]! += weight * (value(mask | (1 << i)) - value(mask));
    }
  }
  return phi;
}

const thresholds = [-1, -0.5, 0, 0.5, 1];

function treeArbitrary(numFeatures: number, maxDepth: number) {
  return fc.letrec<{ node: GenTree; leaf: GenTree; split: GenTree }>((tie) => ({
    node: fc.oneof({ depthSize: 'small', maxDepth }, tie('leaf'), tie('split')),
    leaf: fc.record({
      leaf: fc.double({ min: -2, max: 2, noNaN: true }),
      cover: fc.double({ min: 0.25, max: 50, noNaN: true }),
    }),
    split: fc.record({
      feature: fc.nat(numFeatures - 1),
      threshold: fc.constantFrom(...thresholds),
      defaultLeft: fc.boolean(),
      left: tie('node'),
      right: tie('node'),
    }),
  })).node;
}

/** Row values that often sit exactly on a threshold (x == threshold goes right) or are missing. */
const rowArbitrary = (numFeatures: number) =>
  fc.array(
    fc.oneof(fc.constantFrom(...thresholds, Number.NaN), fc.double({ min: -2, max: 2, noNaN: true })),
    { minLength: numFeatures, maxLength: numFeatures },
  );

const sum = (values: ArrayLike<number>, from: number, to: number) => {
  let total = 0;
  for (let i = from; i < to; i += 1) total += values[i]!;
  return total;
};

describe('TreeShapExplainer: parity with XGBoost pred_contribs', () => {
  // Fixtures written by scripts/fixtures/make-tree-shap-fixtures.py with XGBoost itself (see VERSION).
  describe.each([
    { name: 'binary', objective: 'binary:logistic', groups: 1 },
    { name: 'multiclass', objective: 'multi:softprob', groups: 3 },
    { name: 'regression', objective: 'reg:squarederror', groups: 1 },
  ])('$name', ({ name, objective, groups }) => {
    const explainer = TreeShapExplainer.fromJson(read(name, 'model.json'), `${name}/model.json`);
    const rows = parseCsvRows(read(name, 'rows.csv'));
    const expected = parseCsvRows(read(name, 'contribs.csv'));
    const margins = parseCsvRows(read(name, 'margins.csv'));

    it('explains rows with missing values, one fully missing', () => {
      expect(explainer.objective).toBe(objective);
      expect(explainer.numGroups).toBe(groups);
      expect(expected.numColumns).toBe(groups * (explainer.numFeatures + 1));
      expect(Array.from(rows.data).filter(Number.isNaN).length).toBeGreaterThan(50);
      expect(Array.from(rows.data.subarray(0, rows.numColumns)).every(Number.isNaN)).toBe(true);
    });

    it("matches XGBoost's contributions and bias to 1e-5", () => {
      const actual = explainer.explainMatrix(rows.data, rows.numRows, rows.numColumns);
      expect(actual.length).toBe(expected.data.length);
      let worst = 0;
      for (let i = 0; i < actual.length; i += 1) {
        worst = Math.max(worst, Math.abs(actual[i]! - expected.data[i]!));
      }
      expect(worst).toBeLessThan(1e-5);
    });

    it("adds up to XGBoost's margin for every row and class", () => {
      const actual = explainer.explainMatrix(rows.data, rows.numRows, rows.numColumns);
      const width = explainer.numFeatures + 1;
      for (let r = 0; r < rows.numRows; r += 1) {
        for (let g = 0; g < groups; g += 1) {
          const from = r * explainer.valuesPerRow + g * width;
          expect(sum(actual, from, from + width)).toBeCloseTo(margins.data[r * groups + g]!, 5);
        }
      }
    });
  });
});

describe('TreeShapExplainer on generated trees', () => {
  it('contributions + bias == margin to 1e-6, for every objective', () => {
    const numFeatures = 6;
    fc.assert(
      fc.property(
        fc.constantFrom(
          { objective: 'reg:squarederror', numClass: 0, baseScore: '1.5E0' },
          { objective: 'binary:logistic', numClass: 0, baseScore: '3E-1' },
          { objective: 'multi:softprob', numClass: 3, baseScore: '5E-1' },
        ),
        fc.array(treeArbitrary(numFeatures, 7), { minLength: 1, maxLength: 8 }),
        fc.array(rowArbitrary(numFeatures), { minLength: 1, maxLength: 4 }),
        (options, trees, rows) => {
          const forest = compileXgboostModel(modelJson(trees, { numFeatures, ...options }));
          const explainer = new TreeShapExplainer(forest);
          const margins = new XgboostPredictor(forest).predictMargins(
            Float64Array.from(rows.flat()),
            rows.length,
          );
          const groups = explainer.numGroups;
          const width = numFeatures + 1;
          rows.forEach((row, r) => {
            const contribs = explainer.explainRow(row);
            for (let g = 0; g < groups; g += 1) {
              // The exact float64 margin: base margin plus the leaves this row reaches.
              let exact = forest.baseMargin[g]!;
              trees.forEach((tree, t) => {
                if (t % groups === g) exact += leafValue(tree, row);
              });
              const total = sum(contribs, g * width, (g + 1) * width);
              expect(Math.abs(total - exact)).toBeLessThan(1e-6);
              // And the evaluator's margin, which sums in float32 as XGBoost does.
              expect(Math.abs(total - margins[r * groups + g]!)).toBeLessThan(1e-5);
            }
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('equals the Shapley values of E[f(x) | x_S] computed by enumerating coalitions', () => {
    const numFeatures = 4;
    fc.assert(
      fc.property(
        fc.array(treeArbitrary(numFeatures, 6), { minLength: 1, maxLength: 4 }),
        rowArbitrary(numFeatures),
        (trees, row) => {
          const explainer = new TreeShapExplainer(compileXgboostModel(modelJson(trees, { numFeatures })));
          const contribs = explainer.explainRow(row);
          const expected = bruteForceShapley(trees, row, numFeatures);
          expected.forEach((phi, f) => {
            expect(Math.abs(contribs[f]! - phi)).toBeLessThan(1e-9);
          });
          const emptyCoalition = trees.reduce((s, t) => s + conditionalExpectation(t, row, new Set()), 0);
          expect(Math.abs(contribs[numFeatures]! - (0.5 + emptyCoalition))).toBeLessThan(1e-9);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('TreeShapExplainer on hand-built trees', () => {
  const stump = (defaultLeft: boolean): GenTree => ({
    feature: 1,
    threshold: 0.5,
    defaultLeft,
    left: { leaf: -1, cover: 30 },
    right: { leaf: 2, cover: 10 },
  });
  // Cover-weighted mean of the leaves: (-1 * 30 + 2 * 10) / 40 = -0.25.
  const explain = (tree: GenTree, row: number[]) =>
    Array.from(
      new TreeShapExplainer(compileXgboostModel(modelJson([tree], { numFeatures: 2 }))).explainRow(row),
    );
  const expectClose = (actual: number[], expected: number[]) => {
    expect(actual).toHaveLength(expected.length);
    for (const [i, e] of expected.entries()) expect(actual[i]).toBeCloseTo(e, 12);
  };

  it('credits the split feature with the leaf reached minus the mean, and puts the mean in the bias', () => {
    expectClose(explain(stump(true), [7, 0.9]), [0, 2.25, 0.5 - 0.25]);
    expectClose(explain(stump(true), [7, 0.1]), [0, -0.75, 0.5 - 0.25]);
  });

  it("sends a missing value the split's default way", () => {
    expectClose(explain(stump(true), [0, Number.NaN]), [0, -0.75, 0.25]);
    expectClose(explain(stump(false), [0, Number.NaN]), [0, 2.25, 0.25]);
    // A row narrower than the model is missing its trailing columns.
    expectClose(explain(stump(false), [0]), [0, 2.25, 0.25]);
  });

  it('splits a second split on the same feature into one contribution, not two', () => {
    const twice: GenTree = {
      feature: 0,
      threshold: 0,
      defaultLeft: true,
      left: { leaf: -1, cover: 10 },
      right: {
        feature: 0,
        threshold: 1,
        defaultLeft: true,
        left: { leaf: 0, cover: 10 },
        right: { leaf: 3, cover: 20 },
      },
    };
    // Mean (-10 + 0 + 60) / 40 = 1.25; only feature 0 matters, so it gets leaf - mean.
    const [phi0, phi1, bias] = explain(twice, [2, 0]);
    expect(phi0).toBeCloseTo(3 - 1.25, 12);
    expect(phi1).toBe(0);
    expect(bias).toBeCloseTo(0.5 + 1.25, 12);
  });
});

describe('TreeShapExplainer refusals', () => {
  it('refuses, in one line, a model whose trees carry no sum_hessian', () => {
    const model = modelJson([{ leaf: 1, cover: 1 }]);
    for (const tree of model.learner.gradient_booster.model.trees) {
      delete (tree as { sum_hessian?: number[] }).sum_hessian;
    }
    const forest = compileXgboostModel(model);
    // Scoring does not need covers, so the model still scores.
    expect(Array.from(new XgboostPredictor(forest).predictRows([[0]]))).toEqual([1.5]);
    expect(() => new TreeShapExplainer(forest, 'm.json')).toThrow(ModelFormatError);
    expect(() => new TreeShapExplainer(forest, 'm.json')).toThrow(/^m\.json: the trees carry no sum_hessian/);
  });

  it('refuses a node with zero cover, which has no defined share', () => {
    const forest = compileXgboostModel(modelJson([{ leaf: 1, cover: 0 }]));
    expect(() => new TreeShapExplainer(forest)).toThrow(/node 0 has sum_hessian 0/);
  });

  it('refuses rows wider than the model, as the predictor does', () => {
    const explainer = new TreeShapExplainer(compileXgboostModel(modelJson([{ leaf: 1, cover: 1 }])));
    expect(() => explainer.explainRow([1, 2, 3, 4, 5, 6])).toThrow(/takes at most 5/);
  });
});

describe('compileXgboostModel keeps node covers', () => {
  it('carries sum_hessian per node, in the compiled layout', () => {
    const forest = compileXgboostModel(
      modelJson([
        {
          feature: 0,
          threshold: 0,
          defaultLeft: true,
          left: { leaf: 1, cover: 3 },
          right: { leaf: 2, cover: 5 },
        },
      ]),
    );
    expect(Array.from(forest.cover ?? [])).toEqual([8, 3, 5]);
  });

  it('refuses a sum_hessian whose length is not the node count', () => {
    const model = modelJson([{ leaf: 1, cover: 1 }]);
    model.learner.gradient_booster.model.trees[0]!.sum_hessian = [1, 2];
    expect(() => compileXgboostModel(model)).toThrow(/1 left_children but 2 cover/);
  });
});
