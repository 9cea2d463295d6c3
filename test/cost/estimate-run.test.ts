import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { COLD_STARTS, coldStartFor } from '../../shared/cost/cold-start.ts';
import {
  batchTransformUsdPerMillionTokens,
  estimatedWork,
  estimateRunUsage,
} from '../../shared/cost/estimate-run.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
import { pipelineConfig } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

/** The credit-risk sample with its model block overridden. */
const scorePipelineConfig = (model: Record<string, unknown>) => {
  const raw = JSON.parse(readFileSync('pipelines/credit-risk.json', 'utf8'));
  return parsePipelineConfig({ ...raw, model: { ...raw.model, ...model } });
};

const usEast = pricesFor('us-east-1');

describe('estimateRunUsage', () => {
  it('bills run-scoped copies from the cold start through the work to the end of the cooldown', () => {
    const config = pipelineConfig({
      workers: { maxConcurrency: 4 },
      endpoint: { name: 'test-embed', capacity: { cooldown: 'always' } },
    });
    // 100M tokens at 100,000 tokens/s: 1,000 s busy, within targetRunSeconds (1,800) on 1 copy.
    const estimate = estimateRunUsage({ config, estimatedCost: 100_000_000, tokensPerSecond: 100_000 });
    expect(estimate.capacity).toEqual({
      mode: 'run-scoped',
      copies: 1,
      busySeconds: 1000,
      // AWS's published P50 for the schema's default ml.g5.xlarge.
      coldStartSeconds: 216,
      cooldownSeconds: 300,
    });
    expect(estimate.usage.endpointSeconds).toBe(216 + 1000 + 300);
    expect(estimate.work).toEqual({ amount: 100_000_000, unit: 'tokens' });
    const cost = runCost(estimate.usage, usEast, { region: 'us-east-1', estimate: true });
    // 1,516 s / 3,600 x $1.4084 = $0.593093.
    expect(cost.endpoint).toBe(0.593093);
    // Four workers wait on the endpoint while it is busy, at the configured memory.
    expect(estimate.usage.lambdaGbSeconds).toBeCloseTo(4 * 1000 * (config.workers.memoryMiB / 1024), 6);
    expect(estimate.usage.lambdaRequests).toBe(estimate.units + 2);
  });

  describe('charges the cooldown as finalize decides it (capacity.cooldown auto)', () => {
    const embed = (schedule?: { expression: string }) =>
      pipelineConfig({
        endpoint: { name: 'test-embed', dimension: 16 },
        ...(schedule && { schedule: { ...schedule, prefix: 'datasets/docs/' } }),
      });
    const cooldownOf = (config: ReturnType<typeof embed>) =>
      estimateRunUsage({ config, estimatedCost: 100_000_000, tokensPerSecond: 100_000 }).capacity
        ?.cooldownSeconds;

    it('none for a pipeline without a schedule, or one whose next tick is far from its release', () => {
      expect(cooldownOf(embed())).toBe(0);
      expect(cooldownOf(embed({ expression: 'cron(0 3 * * ? *)' }))).toBe(0);
      const nightly = estimateRunUsage({
        config: embed({ expression: 'cron(0 3 * * ? *)' }),
        estimatedCost: 100_000_000,
        tokensPerSecond: 100_000,
      });
      expect(nightly.usage.endpointSeconds).toBe(216 + 1000);
    });

    it('the whole cooldown when the schedule ticks again within it', () => {
      // A run of 216 + 1,000 s released at 00:20:16 on a 5-minute cron: the next tick is 00:25.
      expect(cooldownOf(embed({ expression: 'cron(0/5 * * * ? *)' }))).toBe(300);
      // A rate no longer than the cooldown always ticks within it; a longer one is not counted.
      expect(cooldownOf(embed({ expression: 'rate(5 minutes)' }))).toBe(300);
      expect(cooldownOf(embed({ expression: 'rate(1 hour)' }))).toBe(0);
    });
  });

  it('asks for more copies when the work would not fit targetRunSeconds on one, at most maxCopies', () => {
    const config = pipelineConfig({
      endpoint: { name: 'test-embed', dimension: 16, capacity: { maxCopies: 3, cooldownSeconds: 0 } },
    });
    // 500M tokens at 100,000 tokens/s = 5,000 s on one copy: ceil(5000 / 1800) = 3 copies.
    const estimate = estimateRunUsage({ config, estimatedCost: 500_000_000, tokensPerSecond: 100_000 });
    expect(estimate.capacity?.copies).toBe(3);
    expect(estimate.usage.endpointSeconds).toBeCloseTo(3 * (216 + 5000 / 3), 6);
  });

  it('charges an always-on endpoint only the busy window, as before', () => {
    const config = pipelineConfig({
      endpoint: { name: 'test-embed', dimension: 16, capacity: { mode: 'always-on' } },
    });
    const estimate = estimateRunUsage({ config, estimatedCost: 100_000_000, tokensPerSecond: 100_000 });
    expect(estimate.usage.endpointSeconds).toBe(1000);
  });

  it('prices scoring by hosting: in-worker no endpoint, serverless by GB-seconds, instance by copies', () => {
    const rowsPerSecond = 100_000;
    const estimateFor = (model: Record<string, unknown>) => {
      const config = scorePipelineConfig(model);
      const features = config.kind === 'score' ? config.featureSpec.features.length : 1;
      // 1,000,000 rows.
      return estimateRunUsage({ config, estimatedCost: 1_000_000 * features, rowsPerSecond });
    };
    const inWorker = estimateFor({ hosting: 'in-worker' });
    expect(inWorker.hosting).toBe('in-worker');
    expect(runCost(inWorker.usage, usEast, { region: 'us-east-1', estimate: true }).endpoint).toBe(0);
    // The workers evaluate the 1M rows themselves: 10 s of CPU at the sample's workers.memoryMiB.
    expect(inWorker.usage.lambdaGbSeconds).toBeCloseTo(10 * (704 / 1024), 6);

    const serverless = estimateFor({ hosting: 'serverless', serverless: { memoryMiB: 4096 } });
    // 10 s of calls at 4 GB = 40 GB-s.
    expect(serverless.usage.serverlessGbSeconds).toBeCloseTo(40, 6);
    const serverlessCost = runCost(serverless.usage, usEast, { region: 'us-east-1', estimate: true });
    expect(serverlessCost.endpoint).toBeGreaterThanOrEqual(0.0008);

    // The sample's ml.m5.large is a CPU type: no container caching, 420 s.
    const instance = estimateFor({ hosting: 'instance', capacity: { cooldown: 'always' } });
    expect(instance.usage.endpointSeconds).toBeCloseTo(420 + 10 + 300, 6);
    // The sample's nightly schedule does not tick within the cooldown: auto keeps none.
    const nightly = estimateFor({ hosting: 'instance' });
    expect(nightly.usage.endpointSeconds).toBeCloseTo(420 + 10, 6);
  });
});

