import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { estimateRunUsage } from '../../shared/cost/estimate-run.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
import { pipelineConfig } from '../core/factories.ts';

async function sluice(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

describe('estimateRunUsage', () => {
  it('keeps one endpoint instance busy for the tokens at the given throughput', () => {
    const config = pipelineConfig({ workers: { maxConcurrency: 4 } });
    // 100M tokens at 100,000 tokens/s = 1,000 s of ml.g5.xlarge: 1000/3600 x $1.41 = $0.391667.
    const estimate = estimateRunUsage({ config, estimatedCost: 100_000_000, tokensPerSecond: 100_000 });
    expect(estimate.usage.endpointSeconds).toBe(1000);
    expect(estimate.work).toEqual({ amount: 100_000_000, unit: 'tokens' });
    const cost = runCost(estimate.usage, pricesFor('us-east-1'), { region: 'us-east-1', estimate: true });
    expect(cost.endpoint).toBe(0.391667);
    // Four workers wait on the endpoint the whole time, at the configured memory.
    expect(estimate.usage.lambdaGbSeconds).toBeCloseTo(4 * 1000 * (config.workers.memoryMiB / 1024), 6);
    expect(estimate.usage.lambdaRequests).toBe(estimate.units + 2);
  });
});

describe('sluice cost', () => {
  it('prints the bill by component and the per-token anchor as JSON, parts adding up', async () => {
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
    expect(report.anchors[0].perRun).toBeCloseTo((report.work.amount / 1e6) * 0.01, 9);
    expect(report.alwaysOnPerDay).toBe(33.84);
  });

  it('refuses bad usage with one line and exit 2', async () => {
    for (const argv of [
      ['cost', '--pipeline', 'docs'],
      ['cost', 'events/data/docs-sample.jsonl'],
      ['cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--runs-per-month', '-3'],
      ['cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--region', 'eu-west-1'],
    ]) {
      const run = await sluice(...argv);
      expect(run.code).toBe(2);
      expect(run.err).toHaveLength(1);
      expect(run.err[0]).toMatch(/^sluice cost: /);
    }
  });
});
