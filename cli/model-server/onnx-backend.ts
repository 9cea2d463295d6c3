import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { ConfigError } from '../../shared/errors/errors.ts';
import { BackendInputError, type EmbeddingBackend } from './backend.ts';
import { type EncodedInput, type PaddedBatch, padBatch, TruncatingEncoder } from './onnx-batch-encoder.ts';
import { type OnnxModelFolder, readOnnxModelFolder } from './onnx-folder.ts';
import { normalizeL2, poolTokens } from './onnx-pooling.ts';
import { loadOnnxRuntime, type OnnxRuntime } from './onnx-runtime.ts';

/** The graph inputs a sentence-transformer export declares, and what each is fed. */
const KNOWN_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'] as const;
type InputName = (typeof KNOWN_INPUTS)[number];

/** Outputs the backend reads, best first: the exported sentence vector, else token embeddings to pool. */
const SENTENCE_OUTPUT = 'sentence_embedding';
const TOKEN_OUTPUTS = ['last_hidden_state', 'token_embeddings'] as const;

export interface OnnxBackendOptions {
  /**
   * Most padded tokens (inputs x longest input) one `session.run` takes: a request over
   * it is run in several batches, inputs sorted by length so each pads little. Bounds the
   * memory of the attention matrices. @default 16384
   */
  readonly maxBatchTokens?: number;
  /** Threads onnxruntime uses inside one run. @default onnxruntime's choice (the physical cores) */
  readonly intraOpThreads?: number;
  /** Swaps how onnxruntime-node is imported (tests of a missing install). @default `import('onnxruntime-node')` */
  readonly importRuntime?: () => Promise<OnnxRuntime>;
}

interface GraphInput {
  readonly name: InputName;
  readonly type: 'int64' | 'int32';
}

const firstLine = (error: unknown) => String((error as Error)?.message ?? error).split('\n')[0];

/**
 * The graph of a sentence-transformer and how to call it: which inputs it declares (and
 * their integer type), which output gives the vectors, and how they become one vector
 * per input (taken as they are, or pooled over real tokens; then normalised or not).
 */
class SentenceGraph {
  readonly output: string;
  private readonly inputs: readonly GraphInput[];

  constructor(
    private readonly ort: OnnxRuntime,
    readonly session: InferenceSession,
    private readonly folder: OnnxModelFolder,
  ) {
    const where = `model folder ${folder.dir}: ${folder.modelFile}`;
    this.inputs = session.inputNames.map((name) => {
      if (!(KNOWN_INPUTS as readonly string[]).includes(name))
        throw new ConfigError(
          `${where} takes an input "${name}"; this backend feeds only ${KNOWN_INPUTS.join(', ')}`,
        );
      const meta = session.inputMetadata.find((m) => m.name === name);
      const type = meta?.isTensor ? meta.type : 'int64';
      if (type !== 'int64' && type !== 'int32')
        throw new ConfigError(`${where}: input "${name}" is ${type}, not int64 or int32`);
      return { name: name as InputName, type };
    });
    if (!this.inputs.some((i) => i.name === 'input_ids'))
      throw new ConfigError(`${where} has no input_ids input (inputs: ${session.inputNames.join(', ')})`);
    const output =
      session.outputNames.find((n) => n === SENTENCE_OUTPUT) ??
      session.outputNames.find((n) => (TOKEN_OUTPUTS as readonly string[]).includes(n));
    if (output === undefined)
      throw new ConfigError(
        `${where} has neither ${SENTENCE_OUTPUT} nor ${TOKEN_OUTPUTS.join(' nor ')} among its outputs (${session.outputNames.join(', ')})`,
      );
    if (output !== SENTENCE_OUTPUT && !folder.pools)
      throw new ConfigError(
        `model folder ${folder.dir}: modules.json lists no Pooling module, so ${output} does not give a sentence vector; export the model with its ${SENTENCE_OUTPUT} output`,
      );
    if (output !== SENTENCE_OUTPUT && folder.otherModules.length > 0)
      throw new ConfigError(
        `model folder ${folder.dir}: modules.json lists ${folder.otherModules.join(', ')}, which ${output} does not include; export the model with its ${SENTENCE_OUTPUT} output`,
      );
    this.output = output;
  }

