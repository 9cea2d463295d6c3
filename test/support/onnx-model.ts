import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ELEM, encodeOnnxModel, type Graph, type Node } from './onnx-protobuf.ts';
import { wordPieceTokenizerJson } from './wordpiece-fixture.ts';

/**
 * A sentence-transformer folder small enough to reason about by hand, written by the test
 * itself (no download): the fixture WordPiece `tokenizer.json` (`[PAD]` 0, `[CLS]` 2,
 * `[SEP]` 3, `the` 5, `queue` 6, `holds` 7, `message` 8, ...), and an ONNX graph whose
 * `last_hidden_state` is an embedding-table lookup, `E[id] (+ T[token_type])`, of width 4:
 *
 * - `E[id] = [id / 10, 1, id even ? 1 : -1, 0.5]` for every id but `[PAD]`,
 * - `E[0] = [9, 9, 9, 9]`: padding is loud, so pooling that forgets the mask is wrong,
 * - `T[0] = [0, 0, 0, 0.5]`, `T[1] = [0, 0, 0, -7]` when the graph takes `token_type_ids`.
 */
export const TINY_HIDDEN = 4;

/** The fixture tokenizer's ids of the words the tests use. */
export const TINY_IDS = {
  pad: 0,
  cls: 2,
  sep: 3,
  the: 5,
  queue: 6,
  holds: 7,
  message: 8,
  embed: 9,
  token: 10,
  a: 11,
} as const;

const PAD_ROW = [9, 9, 9, 9];
const TYPE_ROWS = [
  [0, 0, 0, 0.5],
  [0, 0, 0, -7],
];

/** `E[id]`, the table row of a token id (see {@link TINY_HIDDEN}). */
export function tinyEmbeddingRow(id: number): number[] {
  return id === 0 ? [...PAD_ROW] : [id / 10, 1, id % 2 === 0 ? 1 : -1, 0.5];
}

/** The hidden state the graph computes for one token of type 0. */
export function tinyHidden(id: number, withTokenTypes: boolean): number[] {
  const row = tinyEmbeddingRow(id);
  return withTokenTypes ? row.map((v, i) => v + TYPE_ROWS[0]![i]!) : row;
}

export interface TinyModelOptions {
  /** The graph declares and adds `token_type_ids`. @default true */
  readonly tokenTypeIds?: boolean;
  /** The graph also outputs `sentence_embedding`: the UNMASKED sum over tokens, so it differs from any pooling. @default false */
  readonly sentenceEmbedding?: boolean;
  /** Rows of the embedding table; fewer than the vocabulary makes the graph fail on later ids. @default the vocabulary size */
  readonly tableRows?: number;
  /** Where the graph goes. @default 'model.onnx' */
  readonly modelFile?: 'model.onnx' | 'onnx/model.onnx';
  /** `modules.json` (Transformer, Pooling, then Normalize when `normalize`); absent when false. @default true */
  readonly modules?: boolean;
  /** Lists a sentence-transformers `Normalize` module. @default true */
  readonly normalize?: boolean;
  /** Extra module types listed after Pooling (e.g. `sentence_transformers.models.Dense`). */
  readonly extraModules?: readonly string[];
  /** `modules.json` lists the Pooling module. @default true */
  readonly poolingModule?: boolean;
  /** `1_Pooling/config.json` contents; absent when undefined. @default mean pooling */
  readonly pooling?: Record<string, unknown> | undefined;
  /** `tokenizer_config.json` `model_max_length`. @default 512 */
  readonly maxLength?: number;
  /** `config.json` `_name_or_path`; omitted when undefined. @default 'sluice-tests/tiny-bert' */
  readonly nameOrPath?: string | undefined;
}

/** sentence-transformers' Pooling config for one mode. */
export function poolingConfig(mode: 'cls' | 'mean' | 'max'): Record<string, unknown> {
  return {
    word_embedding_dimension: TINY_HIDDEN,
    pooling_mode_cls_token: mode === 'cls',
    pooling_mode_mean_tokens: mode === 'mean',
    pooling_mode_max_tokens: mode === 'max',
    pooling_mode_mean_sqrt_len_tokens: false,
    pooling_mode_weightedmean_tokens: false,
    pooling_mode_lasttoken: false,
    include_prompt: true,
  };
}

function vocabSize(): number {
  const model = (wordPieceTokenizerJson() as { model: { vocab: Record<string, number> } }).model;
  return Object.keys(model.vocab).length;
}

