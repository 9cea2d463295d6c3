import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../../shared/errors/errors.ts';
import { type PoolingMode, poolingModesFrom } from './onnx-pooling.ts';

/** Where the graph may be, in the order looked for: an optimum export's root, then sentence-transformers' `onnx/`. */
export const MODEL_FILES = ['model.onnx', path.join('onnx', 'model.onnx')] as const;

/** transformers writes `model_max_length = 1e30` (and similar) for "no limit": ignore such values. */
const NO_LIMIT = 1_000_000;

/** Used when no file of the folder says how long an input may be: BERT-class models take 512. */
const DEFAULT_MAX_LENGTH = 512;

/**
 * What an exported sentence-transformer folder says about running it. Read by
 * {@link readOnnxModelFolder}; the rules it applies are in its TSDoc.
 */
export interface OnnxModelFolder {
  readonly dir: string;
  /** The graph file, absolute. */
  readonly modelPath: string;
  /** `model.onnx` or `onnx/model.onnx`. */
  readonly modelFile: string;
  readonly tokenizerJson: object;
  /** `tokenizer_config.json`, or `{}`. */
  readonly tokenizerConfig: object;
  /** The id recorded with every vector. */
  readonly modelId: string;
  /** Longest input in tokens, special tokens included; longer inputs are truncated. */
  readonly maxLength: number;
  /** The file and field `maxLength` came from, for the description. */
  readonly maxLengthFrom: string;
  /** Pooling of token embeddings (unused when the graph outputs `sentence_embedding`). */
  readonly pooling: readonly PoolingMode[];
  readonly poolingFrom: string;
  /** A sentence-transformers `Normalize` module is listed: vectors are L2-normalised. */
  readonly normalize: boolean;
  /** Modules after pooling other than Normalize (Dense, LayerNorm, ...): only a graph with `sentence_embedding` includes them. */
  readonly otherModules: readonly string[];
  /** False when `modules.json` lists no Pooling module: token embeddings are then not the model's sentence vector. */
  readonly pools: boolean;
}

const isFile = (file: string) =>
  stat(file)
    .then((s) => s.isFile())
    .catch(() => false);

async function readJson(dir: string, file: string, required: true): Promise<object>;
async function readJson(dir: string, file: string, required: boolean): Promise<object | undefined>;
async function readJson(dir: string, file: string, required: boolean): Promise<object | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, file), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return undefined;
    throw new ConfigError(
      `model folder ${dir}: ${code === 'ENOENT' ? `no ${file}` : `cannot read ${file} (${code ?? 'error'})`}`,
      { cause: error },
    );
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) throw new Error('not a JSON object or array');
    return parsed;
  } catch (error) {
    throw new ConfigError(`model folder ${dir}: ${file} is not valid JSON (${(error as Error).message})`, {
      cause: error,
    });
  }
}

const positiveInt = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isInteger(value) && value > 0 && value < NO_LIMIT ? value : undefined;

/**
 * The longest input: `sentence_bert_config.json` `max_seq_length` when the folder has it
 * (what sentence-transformers truncates to), else the smallest of `tokenizer_config.json`
 * `model_max_length`, `tokenizer.json` `truncation.max_length` and `config.json`
 * `max_position_embeddings` (transformers' rule), else 512. Never above
 * `max_position_embeddings`, which the graph cannot exceed.
 */
function maxLengthOf(
  sentenceBert: Record<string, unknown> | undefined,
  tokenizerConfig: Record<string, unknown>,
  tokenizerJson: Record<string, unknown>,
  config: Record<string, unknown>,
): { maxLength: number; from: string } {
  const positions = positiveInt(config.max_position_embeddings);
  const capped = (value: number, from: string) =>
    positions !== undefined && positions < value
      ? { maxLength: positions, from: 'config.json max_position_embeddings' }
      : { maxLength: value, from };
  const seq = positiveInt(sentenceBert?.max_seq_length);
  if (seq !== undefined) return capped(seq, 'sentence_bert_config.json max_seq_length');
  const candidates: [number | undefined, string][] = [
    [positiveInt(tokenizerConfig.model_max_length), 'tokenizer_config.json model_max_length'],
    [
      positiveInt((tokenizerJson.truncation as Record<string, unknown> | null | undefined)?.max_length),
      'tokenizer.json truncation.max_length',
    ],
    [positions, 'config.json max_position_embeddings'],
  ];
  let best: { maxLength: number; from: string } | undefined;
  for (const [value, from] of candidates) {
    if (value !== undefined && (best === undefined || value < best.maxLength))
      best = { maxLength: value, from };
  }
  return best ?? { maxLength: DEFAULT_MAX_LENGTH, from: `the default of ${DEFAULT_MAX_LENGTH}` };
}

/** A Hub-style id (`name` or `org/name`), not a path some export left in `_name_or_path`. */
const HUB_ID = /^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/;