describe('estimatedWork', () => {
  it('counts tokens for embedding and rows (cost / features) for scoring, with the bytes each moves', () => {
    const embed = estimatedWork({ config: pipelineConfig(), estimatedCost: 1_000, tokensPerSecond: 10 });
    expect(embed).toMatchObject({ amount: 1_000, unit: 'tokens', throughput: 10, sentBytes: 4_000 });
    const config = scorePipelineConfig({ hosting: 'in-worker' });
    const features = config.kind === 'score' ? config.featureSpec.features.length : 0;
    const score = estimatedWork({ config, estimatedCost: 100 * features, rowsPerSecond: 5 });
    expect(score).toEqual({
      amount: 100,
      unit: 'rows',
      throughput: 5,
      sentBytes: 100 * features * 8,
      outputBytes: 6_400,
      dynamoBytes: 0,
      capacity: undefined,
    });
  });
});

describe('coldStartFor', () => {
  it("gives AWS's published figure for a listed type, the longest for other accelerators, 420 s for CPU types", () => {
    expect(coldStartFor('ml.g5.xlarge').seconds).toBe(216);
    expect(coldStartFor('ml.g4dn.xlarge').seconds).toBe(134);
    expect(coldStartFor('ml.g5.xlarge').source).toContain('aws.amazon.com/blogs/machine-learning');
    const longest = Math.max(...Object.values(COLD_STARTS).map((f) => f.seconds));
    for (const type of ['ml.g6e.xlarge', 'ml.p4d.24xlarge', 'ml.inf2.xlarge', 'ml.g5.12xlarge']) {
      expect(coldStartFor(type).seconds).toBe(longest);
    }
    for (const type of ['ml.m5.large', 'ml.c5.xlarge', 'ml.t3.medium']) {
      expect(coldStartFor(type).seconds).toBe(420);
    }
  });

  it('takes an LLM endpoint at the 8B-model figure unless the type is slower', () => {
    expect(coldStartFor('ml.g5.2xlarge').seconds).toBe(164);
    expect(coldStartFor('ml.g5.2xlarge', { llm: true }).seconds).toBe(258);
    expect(coldStartFor('ml.m5.large', { llm: true }).seconds).toBe(420);
  });
});

