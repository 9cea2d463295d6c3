import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors/errors.ts';
import { ModelFormatError } from '../../shared/scoring/errors.ts';
import { compileXgboostModel, parseBaseScore } from '../../shared/scoring/xgboost/xgboost-json.ts';
import { XgboostPredictor } from '../../shared/scoring/xgboost/xgboost-predictor.ts';

interface StumpOptions {
  feature?: number;
  threshold?: number;
  leftValue?: number;
  rightValue?: number;
  defaultLeft?: number | boolean;
}

/** One split on `feature` at `threshold`, as XGBoost writes it (leaf values in split_conditions). */
function stump({
  feature = 0,
  threshold = 0.5,
  leftValue = -1,
  rightValue = 1,
  defaultLeft = 1,
}: StumpOptions = {}) {
  return {
    left_children: [1, -1, -1],
    right_children: [2, -1, -1],
    split_indices: [feature, 0, 0],
    split_conditions: [threshold, leftValue, rightValue],
    default_left: [defaultLeft, 0, 0],
    base_weights: [0, leftValue * 10, rightValue * 10],
    split_type: [0, 0, 0],
    tree_param: { num_nodes: '3', num_feature: '2', size_leaf_vector: '0' },
  };
}

function modelJson({
  objective = 'reg:squarederror',
  baseScore = '5E-1' as unknown,
  numClass = '0',
  trees = [stump()] as unknown[],
  treeInfo = undefined as number[] | undefined,
  booster = 'gbtree',
} = {}) {
  return {
    learner: {
      learner_model_param: { base_score: baseScore, num_class: numClass, num_feature: '2', num_target: '1' },
      objective: { name: objective },
      gradient_booster: {
        name: booster,
        model: { trees, tree_info: treeInfo ?? trees.map(() => 0) },
      },
    },
    version: [2, 1, 0],
  };
}

const predict = (model: unknown, rows: number[][]) =>
  Array.from(new XgboostPredictor(compileXgboostModel(model)).predictRows(rows));

describe('parseBaseScore', () => {
  it('reads every form XGBoost writes', () => {
    expect(parseBaseScore('5E-1')).toEqual([0.5]);
    expect(parseBaseScore('[5E-1]')).toEqual([0.5]);
    expect(parseBaseScore(0.25)).toEqual([0.25]);
    expect(parseBaseScore('[2.5E-1,2.5E-1,5E-1]')).toEqual([0.25, 0.25, 0.5]);
    expect(parseBaseScore(' [ 1E0 , -2E0 ] ')).toEqual([1, -2]);
  });

  it('refuses what is not a number or a vector, in one line', () => {
    for (const bad of ['', '[]', 'abc', '[1,,2]', null, {}, Number.NaN]) {
      expect(() => parseBaseScore(bad)).toThrow(
        /^model: learner\.learner_model_param\.base_score .* is not a number/,
      );
    }
  });
});

describe('XgboostPredictor on hand-built trees', () => {
  it('goes left when x < split_condition and right when x equals it', () => {
    expect(predict(modelJson({ baseScore: '0' }), [[0.4], [0.5], [0.6]])).toEqual([-1, 1, 1]);
  });

  it('compares in float32, as XGBoost stores features', () => {
    // 0.1 as float32 is slightly above 0.1 as float64: a float64 comparison would go left.
    const threshold = Math.fround(0.1);
    expect(threshold).toBeGreaterThan(0.1);
    expect(predict(modelJson({ baseScore: '0', trees: [stump({ threshold })] }), [[0.1]])).toEqual([1]);
  });

  it('sends missing values the default way, whether default_left is a number or a boolean', () => {
    const left = modelJson({ baseScore: '0', trees: [stump({ defaultLeft: 1 })] });
    const right = modelJson({ baseScore: '0', trees: [stump({ defaultLeft: false })] });
    expect(predict(left, [[Number.NaN]])).toEqual([-1]);
    expect(predict(right, [[Number.NaN]])).toEqual([1]);
    // A row shorter than the model reads its trailing columns as missing.
    const onSecond = modelJson({ baseScore: '0', trees: [stump({ feature: 1, defaultLeft: true })] });
    expect(predict(onSecond, [[9]])).toEqual([-1]);
  });

  it('adds base_score as is for regression', () => {
    expect(predict(modelJson({ baseScore: '[1E1]' }), [[0]])).toEqual([9]);
  });

  it('turns the binary base_score into a logit before adding tree outputs', () => {
    const [p] = predict(
      modelJson({ objective: 'binary:logistic', baseScore: '[2E-1]', trees: [stump({ leftValue: 0 })] }),
      [[0]],
    );
    // A zero tree output leaves the base probability itself.
    expect(p).toBeCloseTo(0.2, 6);
    const [q] = predict(modelJson({ objective: 'binary:logistic', baseScore: '5E-1' }), [[1]]);
    expect(q).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
  });

  it('sums each class its own trees and applies softmax, with a per-class base_score vector', () => {
    const model = modelJson({
      objective: 'multi:softprob',
      numClass: '3',
      baseScore: '[0E0,1E0,0E0]',
      trees: [stump({ leftValue: 2 }), stump({ leftValue: 0 }), stump({ leftValue: 0, rightValue: 3 })],
      treeInfo: [0, 1, 2],
    });
    const [a, b, c] = predict(model, [[0]]);
    const z = Math.exp(2) + Math.exp(1) + Math.exp(0);
    expect(a).toBeCloseTo(Math.exp(2) / z, 6);
    expect(b).toBeCloseTo(Math.exp(1) / z, 6);
    expect(c).toBeCloseTo(1 / z, 6);
  });

  it('walks trees whose node ids are not in breadth-first order', () => {
    // Root 0 -> (2, 1); node 2 splits again -> (3, 4). Pruning and node reuse produce such layouts.
    const tree = {
      left_children: [2, -1, 3, -1, -1],
      right_children: [1, -1, 4, -1, -1],
      split_indices: [0, 0, 1, 0, 0],
      split_conditions: [0, 7, 0, 5, 6],
      default_left: [0, 0, 0, 0, 0],
    };
    const model = modelJson({ baseScore: '0', trees: [tree] });
    expect(
      predict(model, [
        [1, 0],
        [-1, -1],
        [-1, 1],
      ]),
    ).toEqual([7, 5, 6]);
  });

  it('refuses rows wider than the model', () => {
    expect(() => predict(modelJson(), [[1, 2, 3]])).toThrow(/has 3 values, the model takes at most 2/);
  });
});