  private tensor(batch: PaddedBatch, input: GraphInput): Tensor {
    const values =
      input.name === 'input_ids'
        ? batch.inputIds
        : input.name === 'attention_mask'
          ? batch.attentionMask
          : batch.tokenTypeIds;
    const dims = [batch.batch, batch.sequence];
    if (input.type === 'int32') return new this.ort.Tensor('int32', Int32Array.from(values), dims);
    const data = new BigInt64Array(values.length);
    for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]!);
    return new this.ort.Tensor('int64', data, dims);
  }

  /** One `session.run` over `padded`; one vector per row. */
  async run(padded: PaddedBatch): Promise<Float32Array[]> {
    const feeds: Record<string, Tensor> = {};
    for (const input of this.inputs) feeds[input.name] = this.tensor(padded, input);
    const result = await this.session.run(feeds, [this.output]);
    const out = result[this.output] as Tensor | undefined;
    if (out === undefined || out.type !== 'float32')
      throw new Error(`output ${this.output} is ${out?.type ?? 'missing'}, not float32`);
    const data = out.data as Float32Array;
    const dims = out.dims;
    let vectors: Float32Array[];
    if (this.output === SENTENCE_OUTPUT) {
      if (dims.length !== 2 || dims[0] !== padded.batch)
        throw new Error(`${SENTENCE_OUTPUT} has shape [${dims.join(', ')}], not [${padded.batch}, width]`);
      const width = dims[1]!;
      vectors = Array.from({ length: padded.batch }, (_, b) => data.slice(b * width, (b + 1) * width));
    } else {
      if (dims.length !== 3 || dims[0] !== padded.batch || dims[1] !== padded.sequence)
        throw new Error(
          `${this.output} has shape [${dims.join(', ')}], not [${padded.batch}, ${padded.sequence}, width]`,
        );
      vectors = poolTokens(
        { data, batch: padded.batch, sequence: padded.sequence, width: dims[2]!, mask: padded.attentionMask },
        this.folder.pooling,
      );
    }
    if (this.folder.normalize) for (const vector of vectors) normalizeL2(vector);
    return vectors;
  }
}

/**
 * An ONNX sentence-transformer from a local folder, run on the CPU with onnxruntime-node:
 * inputs tokenized with the folder's `tokenizer.json`, truncated to its max length,
 * padded per batch, fed as `input_ids`, `attention_mask` and (when the graph declares it)
 * `token_type_ids`; the graph's `sentence_embedding` output when it has one, else its
 * `last_hidden_state` (or `token_embeddings`) pooled per the folder's Pooling config,
 * L2-normalised when its `modules.json` lists Normalize (rules: {@link readOnnxModelFolder}).
 * One batch runs at a time; requests that arrive meanwhile wait in order.
 */