describe('batchTransformUsdPerMillionTokens', () => {
  it('charges the job its start-up and its work at the hourly rate', () => {
    // 100M tokens at 100,000/s = 1,000 s + 420 s start = 1,420 s x $3.6/h = $1.42 for 100M tokens.
    expect(batchTransformUsdPerMillionTokens(100_000_000, 100_000, 3.6, 420)).toBeCloseTo(0.0142, 9);
  });
});

describe('sluice cost', () => {
  it('prints the bill by component and the per-token anchors as JSON, parts adding up', async () => {
    const run = await sluice('cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--json');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.out.at(-1) ?? '{}');
    expect(report.work.unit).toBe('tokens');
    expect(report.work.amount).toBeGreaterThan(0);
    const { perRun } = report;
    const micros = (n: number) => Math.round(n * 1e6);
    expect(micros(perRun.total)).toBe(
      micros(perRun.endpoint) + micros(perRun.lambda) + micros(perRun.requests) + micros(perRun.storage),
    );
    expect(perRun.estimate).toBe(true);
    expect(report.anchors.map((a: { name: string }) => a.name)).toEqual([
      'OpenAI batch API, text-embedding-3-small',
      'Bedrock batch inference, Titan Text Embeddings V2',
      expect.stringMatching(/^SageMaker Batch Transform/),
    ]);
    expect(report.anchors[0].perRun).toBeCloseTo((report.work.amount / 1e6) * 0.01, 6);
    expect(report.alwaysOnPerDay).toBe(33.8016);
  });

  it('gives a month’s bill from the pipeline’s own schedule, each part times the runs', async () => {
    // docs.json runs at cron(0 3 * * ? *): once a day, 365 / 12 runs a month.
    const run = await sluice('cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--json');
    const report = JSON.parse(run.out.at(-1) ?? '{}');
    expect(report.runsPerMonth).toBeCloseTo(365 / 12, 9);
    const { perRun, perMonth } = report;
    for (const part of ['endpoint', 'lambda', 'requests', 'storage'])
      expect(perMonth[part]).toBeCloseTo(perRun[part] * report.runsPerMonth, 5);
    expect(Math.round(perMonth.total * 1e6)).toBe(
      Math.round((perMonth.endpoint + perMonth.lambda + perMonth.requests + perMonth.storage) * 1e6),
    );
    expect(report.anchors[0].perMonth).toBeCloseTo(
      (report.work.amount / 1e6) * 0.01 * report.runsPerMonth,
      6,
    );
  });

  it('takes --schedule over the pipeline’s, and prints the month by component', async () => {
    const run = await sluice(
      'cost',
      'events/data/docs-sample.jsonl',
      '--pipeline',
      'docs',
      '--schedule',
      'rate(6 hours)',
    );
    expect(run.code).toBe(0);
    // 4 runs a day over an average month of 30.4375 days.
    expect(run.out.find((l) => l.startsWith('  a month'))).toMatch(
      /^ {2}a month {3}\$[\d.]+ for 121\.8 runs \(rate\(6 hours\)\): endpoint \$[\d.]+, lambda \$[\d.]+, requests \$[\d.]+, storage \$[\d.]+$/,
    );
    expect(run.out.filter((l) => l.startsWith('  compare'))).toHaveLength(3);
  });

  it('refuses bad usage with one line and exit 2', async () => {
    for (const argv of [
      ['cost', '--pipeline', 'docs'],
      ['cost', 'events/data/docs-sample.jsonl'],
      ['cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--runs-per-month', '-3'],
      ['cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--region', 'eu-west-1'],
      ['cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--schedule', 'cron(0 3 L * ? *)'],
      ['cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--schedule', 'every day'],
    ]) {
      const run = await sluice(...argv);
      expect(run.code).toBe(2);
      expect(run.err).toHaveLength(1);
      expect(run.err[0]).toMatch(/^sluice cost: /);
    }
  });
});