/**
 * The model id recorded with every embedding: `config.json` `_name_or_path` when it is
 * a Hub id such as `BAAI/bge-small-en-v1.5`, else the folder's name (an export run from
 * a local copy leaves a path there, which says nothing about the model).
 */
function modelIdOf(dir: string, config: Record<string, unknown>): string {
  const name = config._name_or_path;
  if (typeof name === 'string' && HUB_ID.test(name) && !name.includes('..')) return name;
  return path.basename(path.resolve(dir));
}

interface ModuleEntry {
  readonly type: string;
  readonly path: string;
}

function modulesOf(dir: string, modules: object | undefined): ModuleEntry[] | undefined {
  if (modules === undefined) return undefined;
  if (!Array.isArray(modules)) throw new ConfigError(`model folder ${dir}: modules.json is not a JSON array`);
  return modules.map((entry: unknown, i) => {
    const { type, path: modulePath } = (entry ?? {}) as { type?: unknown; path?: unknown };
    if (typeof type !== 'string' || (modulePath !== undefined && typeof modulePath !== 'string'))
      throw new ConfigError(`model folder ${dir}: modules.json entry ${i} has no string "type" and "path"`);
    return { type, path: modulePath ?? '' };
  });
}

const moduleKind = (entry: ModuleEntry) => entry.type.split('.').at(-1) ?? entry.type;

/**
 * Reads an exported sentence-transformer folder (optimum or sentence-transformers layout):
 * the graph (`model.onnx`, else `onnx/model.onnx`), `tokenizer.json` (required),
 * `tokenizer_config.json`, `config.json`, `sentence_bert_config.json`, `modules.json` and
 * the Pooling module's `config.json` (all optional).
 *
 * Pooling: the config of the module `modules.json` lists as `...Pooling` (`<path>/config.json`,
 * usually `1_Pooling/config.json`, which must then exist); without `modules.json`,
 * `1_Pooling/config.json` if present; else mean pooling, sentence-transformers' default
 * for a plain transformer.
 * A `modules.json` without a Pooling module is refused (unless the graph outputs
 * `sentence_embedding`, checked by the backend). Normalisation: only when `modules.json`
 * lists a `...Normalize` module. Problems are ConfigErrors of one line naming the file.
 */
export async function readOnnxModelFolder(dir: string): Promise<OnnxModelFolder> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new ConfigError(`model folder ${dir}: not a folder`);
  let modelFile: string | undefined;
  for (const candidate of MODEL_FILES) {
    if (await isFile(path.join(dir, candidate))) {
      modelFile = candidate;
      break;
    }
  }
  if (modelFile === undefined)
    throw new ConfigError(
      `model folder ${dir}: no ${MODEL_FILES.join(' or ')} (export one with: optimum-cli export onnx --model ID DIR)`,
    );
  const tokenizerJson = await readJson(dir, 'tokenizer.json', true);
  const tokenizerConfig = (await readJson(dir, 'tokenizer_config.json', false)) ?? {};
  const config = ((await readJson(dir, 'config.json', false)) ?? {}) as Record<string, unknown>;
  const sentenceBert = (await readJson(dir, 'sentence_bert_config.json', false)) as
    | Record<string, unknown>
    | undefined;
  const modules = modulesOf(dir, await readJson(dir, 'modules.json', false));

  let pooling: PoolingMode[] = ['mean'];
  let poolingFrom = 'the default (no pooling config)';
  const poolingModule = modules?.find((m) => moduleKind(m) === 'Pooling');
  // A Pooling module modules.json lists must have its config; a folder without modules.json may have one.
  const poolingFile = modules
    ? poolingModule && path.join(poolingModule.path, 'config.json')
    : path.join('1_Pooling', 'config.json');
  const poolingConfig =
    poolingFile === undefined ? undefined : await readJson(dir, poolingFile, modules !== undefined);
  if (poolingFile !== undefined && poolingConfig !== undefined) {
    pooling = poolingModesFrom(poolingConfig, `model folder ${dir}: ${poolingFile}`);
    poolingFrom = poolingFile;
  }
  const after =
    modules?.filter((m) => !['Transformer', 'Pooling', 'Normalize'].includes(moduleKind(m))) ?? [];
  const otherModules = after.map((m) => m.type);
  const { maxLength, from } = maxLengthOf(
    sentenceBert,
    tokenizerConfig as Record<string, unknown>,
    tokenizerJson as Record<string, unknown>,
    config,
  );
  return {
    dir,
    modelPath: path.resolve(dir, modelFile),
    modelFile,
    tokenizerJson,
    tokenizerConfig,
    modelId: modelIdOf(dir, config),
    maxLength,
    maxLengthFrom: from,
    pooling,
    poolingFrom,
    normalize: modules?.some((m) => moduleKind(m) === 'Normalize') ?? false,
    otherModules,
    pools: modules === undefined || poolingModule !== undefined,
  };
}