export class OnnxEmbeddingBackend implements EmbeddingBackend {
  readonly model: string;
  readonly description: string;
  /** The batch now running, or resolved: each new one starts after it. */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly graph: SentenceGraph,
    private readonly encoder: TruncatingEncoder,
    readonly folder: OnnxModelFolder,
    readonly dimension: number,
    private readonly maxBatchTokens: number,
    runtimeVersion: string,
  ) {
    this.model = folder.modelId;
    const vectors =
      graph.output === SENTENCE_OUTPUT
        ? `the graph's ${SENTENCE_OUTPUT}`
        : `${folder.pooling.join('+')} pooling of ${graph.output} over real tokens (${folder.poolingFrom})`;
    const normalized = folder.normalize
      ? 'L2-normalised (modules.json Normalize)'
      : 'not normalised (no Normalize module)';
    this.description = `onnx: ${this.model} from ${folder.modelPath}, on the CPU with onnxruntime-node ${runtimeVersion}: ${vectors}, ${normalized}, dimension ${dimension}; inputs over ${folder.maxLength} tokens (${folder.maxLengthFrom}) are truncated`;
  }

  /** The onnxruntime session: one per backend, released by {@link close}. */
  get session(): InferenceSession {
    return this.graph.session;
  }

  /**
   * Loads the folder, starts an onnxruntime session on its graph and runs one input
   * through it, which checks the graph and measures the vector's dimension. A bad folder
   * or graph, or onnxruntime-node missing, is a ConfigError of one line.
   */
  static async load(dir: string, options: OnnxBackendOptions = {}): Promise<OnnxEmbeddingBackend> {
    const folder = await readOnnxModelFolder(dir);
    const where = `model folder ${dir}`;
    const encoder = new TruncatingEncoder(
      folder.tokenizerJson,
      folder.tokenizerConfig,
      folder.maxLength,
      where,
    );
    const ort = await loadOnnxRuntime(options.importRuntime);
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(folder.modelPath, {
        graphOptimizationLevel: 'all',
        ...(options.intraOpThreads === undefined ? {} : { intraOpNumThreads: options.intraOpThreads }),
      });
    } catch (error) {
      throw new ConfigError(`${where}: onnxruntime cannot load ${folder.modelFile}: ${firstLine(error)}`, {
        cause: error,
      });
    }
    try {
      const graph = new SentenceGraph(ort, session, folder);
      // "a" is in every vocabulary, so a failure here is the graph's, not the input's.
      const probe = await graph
        .run(padBatch([encoder.encode('a')], encoder.padId))
        .catch((error: unknown) => {
          throw new ConfigError(`${where}: ${folder.modelFile} fails on the input "a": ${firstLine(error)}`, {
            cause: error,
          });
        });
      const dimension = probe[0]!.length;
      const maxBatchTokens = options.maxBatchTokens ?? 16_384;
      return new OnnxEmbeddingBackend(
        graph,
        encoder,
        folder,
        dimension,
        maxBatchTokens,
        ort.env.versions.node ?? 'unknown',
      );
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /**
   * One vector per input, in order. Inputs the tokenizer refuses, and batches the graph
   * fails on, are a {@link BackendInputError} (the container's 400, which the pipeline
   * answers by splitting the batch until it finds the input to reject).
   */
  async embed(inputs: readonly string[]): Promise<Float32Array[]> {
    const encoded = inputs.map((text, i) => {
      try {
        return this.encoder.encode(text);
      } catch (error) {
        throw new BackendInputError(`input ${i} cannot be tokenized: ${firstLine(error)}`, { cause: error });
      }
    });
    const run = this.tail.then(() => this.runRequest(encoded));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Runs a request in batches of at most `maxBatchTokens` padded tokens, shortest inputs first. */
  private async runRequest(encoded: readonly EncodedInput[]): Promise<Float32Array[]> {
    const order = encoded.map((_, i) => i).sort((a, b) => encoded[a]!.ids.length - encoded[b]!.ids.length);
    const vectors: Float32Array[] = new Array(encoded.length);
    let start = 0;
    while (start < order.length) {
      let end = start + 1;
      // Sorted ascending, so the input added last is the batch's longest.
      while (
        end < order.length &&
        (end + 1 - start) * encoded[order[end]!]!.ids.length <= this.maxBatchTokens
      )
        end += 1;
      const batch = order.slice(start, end);
      let pooled: Float32Array[];
      try {
        pooled = await this.graph.run(
          padBatch(
            batch.map((i) => encoded[i]!),
            this.encoder.padId,
          ),
        );
      } catch (error) {
        throw new BackendInputError(
          `the model failed on a batch of ${batch.length} inputs: ${firstLine(error)}`,
          {
            cause: error,
          },
        );
      }
      batch.forEach((index, j) => {
        vectors[index] = pooled[j]!;
      });
      start = end;
    }
    return vectors;
  }

  /** Releases the onnxruntime session once the batch running now is done; `embed` must not be called after. */
  async close(): Promise<void> {
    await this.tail;
    await this.graph.session.release();
  }
}
