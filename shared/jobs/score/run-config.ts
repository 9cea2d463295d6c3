import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import { ConfigError } from '../../errors/errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { FeatureSpec } from '../../scoring/features/feature-spec.ts';
import { checkInputColumns, checkPassThroughColumns } from '../../scoring/infer-spec.ts';
import { type ColumnSource, inputColumnsOf } from '../../scoring/input-columns.ts';
import { scoreConfigOfRun } from '../../scoring/run-feature-spec.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';

/** Inputs whose columns plan reads (the first ones in key order): a drop of many files is checked by a sample. */
const INPUTS_CHECKED = 8;

/**
 * The config a new scoring run applies, at plan time: the feature spec resolved (inferred
 * from the model's feature names for `featureSpec: "infer"`), so units are priced by the
 * real column count, and every column the spec reads checked against the inputs' columns
 * (the first 8 inputs): a column the input lacks would be scored missing on every row. The
 * `output.passThrough` columns are checked the same way (else every unit fails on them).
 *
 * @throws ConfigError (exit 2 locally) when an input's CSV header or Parquet schema lacks a
 *   column the spec reads or passes through, naming it and the likely one; a JSONL input
 *   gets a warning for a spec column (a pass-through key absent from JSONL is written null)
 */
export async function scoreConfigOfNewRun(
  deps: { readonly store: ObjectStore },
  config: ScorePipelineConfig,
  inputs: readonly ColumnSource[],
  warn: (line: string) => void = (line) => console.warn(`warning: ${line}`),
): Promise<ScorePipelineConfig> {
  const resolved = await scoreConfigOfRun(deps.store, config);
  const spec = resolved.featureSpec as FeatureSpec;
  const columns = await mapWithConcurrency(inputs.slice(0, INPUTS_CHECKED), INPUTS_CHECKED, (input) =>
    inputColumnsOf(deps.store, input, config.input).catch((error: unknown) => {
      // An input that cannot be read here (gone, corrupt) is the worker's to report.
      if (error instanceof ConfigError) throw error;
      return undefined;
    }),
  );
  for (const found of columns) {
    if (!found) continue;
    const warning = checkInputColumns(spec, found);
    if (warning) warn(warning);
    checkPassThroughColumns(config.output.passThrough, found);
  }
  return resolved;
}
