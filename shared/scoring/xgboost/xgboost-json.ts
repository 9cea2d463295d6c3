import { ModelFormatError } from '../errors.ts';

/** Objectives the evaluator reproduces; each fixes how base_score and the output are transformed. */
export const SUPPORTED_OBJECTIVES = ['reg:squarederror', 'binary:logistic', 'multi:softprob'] as const;
export type XgboostObjective = (typeof SUPPORTED_OBJECTIVES)[number];

/**
 * Every tree of a gbtree model flattened into typed arrays, nodes renumbered so the right
 * child of node `i` is always `left[i] + 1`. A node is a leaf when `left[i] < 0`; for a
 * leaf, `value[i]` is its output (XGBoost keeps leaf values in `split_conditions`; its
 * `base_weights` are the weights before the learning rate), for a split it is the
 * threshold. `missingRight[i]` is 1 when a missing value goes right (default_left = 0).
 */
export interface CompiledForest {
  readonly objective: XgboostObjective;
  /** Columns the model was trained on; rows may be shorter (trailing columns missing). */
  readonly numFeatures: number;
  /** Output groups: 1 for regression and binary, the class count for multi:softprob. */
  readonly numGroups: number;
  /** Margin each group starts from (base_score already on the margin scale), float32-rounded. */
  readonly baseMargin: Float64Array;
  /** Index of each tree's root in the node arrays. */
  readonly treeRoots: Int32Array;
  /** Output group of each tree (`tree_info`). */
  readonly treeGroups: Int32Array;
  readonly feature: Int32Array;
  readonly missingRight: Uint8Array;
  readonly value: Float32Array;
  readonly left: Int32Array;
  readonly nodeCount: number;
  /**
   * Each node's cover (`sum_hessian`: the training rows' hessian sum that reached it),
   * which TreeSHAP weighs the branches by; absent when some tree does not carry it.
   */
  readonly cover?: Float64Array;
  /**
   * The names the model was trained with (`learner.feature_names`, written when the
   * training data had column names), one per feature; absent when the model has none.
   */
  readonly featureNames?: readonly string[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function field(parent: Json, key: string, path: string, source: string): unknown {
  if (!(key in parent)) throw new ModelFormatError(`${source}: ${path}.${key} is missing`);
  return parent[key];
}

function objectAt(parent: Json, key: string, path: string, source: string): Json {
  const value = field(parent, key, path, source);
  if (!isObject(value)) throw new ModelFormatError(`${source}: ${path}.${key} must be an object`);
  return value;
}

function numbersAt(parent: Json, key: string, path: string, source: string): number[] {
  const value = field(parent, key, path, source);
  if (!Array.isArray(value)) throw new ModelFormatError(`${source}: ${path}.${key} must be an array`);
  return value.map((item, i) => {
    // default_left is written as 0/1 by some versions and as booleans by others.
    const n = typeof item === 'boolean' ? Number(item) : item;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      throw new ModelFormatError(`${source}: ${path}.${key}[${i}] must be a finite number`);
    }
    return n;
  });
}

/** XGBoost writes parameters as strings; integers must be whole and non-negative. */
function integerParam(parent: Json, key: string, path: string, source: string, fallback?: number): number {
  if (!(key in parent) && fallback !== undefined) return fallback;
  const raw = field(parent, key, path, source);
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new ModelFormatError(
      `${source}: ${path}.${key} must be a non-negative integer (got ${JSON.stringify(raw)})`,
    );
  }
  return n;
}

/**
 * Reads `base_score` in every form XGBoost writes it: a number, a numeric string
 * ("5E-1", XGBoost 1.x), a bracketed string ("[5E-1]", XGBoost 2.x) or a bracketed
 * vector with one value per class ("[2.5E-1,2.5E-1,5E-1]", XGBoost 3.x multi-class).
 */
