import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { classifySource } from '../../shared/plan/plan-units.ts';
import { ModelFormatError } from '../../shared/scoring/errors.ts';
import {
  type FeatureDefinition,
  type FeatureSpec,
  featureSpecSchema,
} from '../../shared/scoring/features/feature-spec.ts';
import { checkInputColumns, inferFeatureSpec } from '../../shared/scoring/infer-spec.ts';
import { inputColumnsOf } from '../../shared/scoring/input-columns.ts';
import { checkModelSchema } from '../../shared/scoring/model-schema.ts';
import { type ModelFeatures, modelFeaturesOf } from '../../shared/scoring/xgboost/xgboost-json.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';
import { defaultPipelinesDir } from './run.ts';

/** The input fields the readers need when no pipeline is named: the defaults of a pipeline's `input`. */
const DEFAULT_FIELDS = {
  idField: 'id',
  textField: 'text',
  metadataFields: [],
  maxRecordBytes: 1024 * 1024,
} as const;

interface FeaturesRequest {
  readonly input: string;
  readonly model: string;
  readonly pipeline?: string | undefined;
  readonly pipelines?: string | undefined;
}

function parseFeaturesArgs(args: string[]): FeaturesRequest {
  const { values, positionals } = parseCommandArgs(args, {
    model: { type: 'string' },
    pipeline: { type: 'string' },
    pipelines: { type: 'string' },
  });
  if (positionals.length !== 1)
    throw new UsageError(
      'give one input PATH (a CSV, JSONL or Parquet file), e.g. sluice features data.csv --model model.json',
    );
  if (!values.model)
    throw new UsageError('--model FILE is required (an XGBoost JSON model saved with feature names)');
  return {
    input: positionals[0]!,
    model: values.model,
    pipeline: values.pipeline,
    pipelines: values.pipelines,
  };
}

/** The model's features from a local XGBoost JSON file. */
async function readModelFeatures(file: string): Promise<ModelFeatures> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`--model: no file ${file}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(`${file}: not valid JSON (${(error as Error).message.split('\n')[0]})`);
  }
  return modelFeaturesOf(raw, file);
}

/** A feature as a user writes it: keys at their defaults left out, `type` and `column` first. */
function compactFeature(feature: FeatureDefinition): Record<string, unknown> {
  const { type, column, ...rest } = feature;
  const out: Record<string, unknown> = { type, column };
  for (const [key, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    if (
      type === 'numeric' &&
      ((key === 'transform' && value === 'none') || (key === 'impute' && value === 'keep'))
    )
      continue;
    if (type === 'onehot' && ((key === 'topK' && value === 20) || (key === 'minCount' && value === 1)))
      continue;
    if (type === 'hash' && ((key === 'signed' && value === false) || (key === 'seed' && value === 0)))
      continue;
    if (type === 'embedding' && key === 'unknown' && value === 'zeros') continue;
    out[key] = value;
  }
  return out;
}

/** The spec as JSON ready to paste into a pipeline's `featureSpec`: one feature a line. */
export function formatFeatureSpec(spec: FeatureSpec): string {
  const lines = spec.features.map((f) => {
    const keys = Object.entries(compactFeature(f)).map(
      ([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`,
    );
    return `    { ${keys.join(', ')} }`;
  });
  const accuracy = spec.quantileAccuracy === 0.001 ? '' : `,\n  "quantileAccuracy": ${spec.quantileAccuracy}`;
  return `{\n  "features": [\n${lines.join(',\n')}\n  ]${accuracy}\n}`;
}

/**
 * `sluice features PATH --model FILE [--pipeline NAME]`: the feature spec a scoring run
 * would apply, inferred from the model's feature names (issue 16, item 2) with the
 * pipeline's exceptions when one is named, checked against the input's columns (CSV
 * header, Parquet schema, JSONL keys) and the model's schema; printed as JSON to paste
 * into `featureSpec` and edit. Problems are one line on stderr, exit 2.
 */
export async function featuresCommand(args: string[], io: CommandIo): Promise<number> {
  const request = parseFeaturesArgs(args);
  const config = request.pipeline
    ? await loadPipelineConfig(request.pipelines ?? defaultPipelinesDir(), request.pipeline)
    : undefined;
  if (config && config.kind !== 'score')
    throw new UsageError(
      `sluice features needs a score pipeline; ${config.name} is a ${config.kind} pipeline`,
    );
  const model = await readModelFeatures(request.model);
  const configured: FeatureSpec = config
    ? (config.featureSpec as FeatureSpec)
    : featureSpecSchema.parse({ infer: true, features: [] });
  const where = `model ${request.model}`;
  const spec = inferFeatureSpec(configured, model, where);
  checkModelSchema(spec, undefined, model, where);

  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(request.input);
  } catch {
    throw new UsageError(`input path not found: ${request.input}`);
  }
  if (!info.isFile()) throw new UsageError(`input path is not a file: ${request.input}`);
  const absolute = path.resolve(request.input);
  // A store rooted at / whose keys are the absolute paths, as sluice cost reads its inputs.
  const store = new FsObjectStore(path.parse(absolute).root);
  const key = absolute.slice(path.parse(absolute).root.length).split(path.sep).join('/');
  const fields = config ? config.input : DEFAULT_FIELDS;
  const classified = classifySource(request.input, config ? config.input.format : 'auto');
  if (classified.format === 'text')
    throw new ConfigError(
      `${request.input}: not a CSV, JSONL or Parquet file (by its extension); a score pipeline reads rows`,
    );
  const columns = await inputColumnsOf(store, { key, size: info.size, ...classified }, fields);
  if (!columns)
    throw new ConfigError(`${request.input}: no record could be read, so its columns are unknown`);
  const warning = checkInputColumns(spec, { ...columns, source: request.input });
  if (warning) io.err(`warning: ${warning}`);
  const inferred = configured.infer === true ? spec.features.length - configured.features.length : 0;
  io.err(
    configured.infer === true
      ? `${inferred} numeric columns from the model's feature names, ${configured.features.length} exceptions${config ? ` from pipeline ${config.name}` : ''}${warning ? '' : `; every column is in ${request.input}`}`
      : `pipeline ${config!.name}'s spec matches the model${warning ? '' : ` and ${request.input}`}`,
  );
  io.out(formatFeatureSpec(spec));
  return 0;
}