describe('compileXgboostModel refusals', () => {
  const refusal = (model: unknown) => {
    try {
      compileXgboostModel(model, 'm.json');
    } catch (error) {
      expect(error).toBeInstanceOf(ModelFormatError);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).not.toContain('\n');
      return (error as Error).message;
    }
    throw new Error('expected a refusal');
  };

  it('names unsupported boosters and objectives', () => {
    expect(refusal(modelJson({ booster: 'gblinear' }))).toBe(
      'm.json: booster "gblinear" is not supported (only gbtree; retrain with booster="gbtree")',
    );
    expect(refusal(modelJson({ booster: 'dart' }))).toMatch(/booster "dart" is not supported/);
    expect(refusal(modelJson({ objective: 'rank:pairwise' }))).toMatch(
      /objective "rank:pairwise" is not supported \(supported: reg:squarederror, binary:logistic, multi:softprob\)/,
    );
  });

  it('names the missing or malformed field', () => {
    expect(refusal({})).toBe('m.json: (root).learner is missing');
    expect(refusal([])).toMatch(/not an XGBoost JSON model/);
    const noTrees = modelJson();
    delete (noTrees.learner.gradient_booster.model as { trees?: unknown }).trees;
    expect(refusal(noTrees)).toBe('m.json: learner.gradient_booster.model.trees is missing');
    expect(refusal(modelJson({ trees: [{ ...stump(), split_conditions: [0.5, 1] }] }))).toMatch(
      /trees\[0\] has 3 left_children but 2 condition/,
    );
    expect(refusal(modelJson({ trees: [{ ...stump(), left_children: [5, -1, -1] }] }))).toMatch(
      /node 0 has children out of range/,
    );
    expect(refusal(modelJson({ trees: [stump({ feature: 7 })] }))).toMatch(
      /splits on feature 7, the model has 2/,
    );
    expect(refusal(modelJson({ trees: [{ ...stump(), right_children: [1, -1, -1] }] }))).toMatch(
      /is not a tree \(node 1 is reached twice\)/,
    );
    expect(refusal(modelJson({ treeInfo: [3] }))).toMatch(
      /tree_info\[0\] is 3, the model has 1 output groups/,
    );
    expect(refusal(modelJson({ objective: 'binary:logistic', baseScore: '2' }))).toMatch(
      /must be in \(0, 1\)/,
    );
    expect(refusal(modelJson({ objective: 'multi:softprob', numClass: '1' }))).toMatch(/num_class >= 2/);
  });

  it('refuses categorical splits and vector leaves instead of scoring them wrongly', () => {
    expect(refusal(modelJson({ trees: [{ ...stump(), split_type: [1, 0, 0] }] }))).toMatch(
      /categorical splits/,
    );
    const vectorLeaf = { ...stump(), tree_param: { size_leaf_vector: '3' } };
    expect(refusal(modelJson({ trees: [vectorLeaf] }))).toMatch(/vector leaves/);
  });

  it('reports invalid JSON text in one line', () => {
    expect(() => XgboostPredictor.fromJson('{"learner":', 'm.json')).toThrow(/^m\.json: not valid JSON \(/);
  });
});