export function parseBaseScore(raw: unknown, source = 'model'): number[] {
  const fail = () =>
    new ModelFormatError(
      `${source}: learner.learner_model_param.base_score ${JSON.stringify(raw)} is not a number or a [number, ...] vector`,
    );
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) throw fail();
    return [raw];
  }
  if (Array.isArray(raw)) {
    if (raw.length === 0 || !raw.every((v) => typeof v === 'number' && Number.isFinite(v))) throw fail();
    return raw as number[];
  }
  if (typeof raw !== 'string') throw fail();
  let text = raw.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const parts = text.split(',').map((part) => part.trim());
  const values = parts.map((part) => (part === '' ? Number.NaN : Number(part)));
  if (values.length === 0 || !values.every(Number.isFinite)) throw fail();
  return values;
}

/**
 * Margin each output group starts from. binary:logistic stores base_score as a
 * probability, so it becomes logit(p); reg:squarederror adds it as is; multi:softprob
 * adds it as is too (XGBoost applies no link to it: a scalar shifts every class alike and
 * a per-class vector is already on the margin scale).
 */
function baseMargins(
  objective: XgboostObjective,
  baseScore: number[],
  numGroups: number,
  source: string,
): Float64Array {
  if (baseScore.length !== 1 && baseScore.length !== numGroups) {
    throw new ModelFormatError(
      `${source}: base_score has ${baseScore.length} values, the model has ${numGroups} output groups`,
    );
  }
  const margins = new Float64Array(numGroups);
  for (let g = 0; g < numGroups; g += 1) {
    const score = baseScore.length === 1 ? baseScore[0]! : baseScore[g]!;
    let margin = score;
    if (objective === 'binary:logistic') {
      if (!(score > 0 && score < 1)) {
        throw new ModelFormatError(`${source}: base_score ${score} must be in (0, 1) for binary:logistic`);
      }
      const p = Math.fround(score);
      margin = -Math.log(1 / p - 1);
    }
    margins[g] = Math.fround(margin);
  }
  return margins;
}

interface RawTree {
  readonly left: number[];
  readonly right: number[];
  readonly feature: number[];
  readonly condition: number[];
  readonly defaultLeft: number[];
  /** `sum_hessian`, when the tree carries it (only explanations need it). */
  readonly cover?: number[];
}

function readTree(tree: unknown, index: number, numFeatures: number, source: string): RawTree {
  const path = `learner.gradient_booster.model.trees[${index}]`;
  if (!isObject(tree)) throw new ModelFormatError(`${source}: ${path} must be an object`);
  if (isObject(tree.tree_param)) {
    const leafSize = integerParam(tree.tree_param, 'size_leaf_vector', `${path}.tree_param`, source, 0);
    if (leafSize > 1) {
      throw new ModelFormatError(
        `${source}: ${path} has vector leaves (multi_strategy=multi_output_tree), which are not supported`,
      );
    }
  }
  if (Array.isArray(tree.split_type) && tree.split_type.some((t) => t !== 0)) {
    throw new ModelFormatError(`${source}: ${path} has categorical splits, which are not supported`);
  }
  const raw: RawTree = {
    left: numbersAt(tree, 'left_children', path, source),
    right: numbersAt(tree, 'right_children', path, source),
    feature: numbersAt(tree, 'split_indices', path, source),
    condition: numbersAt(tree, 'split_conditions', path, source),
    defaultLeft: numbersAt(tree, 'default_left', path, source),
    ...('sum_hessian' in tree ? { cover: numbersAt(tree, 'sum_hessian', path, source) } : {}),
  };
  const n = raw.left.length;
  if (n === 0) throw new ModelFormatError(`${source}: ${path} has no nodes`);
  for (const [name, list] of Object.entries(raw)) {
    if ((list as number[]).length !== n) {
      throw new ModelFormatError(
        `${source}: ${path} has ${n} left_children but ${(list as number[]).length} ${name}`,
      );
    }
  }
  for (let i = 0; i < n; i += 1) {
    if (raw.left[i] === -1) continue;
    const l = raw.left[i]!;
    const r = raw.right[i]!;
    if (!Number.isInteger(l) || !Number.isInteger(r) || l <= 0 || r <= 0 || l >= n || r >= n) {
      throw new ModelFormatError(`${source}: ${path} node ${i} has children out of range`);
    }
    const f = raw.feature[i]!;
    if (!Number.isInteger(f) || f < 0 || f >= numFeatures) {
      throw new ModelFormatError(
        `${source}: ${path} node ${i} splits on feature ${f}, the model has ${numFeatures} features`,
      );
    }
  }
  return raw;
}

