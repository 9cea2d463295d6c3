import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  InvokeEndpointCommand,
  SageMakerRuntimeClient,
  ModelError as SdkModelError,
} from '@aws-sdk/client-sagemaker-runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackendInputError } from '../../cli/model-server/backend.ts';
import { OnnxEmbeddingBackend } from '../../cli/model-server/onnx-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { emptyCounts } from '../../shared/domain/types.ts';
import { ConfigError, ModelError } from '../../shared/errors/errors.ts';
import { localClientConfig } from '../support/local-aws.ts';
import { poolingConfig, type TinyModelOptions, writeTinyModelFolder } from '../support/onnx-model.ts';

/** `v / |v|`, computed here in doubles. */
const unit = (v: number[]) => {
  const norm = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  return v.map((x) => x / norm);
};

/** Float32 results against hand-computed doubles. */
function expectVector(actual: Float32Array | undefined, expected: number[]) {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((value, i) => {
    expect(actual![i]).toBeCloseTo(value, 6);
  });
}

describe('OnnxEmbeddingBackend', () => {
  let work: string;
  const loaded: OnnxEmbeddingBackend[] = [];
  let folders = 0;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-onnx-'));
  });
  afterEach(async () => {
    for (const backend of loaded.splice(0)) await backend.close();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  async function load(options: TinyModelOptions = {}, maxBatchTokens?: number) {
    const dir = await writeTinyModelFolder(path.join(work, `model-${folders++}`), options);
    const backend = await OnnxEmbeddingBackend.load(
      dir,
      maxBatchTokens === undefined ? {} : { maxBatchTokens },
    );
    loaded.push(backend);
    return backend;
  }

  // Hidden states of the tiny model with token types (see test/support/onnx-model.ts):
  // E[id] + T[0] = [id / 10, 1, id even ? 1 : -1, 1], and "the queue" is [CLS] the queue [SEP] = 2 5 6 3.
  const theQueue = [
    [0.2, 1, 1, 1],
    [0.5, 1, -1, 1],
    [0.6, 1, 1, 1],
    [0.3, 1, -1, 1],
  ];

  it('mean-pools the last hidden state over real tokens and L2-normalises, as modules.json says', async () => {
    const backend = await load();
    const [vector] = await backend.embed(['the queue']);
    // mean of the four rows = [0.4, 1, 0, 1]; its length is sqrt(2.16)
    expectVector(vector, [0.4 / Math.sqrt(2.16), 1 / Math.sqrt(2.16), 0, 1 / Math.sqrt(2.16)]);
    expect(backend.dimension).toBe(4);
    expect(backend.model).toBe('sluice-tests/tiny-bert');
    expect(backend.description).toMatch(
      /^onnx: sluice-tests\/tiny-bert from .*model\.onnx, on the CPU with onnxruntime-node 1\.30\.0: mean pooling of last_hidden_state over real tokens \(1_Pooling\/config\.json\), L2-normalised \(modules\.json Normalize\), dimension 4; inputs over 512 tokens \(tokenizer_config\.json model_max_length\) are truncated$/,
    );
  });

  it('gives a sentence the same vector alone and padded in a batch beside a longer one', async () => {
    const backend = await load();
    const [alone] = await backend.embed(['the queue']);
    const [longer, padded] = await backend.embed(['the queue holds a message and a token', 'the queue']);
    expect(Array.from(padded!)).toEqual(Array.from(alone!));
    expect(Array.from(longer!)).not.toEqual(Array.from(alone!));
  });

  it('takes cls or max pooling from the Pooling config, and leaves vectors as they are without Normalize', async () => {
    const cls = await load({ pooling: poolingConfig('cls') });
    expectVector((await cls.embed(['the queue']))[0], unit(theQueue[0]!));
    const max = await load({ pooling: poolingConfig('max') });
    // padding ([9, 9, 9, 9.5]) would win every max if it counted
    expectVector((await max.embed(['the queue holds a message', 'the queue']))[1], unit([0.6, 1, 1, 1]));
    const raw = await load({ normalize: false });
    expectVector((await raw.embed(['the queue']))[0], [0.4, 1, 0, 1]);
    expect(raw.description).toMatch(/not normalised \(no Normalize module\)/);
  });

  it('mean-pools without modules.json or a Pooling config, and does not normalise', async () => {
    const backend = await load({ modules: false, pooling: undefined });
    expectVector((await backend.embed(['the queue']))[0], [0.4, 1, 0, 1]);
    expect(backend.description).toMatch(/mean pooling of last_hidden_state over real tokens \(the default/);
  });

  it("uses the graph's sentence_embedding output when it has one", async () => {
    // The tiny graph's sentence_embedding is the unmasked SUM of the hidden states: 4 x the mean here.
    const backend = await load({ sentenceEmbedding: true, normalize: false });
    expectVector((await backend.embed(['the queue']))[0], [1.6, 4, 0, 4]);
    expect(backend.description).toMatch(/the graph's sentence_embedding/);
  });

  it('feeds a graph without token_type_ids only the inputs it declares, from onnx/model.onnx', async () => {
    const backend = await load({ tokenTypeIds: false, modelFile: 'onnx/model.onnx' });
    // without T[0] the last dimension is 0.5: mean [0.4, 1, 0, 0.5], length sqrt(1.41)
    expectVector((await backend.embed(['the queue']))[0], unit([0.4, 1, 0, 0.5]));
    expect(backend.session.inputNames).toEqual(['input_ids', 'attention_mask']);
  });

  it('truncates to the max length, keeping [CLS] and [SEP]', async () => {
    const backend = await load({ maxLength: 5 });
    const [long, cut] = await backend.embed(['the queue holds a message', 'the queue holds']);
    // [CLS] the queue holds [SEP] = ids 2 5 6 7 3: mean [2.3 / 5, 1, -0.2, 1]
    expectVector(long, unit([0.46, 1, -0.2, 1]));
    expect(Array.from(long!)).toEqual(Array.from(cut!));
    expect(backend.description).toMatch(/inputs over 5 tokens \(tokenizer_config\.json model_max_length\)/);
  });

  it("prefers sentence_bert_config.json's max_seq_length", async () => {
    const dir = await writeTinyModelFolder(path.join(work, 'sbert-config'));
    await writeFile(path.join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 4 }));
    const backend = await OnnxEmbeddingBackend.load(dir);
    loaded.push(backend);
    const [long, short] = await backend.embed(['the queue holds a message', 'the queue']);
    expect(Array.from(long!)).toEqual(Array.from(short!));
  });

  it('names the model after the folder when config.json has no Hub id', async () => {
    expect((await load({ nameOrPath: undefined })).model).toMatch(/^model-\d+$/);
    expect((await load({ nameOrPath: '/home/me/exports/minilm' })).model).toMatch(/^model-\d+$/);
  });

  it('splits a request over the batch token budget into several runs, shortest inputs first', async () => {
    const backend = await load({}, 8);
    const whole = await (await load()).embed([
      'the queue holds a message',
      'the queue',
      'a',
      'the queue holds',
    ]);
    const runs: number[] = [];
    const run = backend.session.run.bind(backend.session);
    backend.session.run = ((feeds: Record<string, { dims: readonly number[] }>, ...rest: never[]) => {
      runs.push(feeds.input_ids!.dims[0]!);
      return run(feeds as never, ...rest);
    }) as typeof backend.session.run;
    const split = await backend.embed(['the queue holds a message', 'the queue', 'a', 'the queue holds']);
    expect(split.map((v) => Array.from(v))).toEqual(whole.map((v) => Array.from(v)));
    // lengths 7, 4, 3, 5 -> [3, 4] (8 padded tokens), [5], [7]
    expect(runs).toEqual([2, 1, 1]);
  });

  it('runs one batch at a time however many requests arrive together', async () => {
    const backend = await load();
    let running = 0;
    let most = 0;
    const run = backend.session.run.bind(backend.session);
    backend.session.run = (async (...args: never[]) => {
      running += 1;
      most = Math.max(most, running);
      try {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return await run(...(args as [never]));
      } finally {
        running -= 1;
      }
    }) as typeof backend.session.run;
    const answers = await Promise.all(Array.from({ length: 6 }, () => backend.embed(['the queue'])));
    expect(most).toBe(1);
    for (const [vector] of answers) expectVector(vector, unit([0.4, 1, 0, 1]));
  });

  it('refuses a batch the graph fails on as a BackendInputError (the container 400)', async () => {
    // A table of 12 rows: "xyz" tokenizes to ids past it, and Gather fails.
    const backend = await load({ tableRows: 12 });
    const error = await backend.embed(['the queue', 'xyz']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendInputError);
    expect((error as Error).message).toMatch(/^the model failed on a batch of 2 inputs: /);
    // The failed batch does not block the next one.
    expect(await backend.embed(['the queue'])).toHaveLength(1);
  });

  describe('refuses a bad folder with one line naming the problem', () => {
    const oneLine = async (dir: string, expected: RegExp, options = {}) => {
      const error = await OnnxEmbeddingBackend.load(dir, options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(expected);
      expect((error as Error).message).not.toContain('\n');
    };

    it('a missing folder, graph or tokenizer.json', async () => {
      await oneLine(path.join(work, 'nowhere'), /model folder .*nowhere: not a folder$/);
      const empty = path.join(work, 'empty');
      await mkdir(empty, { recursive: true });
      await oneLine(
        empty,
        /: no model\.onnx or onnx\/model\.onnx \(export one with: optimum-cli export onnx/,
      );
      const noTokenizer = await writeTinyModelFolder(path.join(work, 'no-tokenizer'));
      await rm(path.join(noTokenizer, 'tokenizer.json'));
      await oneLine(noTokenizer, /model folder .*no-tokenizer: no tokenizer\.json$/);
    });

    it('a graph onnxruntime cannot read', async () => {
      const dir = await writeTinyModelFolder(path.join(work, 'garbage'));
      await writeFile(path.join(dir, 'model.onnx'), 'not a protobuf at all');
      await oneLine(dir, /model folder .*garbage: onnxruntime cannot load model\.onnx: /);
    });

    it('modules after pooling that the last hidden state does not include', async () => {
      const dir = await writeTinyModelFolder(path.join(work, 'dense'), {
        extraModules: ['sentence_transformers.models.Dense'],
      });
      await oneLine(
        dir,
        /modules\.json lists sentence_transformers\.models\.Dense, which last_hidden_state does not include; export the model with its sentence_embedding output/,
      );
      const noPooling = await writeTinyModelFolder(path.join(work, 'no-pooling-module'), {
        poolingModule: false,
      });
      await oneLine(
        noPooling,
        /modules\.json lists no Pooling module, so last_hidden_state does not give a sentence vector/,
      );
      // with sentence_embedding the graph includes them
      expect(
        (await load({ extraModules: ['sentence_transformers.models.Dense'], sentenceEmbedding: true }))
          .dimension,
      ).toBe(4);
    });

    it('a Pooling module without its config, or a tokenizer.json that is not JSON', async () => {
      const noPooling = await writeTinyModelFolder(path.join(work, 'no-pooling'), { pooling: undefined });
      await oneLine(noPooling, /no-pooling: no 1_Pooling\/config\.json$/);
      const badJson = await writeTinyModelFolder(path.join(work, 'bad-json'));
      await writeFile(path.join(badJson, 'tokenizer.json'), '{"model":');
      await oneLine(badJson, /bad-json: tokenizer\.json is not valid JSON/);
    });

    it('onnxruntime-node not installed, saying how to install it', async () => {
      const dir = await writeTinyModelFolder(path.join(work, 'no-runtime'));
      const missing = Object.assign(new Error("Cannot find package 'onnxruntime-node' imported from x"), {
        code: 'ERR_MODULE_NOT_FOUND',
      });
      await oneLine(
        dir,
        /the onnx backend needs onnxruntime-node, which is not installed: npm install --save-optional --save-exact onnxruntime-node@1\.30\.0/,
        { importRuntime: () => Promise.reject(missing) },
      );
    });
  });
});

describe('local model server with an ONNX backend', () => {
  let work: string;
  let backend: OnnxEmbeddingBackend;
  let server: ModelServer;
  let client: SageMakerRuntimeClient;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-onnx-server-'));
    // 12 table rows: inputs with letters past "a" make the graph fail.
    backend = await OnnxEmbeddingBackend.load(
      await writeTinyModelFolder(path.join(work, 'tiny'), { tableRows: 12 }),
    );
    server = await startModelServer({ backend });
    client = new SageMakerRuntimeClient({ ...localClientConfig(server.url), maxAttempts: 1 });
  });
  afterAll(async () => {
    client.destroy();
    await server.close();
    await backend.close();
    await rm(work, { recursive: true, force: true });
  });

  const expected = unit([0.4, 1, 0, 1]).map((x) => Math.round(x * 1e7) / 1e7);

  it("answers TEI's /embed and the container's /invocations with the model's vectors", async () => {
    for (const route of ['/embed', '/invocations']) {
      const res = await fetch(`${server.url}${route}`, {
        method: 'POST',
        body: JSON.stringify({ inputs: ['the queue', 'the queue holds a message'] }),
      });
      expect(res.status).toBe(200);
      const vectors = (await res.json()) as number[][];
      expect(vectors[0]).toEqual(expected);
      expect(vectors[1]).toHaveLength(4);
    }
    expect(await (await fetch(`${server.url}/ping`)).json()).toEqual({
      status: 'ok',
      model: 'sluice-tests/tiny-bert',
    });
  });

  it('speaks the SageMaker runtime API to the real client, and a failing input is its ModelError', async () => {
    const out = await client.send(
      new InvokeEndpointCommand({
        EndpointName: 'any',
        ContentType: 'application/json',
        Body: JSON.stringify({ inputs: 'the queue' }),
      }),
    );
    expect(JSON.parse(new TextDecoder().decode(out.Body))).toEqual([expected]);
    const error = await client
      .send(
        new InvokeEndpointCommand({
          EndpointName: 'any',
          ContentType: 'application/json',
          Body: JSON.stringify({ inputs: ['xyz'] }),
        }),
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SdkModelError);
    expect(error).toMatchObject({ OriginalStatusCode: 400 });
  });

  it('lets the pipeline endpoint find and refuse the one failing input of a batch', async () => {
    const endpoint = new SageMakerEmbeddingEndpoint({
      client,
      endpointName: 'sluice-embed',
      maxRetries: 0,
      timeoutMs: 10_000,
    });
    const counts = emptyCounts();
    await expect(endpoint.embed(['the queue', 'xyz'], counts)).rejects.toBeInstanceOf(ModelError);
    expect(await endpoint.embed(['the queue'], counts)).toEqual([expected]);
  });
});
