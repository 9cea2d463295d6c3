import { createHash } from 'node:crypto';
import type { ObjectStore } from '../../ports/object-store.ts';
import { ModelUnusable } from '../errors.ts';
import { type InputColumnMap, sumByInputColumn, topK } from '../xgboost/reason-codes.ts';
import { TreeShapExplainer } from '../xgboost/tree-shap.ts';

/** One reason code as the `scores.reasons` JSON array holds it. */
export interface RowReason {
  readonly feature: string;
  /** What the input column added to the margin (before the sigmoid or softmax). */
  readonly contribution: number;
  /** The input column's value as read (null when missing). */
  readonly value: string | number | boolean | null;
}

/** A reason's `value`: the input as read, kept JSON-friendly (a bigint as text, an object as JSON; empty text is missing). */
function reasonValueOf(value: unknown): RowReason['value'] {
  if (value === undefined || value === null) return null;
  // Missing by the features' rule: an empty CSV field is no value.
  if (typeof value === 'string') return value.trim() === '' ? null : value;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** The margin a model output came from (the inverse link), for comparing with the explained margin. */
function outputOfMargins(objective: string, margins: Float64Array, group: number): number {
  if (objective === 'binary:logistic') return 1 / (1 + Math.exp(-margins[0]!));
  if (objective === 'multi:softprob') {
    let max = Number.NEGATIVE_INFINITY;
    for (const m of margins) max = Math.max(max, m);
    let sum = 0;
    for (const m of margins) sum += Math.exp(m - max);
    return Math.exp(margins[group]! - max) / sum;
  }
  return margins[group]!;
}

/**
 * Reason codes of scored rows (`explain.topK`): each row's exact TreeSHAP contributions
 * for the scored output group (`model.scoreClass` for multiclass), summed over each input
 * column's expanded columns, the `k` largest by |contribution|, with the input's value.
 *
 * It also holds the explained margin against the score the model gave: contributions +
 * bias are the margin, so through the link function they must give the row's score. A
 * row where they do not (the file changed between scoring and explaining, or is not the
 * model that scored) stops the unit with one line rather than write reasons of another model.
 */
export class RowReasons {
  private readonly contribs: Float64Array;
  private readonly perInput: Float64Array;
  private readonly margins: Float64Array;
  private readonly group: number;

  constructor(
    private readonly explainer: TreeShapExplainer,
    private readonly map: InputColumnMap,
    private readonly k: number,
    scoreClass: number,
    private readonly source: string,
  ) {
    this.contribs = new Float64Array(explainer.valuesPerRow);
    this.perInput = new Float64Array(map.inputs.length);
    this.margins = new Float64Array(explainer.numGroups);
    this.group = explainer.numGroups > 1 ? scoreClass : 0;
    if (map.inputOfColumn.length > explainer.numFeatures)
      throw new ModelUnusable(
        `${source}: the feature spec expands to ${map.inputOfColumn.length} columns, the model takes ${explainer.numFeatures}`,
      );
  }

  /**
   * One row's reasons as the `reasons` column's JSON text.
   * @param features the row's expanded feature values (NaN = missing), as scored
   * @param values the row as read, for each reason's `value`
   * @param outputs the model's outputs for the row, as scored
   */
  reasonsOf(
    features: ArrayLike<number>,
    values: Readonly<Record<string, unknown>>,
    outputs: readonly number[],
  ): string {
    const { explainer, contribs, group } = this;
    explainer.explainRowInto(features, contribs, 0);
    const stride = explainer.numFeatures + 1;
    for (let g = 0; g < explainer.numGroups; g += 1) {
      let margin = 0;
      for (let c = 0; c <= explainer.numFeatures; c += 1) margin += contribs[g * stride + c]!;
      this.margins[g] = margin;
    }
    this.checkScore(outputs);
    const groupContribs = contribs.subarray(group * stride, group * stride + explainer.numFeatures);
    sumByInputColumn(groupContribs.subarray(0, this.map.inputOfColumn.length), this.map, this.perInput);
    const reasons: RowReason[] = topK(this.perInput, this.k).map(({ index, contribution }) => {
      const feature = this.map.inputs[index]!;
      return { feature, contribution, value: reasonValueOf(values[feature]) };
    });
    return JSON.stringify(reasons);
  }

  private checkScore(outputs: readonly number[]): void {
    const scored = outputs.length === 1 ? outputs[0]! : outputs[this.group]!;
    const explained = outputOfMargins(this.explainer.objective, this.margins, this.group);
    // The evaluator sums trees in float32 (as XGBoost does), TreeSHAP in float64: they agree
    // to a few float32 steps; a different model misses by far more.
    if (!(Math.abs(explained - scored) <= 1e-4 * Math.max(1, Math.abs(scored))))
      throw new ModelUnusable(
        `${this.source}: the reason codes' model gives ${explained} where the row was scored ${scored}; the model file changed during the run (rerun it) or is not the model that scored`,
      );
  }
}

interface CachedExplainer {
  readonly version: string | undefined;
  readonly digest: string;
  readonly explainer: TreeShapExplainer;
}

const explainers = new WeakMap<ObjectStore, Map<string, CachedExplainer>>();

const MIB = 1024 * 1024;

/**
 * The TreeSHAP explainer of the XGBoost JSON model at `key`, read once per worker and
 * object version: one HEAD per call (a unit), and the object read and compiled again only
 * when its version changed. A model that cannot be explained (absent, larger than
 * `maxModelBytes`, no node cover) is {@link ModelUnusable}: one line, the run fails.
 */
export async function workerExplainer(
  store: ObjectStore,
  key: string,
  maxModelBytes: number,
): Promise<TreeShapExplainer> {
  let byKey = explainers.get(store);
  if (!byKey) {
    byKey = new Map();
    explainers.set(store, byKey);
  }
  const info = await store.head(key, { version: true });
  if (!info) throw new ModelUnusable(`model.modelKey: no object ${key} in the bucket (reason codes read it)`);
  const cached = byKey.get(key);
  if (cached && info.version !== undefined && cached.version === info.version) return cached.explainer;
  if (info.size > maxModelBytes)
    throw new ModelUnusable(
      `model.modelKey: ${key} is ${(info.size / MIB).toFixed(1)} MiB, more than the worker loads for reason codes (${(maxModelBytes / MIB).toFixed(0)} MiB): raise workers.memoryMiB`,
    );
  const bytes = await store.get(key);
  if (!bytes)
    throw new ModelUnusable(`model.modelKey: no object ${key} in the bucket (reason codes read it)`);
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (cached && cached.digest === digest) {
    byKey.set(key, { ...cached, version: info.version });
    return cached.explainer;
  }
  const explainer = TreeShapExplainer.fromJson(new TextDecoder().decode(bytes), key);
  byKey.set(key, { version: info.version, digest, explainer });
  return explainer;
}
