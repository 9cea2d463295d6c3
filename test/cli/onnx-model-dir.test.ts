import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sluice } from '../support/cli.ts';
import { writeTinyModelFolder } from '../support/onnx-model.ts';

/** `v / |v|` in doubles. */
const unit = (v: number[]) => {
  const norm = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  return v.map((x) => x / norm);
};

describe('sluice run --model-dir (an ONNX sentence-transformer folder)', () => {
  let work: string;
  let pipelines: string;
  let modelDir: string;
  let data: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-onnx-run-'));
    modelDir = await writeTinyModelFolder(path.join(work, 'tiny-bert'));
    pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    await writeFile(
      path.join(pipelines, 'tiny.json'),
      JSON.stringify({
        name: 'tiny',
        kind: 'embed',
        input: { format: 'auto' },
        chunking: { maxTokens: 64, overlapTokens: 8 },
        batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 64 },
        endpoint: { name: 'tiny-embed', model: 'configured-model', dimension: 4, maxInputTokens: 512 },
        planning: { targetUnitTokens: 2_000_000, charsPerToken: 4 },
        workers: { maxConcurrency: 2, timeoutSeconds: 60, memoryMiB: 512, maxReceiveCount: 2 },
      }),
    );
    data = path.join(work, 'docs.jsonl');
    const docs = [
      { id: 'd1', text: 'the queue' },
      { id: 'd2', text: 'the queue holds a message' },
      { id: 'd3', text: 'embed a token' },
    ];
    await writeFile(data, `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** `sluice run` of the docs over the tiny pipeline, in `home`. */
  const runTiny = (home: string, ...extra: string[]) =>
    sluice('run', data, '--pipeline', 'tiny', '--pipelines', pipelines, '--home', home, ...extra);

  it("embeds with the folder's model and records its model id in the embeddings", async () => {
    const home = path.join(work, 'home');
    const run = await runTiny(home, '--model-dir', modelDir, '--json');
    expect(run.code, run.err.join('\n')).toBe(0);
    expect(run.json()).toMatchObject({
      status: 'succeeded',
      counts: { records: 3, embedded: 3, rejected: 0 },
    });
    expect(run.err.some((l) => l.includes('onnx: sluice-tests/tiny-bert from '))).toBe(true);

    const rows = await sluice(
      'query',
      'select doc_id, model, embedding from embeddings order by doc_id',
      '--home',
      home,
      '--json',
    );
    const embeddings = rows.json() as { doc_id: string; model: string; embedding: number[] }[];
    expect(embeddings.map((r) => [r.doc_id, r.model])).toEqual([
      ['d1', 'sluice-tests/tiny-bert'],
      ['d2', 'sluice-tests/tiny-bert'],
      ['d3', 'sluice-tests/tiny-bert'],
    ]);
    // "the queue" is [CLS] the queue [SEP]: mean of the tiny model's rows [0.4, 1, 0, 1], normalised.
    unit([0.4, 1, 0, 1]).forEach((value, i) => {
      expect(embeddings[0]!.embedding[i]).toBeCloseTo(value, 6);
    });

    // Chunks are counted in the model's own tokens ([CLS] and [SEP] included), not estimated.
    expect(run.err).toContain("chunking: token counts from sluice-tests/tiny-bert's tokenizer.json");
    const counts = await sluice(
      'query',
      'select doc_id, token_count from embeddings order by doc_id',
      '--home',
      home,
      '--json',
    );
    expect(counts.json()).toEqual([
      { doc_id: 'd1', token_count: 4 },
      { doc_id: 'd2', token_count: 7 },
      { doc_id: 'd3', token_count: 5 },
    ]);
  });

  it('warns when chunks may be longer than the model takes, and not otherwise', async () => {
    const short = await writeTinyModelFolder(path.join(work, 'tiny-bert-32'), { maxLength: 32 });
    const warned = await runTiny(path.join(work, 'home-short'), '--model-dir', short);
    expect(warned.code, warned.err.join('\n')).toBe(0);
    expect(warned.err).toContain(
      'warning: chunking.maxTokens is 64 but sluice-tests/tiny-bert takes 32 tokens; longer chunks are truncated (lower chunking.maxTokens)',
    );
    const quiet = await runTiny(path.join(work, 'home-quiet'), '--model-dir', modelDir);
    expect(quiet.err.some((line) => line.startsWith('warning:'))).toBe(false);
  });

  it("exits 2 with one line when the model's dimension is not the pipeline's", async () => {
    const run = await sluice(
      'run',
      data,
      '--pipeline',
      'docs',
      '--home',
      path.join(work, 'home-docs'),
      '--model-dir',
      modelDir,
    );
    expect(run.code).toBe(2);
    expect(run.err).toEqual([
      `sluice run: --model-dir ${modelDir}: sluice-tests/tiny-bert outputs 4-dimensional vectors, but the docs pipeline's endpoint.dimension is 384`,
    ]);
  });

  it('exits 2 with one line for a bad folder, or --model-dir where it does not apply', async () => {
    const empty = path.join(work, 'empty-model');
    await mkdir(empty);
    const home = path.join(work, 'home-bad');
    const cases: [string[], RegExp][] = [
      [
        ['--model-dir', empty],
        /^sluice run: model folder .*empty-model: no model\.onnx or onnx\/model\.onnx/,
      ],
      [['--model-dir', path.join(work, 'nowhere')], /^sluice run: model folder .*nowhere: not a folder$/],
      [
        ['--model-dir', modelDir, '--endpoint-url', 'http://127.0.0.1:1'],
        /give --model-dir .* or --endpoint-url/,
      ],
    ];
    for (const [extra, message] of cases) {
      const run = await runTiny(home, ...extra);
      expect(run.code, extra.join(' ')).toBe(2);
      expect(run.err, extra.join(' ')).toHaveLength(1);
      expect(run.err[0]).toMatch(message);
    }
    const scoring = await sluice(
      'run',
      data,
      '--pipeline',
      'credit-risk',
      '--home',
      home,
      '--model-dir',
      modelDir,
    );
    expect(scoring.code).toBe(2);
    expect(scoring.err).toEqual([
      'sluice run: --model-dir is for embedding pipelines; credit-risk scores with model.modelKey',
    ]);
  });
});
