import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import { runUsageOfPipeline } from '../../shared/cost/pipeline-usage.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
import { servingWriteUnitsPerUser } from '../../shared/cost/serving-writes.ts';
import { emptyUnitUsage, UsageMeter } from '../../shared/cost/unit-usage.ts';

const config = (file: string) => parsePipelineConfig(JSON.parse(readFileSync(file, 'utf8')));

const unit = (
  records: number,
  stage: string,
  tokens: { promptTokens?: number; completionTokens?: number } = {},
) => ({
  attempts: 1,
  usage: { ...emptyUnitUsage(), workerMs: 1000, memoryMiB: 1024 },
  counts: { records, ...tokens },
  stage,
});

describe('runUsageOfPipeline', () => {
  it('adds a generate run’s prompt and completion tokens, priced per 1M tokens', () => {
    const usage = runUsageOfPipeline(config('pipelines/generate-triage.json'), [
      unit(10, 'generate', { promptTokens: 600_000, completionTokens: 200_000 }),
      unit(10, 'generate', { promptTokens: 150_000, completionTokens: 50_000 }),
    ]);
    expect(usage).toMatchObject({
      hosting: 'instance',
      instanceType: 'ml.g5.2xlarge',
      promptTokens: 750_000,
      completionTokens: 250_000,
    });
    const cost = runCost(usage, pricesFor('us-east-1'), { region: 'us-east-1', estimate: true });
    // 1M tokens: the per-1M figure is the total.
    expect(cost.perMillionTokens).toBe(cost.total);
  });

  it('adds a recommend run’s serving writes: one item per user of the similarity stage', () => {
    const usage = runUsageOfPipeline(config('pipelines/recommend.json'), [
      unit(5000, 'ingest'),
      unit(120, 'similarity'),
      unit(80, 'similarity'),
    ]);
    const perUser = servingWriteUnitsPerUser({ pipeline: 'recommend', topN: 20 });
    expect(usage.usersWritten).toBe(200);
    expect(usage.servingWrites).toBe(200 * perUser);
    // The sweep: one superseded list deleted per user in steady state, sized as a put, and a Query each.
    expect(usage.dynamoWrites).toBe(2 * 200 * perUser);
    expect(usage.dynamoReads).toBe(200 * 0.5);
    expect(usage.endpointSeconds).toBe(0);
    const cost = runCost(usage, pricesFor('us-east-1'), { region: 'us-east-1', estimate: true });
    expect(cost.perMillionTokens).toBeUndefined();
  });
});

describe('UsageMeter.chatEndpoint', () => {
  it('times chat requests into the endpoint window and counts their bodies', async () => {
    let clock = 1000;
    const meter = new UsageMeter(() => clock);
    const chat = meter.chatEndpoint({
      complete: async () => {
        clock += 250;
        return '{}';
      },
    });
    const stats = { endpointCalls: 0, throttled: 0, retries: 0 };
    await chat.complete('{"a":1}', 10, stats);
    await chat.complete('{"b":22}', 10, stats);
    expect(meter.usage).toMatchObject({
      endpointCalls: 2,
      endpointBytes: 7 + 8,
      endpointFirstAt: 1000,
      endpointLastAt: 1500,
      endpointCallMs: 500,
    });
  });
});