/**
 * Appends one tree in breadth-first order so siblings are adjacent (right = left + 1);
 * a node reached twice means the arrays do not describe a tree.
 */
function appendTree(
  raw: RawTree,
  out: { feature: number[]; missingRight: number[]; value: number[]; left: number[]; cover: number[] },
  path: string,
  source: string,
): void {
  const base = out.feature.length;
  const seen = new Uint8Array(raw.left.length);
  const order = [0];
  seen[0] = 1;
  for (let head = 0; head < order.length; head += 1) {
    const node = order[head]!;
    const slot = base + head;
    out.cover[slot] = raw.cover ? raw.cover[node]! : Number.NaN;
    const l = raw.left[node]!;
    if (l === -1) {
      out.feature[slot] = 0;
      out.missingRight[slot] = 0;
      out.value[slot] = raw.condition[node]!;
      out.left[slot] = -1;
      continue;
    }
    const r = raw.right[node]!;
    for (const child of [l, r]) {
      if (seen[child])
        throw new ModelFormatError(`${source}: ${path} is not a tree (node ${child} is reached twice)`);
      seen[child] = 1;
    }
    out.left[slot] = base + order.length;
    order.push(l, r);
    out.feature[slot] = raw.feature[node]!;
    out.missingRight[slot] = raw.defaultLeft[node] ? 0 : 1;
    out.value[slot] = raw.condition[node]!;
  }
}

/**
 * `learner.feature_names` when the model carries them (XGBoost writes `[]` when trained
 * without column names); they must be strings, one per feature.
 */
function featureNamesOf(learner: Json, numFeatures: number, source: string): string[] | undefined {
  const names = learner.feature_names;
  if (names === undefined || (Array.isArray(names) && names.length === 0)) return undefined;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    throw new ModelFormatError(`${source}: learner.feature_names must be an array of strings`);
  }
  if (names.length !== numFeatures) {
    throw new ModelFormatError(
      `${source}: learner.feature_names has ${names.length} names, num_feature is ${numFeatures}`,
    );
  }
  return names as string[];
}

/** What a model says of its input columns, read without compiling its trees. */
export interface ModelFeatures {
  readonly numFeatures: number;
  readonly featureNames?: readonly string[];
}

/**
 * The model's feature count and names (`learner.learner_model_param.num_feature`,
 * `learner.feature_names`) from its parsed JSON, for a schema check before any tree is
 * compiled.
 */
export function modelFeaturesOf(raw: unknown, source = 'model'): ModelFeatures {
  if (!isObject(raw)) throw new ModelFormatError(`${source}: not an XGBoost JSON model (expected an object)`);
  const learner = objectAt(raw, 'learner', '(root)', source);
  const param = objectAt(learner, 'learner_model_param', 'learner', source);
  const numFeatures = integerParam(param, 'num_feature', 'learner.learner_model_param', source);
  const featureNames = featureNamesOf(learner, numFeatures, source);
  return featureNames ? { numFeatures, featureNames } : { numFeatures };
}

/**
 * Validates an XGBoost JSON model (the output of `Booster.save_model("model.json")`) and
 * compiles its trees into a {@link CompiledForest}. Anything the evaluator cannot
 * reproduce exactly (gblinear, dart, categorical splits, vector leaves, other
 * objectives) fails here with one line naming the field, never later with a wrong score.
 */