/** The ONNX graph of the tiny model (see {@link TINY_HIDDEN}). */
export function tinyModelGraph(options: TinyModelOptions = {}): Uint8Array {
  const withTypes = options.tokenTypeIds ?? true;
  const rows = options.tableRows ?? vocabSize();
  const table = new Float32Array(rows * TINY_HIDDEN);
  for (let id = 0; id < rows; id++) table.set(tinyEmbeddingRow(id), id * TINY_HIDDEN);
  const ids = { name: 'input_ids', elemType: ELEM.int64, shape: ['batch_size', 'sequence_length'] } as const;
  const nodes: Node[] = [
    {
      opType: 'Gather',
      inputs: ['word_embeddings', 'input_ids'],
      outputs: [withTypes ? 'words' : 'last_hidden_state'],
    },
  ];
  const graph: Graph = {
    nodes,
    initializers: [
      { name: 'word_embeddings', dims: [rows, TINY_HIDDEN], data: table },
      ...(withTypes
        ? [{ name: 'type_embeddings', dims: [2, TINY_HIDDEN], data: Float32Array.from(TYPE_ROWS.flat()) }]
        : []),
      ...(options.sentenceEmbedding
        ? [{ name: 'token_axis', dims: [1], data: BigInt64Array.from([1n]) }]
        : []),
    ],
    inputs: [
      ids,
      { ...ids, name: 'attention_mask' },
      ...(withTypes ? [{ ...ids, name: 'token_type_ids' }] : []),
    ],
    outputs: [
      {
        name: 'last_hidden_state',
        elemType: ELEM.float,
        shape: ['batch_size', 'sequence_length', TINY_HIDDEN],
      },
      ...(options.sentenceEmbedding
        ? [{ name: 'sentence_embedding', elemType: ELEM.float, shape: ['batch_size', TINY_HIDDEN] }]
        : []),
    ],
  };
  if (withTypes) {
    nodes.push(
      { opType: 'Gather', inputs: ['type_embeddings', 'token_type_ids'], outputs: ['types'] },
      { opType: 'Add', inputs: ['words', 'types'], outputs: ['last_hidden_state'] },
    );
  }
  if (options.sentenceEmbedding) {
    nodes.push({
      opType: 'ReduceSum',
      inputs: ['last_hidden_state', 'token_axis'],
      outputs: ['sentence_embedding'],
      attributes: { keepdims: 0 },
    });
  }
  return encodeOnnxModel(graph);
}

/** Writes the tiny sentence-transformer folder into `dir` (created) and returns `dir`. */
export async function writeTinyModelFolder(dir: string, options: TinyModelOptions = {}): Promise<string> {
  const modelFile = options.modelFile ?? 'model.onnx';
  await mkdir(path.join(dir, path.dirname(modelFile)), { recursive: true });
  await writeFile(path.join(dir, modelFile), tinyModelGraph(options));
  await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(wordPieceTokenizerJson()));
  await writeFile(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ model_max_length: options.maxLength ?? 512, do_lower_case: true }),
  );
  const nameOrPath = 'nameOrPath' in options ? options.nameOrPath : 'sluice-tests/tiny-bert';
  await writeFile(
    path.join(dir, 'config.json'),
    JSON.stringify({
      ...(nameOrPath === undefined ? {} : { _name_or_path: nameOrPath }),
      model_type: 'bert',
      hidden_size: TINY_HIDDEN,
      max_position_embeddings: 512,
    }),
  );
  if (options.modules ?? true) {
    const types = [
      'sentence_transformers.models.Transformer',
      ...((options.poolingModule ?? true) ? ['sentence_transformers.models.Pooling'] : []),
      ...(options.extraModules ?? []),
      ...((options.normalize ?? true) ? ['sentence_transformers.models.Normalize'] : []),
    ];
    // sentence-transformers' layout: the transformer at the root, the others in `<idx>_<Kind>/`.
    const modules = types.map((type, idx) => {
      const kind = type.split('.').at(-1);
      return { idx, name: String(idx), path: idx === 0 ? '' : `${idx}_${kind}`, type };
    });
    await writeFile(path.join(dir, 'modules.json'), JSON.stringify(modules));
  }
  const pooling = 'pooling' in options ? options.pooling : poolingConfig('mean');
  if (pooling !== undefined) {
    await mkdir(path.join(dir, '1_Pooling'), { recursive: true });
    await writeFile(path.join(dir, '1_Pooling', 'config.json'), JSON.stringify(pooling));
  }
  return dir;
}