export function compileXgboostModel(raw: unknown, source = 'model'): CompiledForest {
  if (!isObject(raw)) throw new ModelFormatError(`${source}: not an XGBoost JSON model (expected an object)`);
  const learner = objectAt(raw, 'learner', '(root)', source);
  const booster = objectAt(learner, 'gradient_booster', 'learner', source);
  const boosterName = field(booster, 'name', 'learner.gradient_booster', source);
  if (boosterName !== 'gbtree') {
    throw new ModelFormatError(
      `${source}: booster ${JSON.stringify(boosterName)} is not supported (only gbtree; retrain with booster="gbtree")`,
    );
  }
  const objectiveName = field(
    objectAt(learner, 'objective', 'learner', source),
    'name',
    'learner.objective',
    source,
  );
  if (!SUPPORTED_OBJECTIVES.includes(objectiveName as XgboostObjective)) {
    throw new ModelFormatError(
      `${source}: objective ${JSON.stringify(objectiveName)} is not supported (supported: ${SUPPORTED_OBJECTIVES.join(', ')})`,
    );
  }
  const objective = objectiveName as XgboostObjective;
  const param = objectAt(learner, 'learner_model_param', 'learner', source);
  const paramPath = 'learner.learner_model_param';
  const numFeatures = integerParam(param, 'num_feature', paramPath, source);
  const featureNames = featureNamesOf(learner, numFeatures, source);
  const numClass = integerParam(param, 'num_class', paramPath, source, 0);
  const numTarget = integerParam(param, 'num_target', paramPath, source, 1);
  if (numTarget > 1) {
    throw new ModelFormatError(`${source}: num_target ${numTarget}: multi-output models are not supported`);
  }
  if (objective === 'multi:softprob' && numClass < 2) {
    throw new ModelFormatError(`${source}: multi:softprob needs num_class >= 2 (got ${numClass})`);
  }
  const numGroups = objective === 'multi:softprob' ? numClass : 1;
  const baseMargin = baseMargins(
    objective,
    parseBaseScore(field(param, 'base_score', paramPath, source), source),
    numGroups,
    source,
  );

  const model = objectAt(booster, 'model', 'learner.gradient_booster', source);
  const trees = field(model, 'trees', 'learner.gradient_booster.model', source);
  if (!Array.isArray(trees))
    throw new ModelFormatError(`${source}: learner.gradient_booster.model.trees must be an array`);
  const treeInfo = numbersAt(model, 'tree_info', 'learner.gradient_booster.model', source);
  if (treeInfo.length !== trees.length) {
    throw new ModelFormatError(`${source}: ${trees.length} trees but ${treeInfo.length} tree_info entries`);
  }
  const out = {
    feature: [] as number[],
    missingRight: [] as number[],
    value: [] as number[],
    left: [] as number[],
    cover: [] as number[],
  };
  const treeRoots = new Int32Array(trees.length);
  const treeGroups = new Int32Array(trees.length);
  trees.forEach((tree, i) => {
    const group = treeInfo[i]!;
    if (!Number.isInteger(group) || group < 0 || group >= numGroups) {
      throw new ModelFormatError(
        `${source}: tree_info[${i}] is ${group}, the model has ${numGroups} output groups`,
      );
    }
    treeRoots[i] = out.feature.length;
    treeGroups[i] = group;
    appendTree(
      readTree(tree, i, numFeatures, source),
      out,
      `learner.gradient_booster.model.trees[${i}]`,
      source,
    );
  });
  return {
    objective,
    numFeatures,
    numGroups,
    baseMargin,
    treeRoots,
    treeGroups,
    feature: Int32Array.from(out.feature),
    missingRight: Uint8Array.from(out.missingRight),
    value: Float32Array.from(out.value),
    left: Int32Array.from(out.left),
    nodeCount: out.feature.length,
    ...(out.cover.some(Number.isNaN) ? {} : { cover: Float64Array.from(out.cover) }),
    ...(featureNames ? { featureNames } : {}),
  };
}

/** Parses the text of an XGBoost JSON model file and compiles it; a JSON syntax error is one line too. */
export function parseXgboostModelJson(text: string, source = 'model'): CompiledForest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(`${source}: not valid JSON (${(error as Error).message.split('\n')[0]})`, {
      cause: error,
    });
  }
  return compileXgboostModel(raw, source);
}
