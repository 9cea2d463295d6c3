import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type GeneratePipelineConfig, parsePipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  anchorUsd,
  estimateGenerateUsage,
  LLM_BATCH_ANCHORS,
  LLM_THROUGHPUT_ASSUMPTION,
} from '../../shared/cost/estimate-generate.ts';
import { instanceHourPrice, pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';

/** The ticket-triage sample with its endpoint block overridden. */
const triage = (endpoint: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => {
  const raw = JSON.parse(readFileSync('pipelines/generate-triage.json', 'utf8'));
  return parsePipelineConfig({
    ...raw,
    ...extra,
    endpoint: { ...raw.endpoint, ...endpoint },
  }) as GeneratePipelineConfig;
};

const usEast = pricesFor('us-east-1');
const work = { records: 1000, answerable: 1000, promptTokens: 200_000, completionTokens: 100_000 };

describe('estimateGenerateUsage', () => {
  it('bills one run-scoped copy from the cold start through the completions at the per-copy rate', () => {
    const config = triage();
    const estimate = estimateGenerateUsage({ config, estimatedCost: 128_000, work });
    // 100,000 completion tokens at 190 tokens/s: 526.3 s busy; 1 copy (no workPerSecondPerCopy,
    // as plan leases); no schedule and cooldown auto: no cooldown kept.
    const busy = 100_000 / 190;
    expect(estimate.capacity).toEqual({
      mode: 'run-scoped',
      copies: 1,
      busySeconds: busy,
      // An LLM's start: AWS's Qwen3-8B figure (258 s), longer than ml.g5.2xlarge's own 164 s.
      coldStartSeconds: 258,
      cooldownSeconds: 0,
    });
    expect(estimate.usage.endpointSeconds).toBeCloseTo(258 + busy, 9);
    expect(estimate.usage.instanceType).toBe('ml.g5.2xlarge');
    expect(estimate.throughputPerSecond).toBe(LLM_THROUGHPUT_ASSUMPTION.completionTokensPerSecond);
    expect(estimate.work).toEqual({ amount: 100_000, unit: 'completion tokens' });
    const cost = runCost(estimate.usage, usEast, { region: 'us-east-1', estimate: true });
    // (258 + 526.3158) s of ml.g5.2xlarge at $1.515/h = $0.330066.
    expect(instanceHourPrice('us-east-1', 'ml.g5.2xlarge').usd).toBe(1.515);
    expect(cost.endpoint).toBe(0.330066);
    // The worker waits on the endpoint while it is busy: 526.3 s at the configured memory.
    expect(estimate.usage.lambdaGbSeconds).toBeCloseTo(busy * (config.workers.memoryMiB / 1024), 6);
    // The prompt cache is in the runs table: 0.5 read unit per lookup, 1 write unit per answer
    // (100 tokens: a 600-byte item), and one GET of the old S3 cache per miss; no PUT per record.
    expect(estimate.usage.s3Gets).toBe(estimate.units + 1000);
    expect(estimate.usage.s3Puts).toBe(3 * estimate.units);
    expect(estimate.usage.dynamoReads).toBe(500);
    expect(estimate.usage.dynamoWrites).toBe(1000 + 2 * estimate.units);
    // The per-1M figure counts prompt and completion tokens.
    expect(cost.perMillionTokens).toBe(Math.round((cost.total * 1e6) / 0.3) / 1e6);
  });

  it('prices the prompt cache per 1M records at $1.0875 (DynamoDB and the S3 fallback GET) against $5.40 for S3 GET + PUT', () => {
    const config = triage();
    const million = { records: 1e6, answerable: 1e6, promptTokens: 200e6, completionTokens: 128e6 };
    const estimate = estimateGenerateUsage({ config, estimatedCost: 328e6, work: million });
    const units = estimate.units;
    // Each unit's own requests: a range read, 3 part puts, 2 run-store writes.
    // (Per-unit shares added back up: equal up to rounding.)
    expect(estimate.usage.s3Gets).toBeCloseTo(units + 1e6, 3);
    expect(estimate.usage.s3Puts).toBe(3 * units);
    expect(estimate.usage.dynamoReads).toBeCloseTo(0.5e6, 3);
    expect(estimate.usage.dynamoWrites).toBeCloseTo(1e6 + 2 * units, 3);
    const cacheUsd =
      0.5e6 * usEast.dynamoReadRequestUnit.usd +
      1e6 * usEast.dynamoWriteRequestUnit.usd +
      (1e6 / 1000) * usEast.s3GetPer1000.usd;
    const s3CacheUsd = (1e6 / 1000) * (usEast.s3GetPer1000.usd + usEast.s3PutPer1000.usd);
    expect(cacheUsd).toBeCloseTo(1.0875, 9);
    expect(s3CacheUsd).toBeCloseTo(5.4, 9);
    const cost = runCost(estimate.usage, usEast, { region: 'us-east-1', estimate: true });
    const unitsOwnUsd =
      (units / 1000) * usEast.s3GetPer1000.usd +
      ((3 * units) / 1000) * usEast.s3PutPer1000.usd +
      2 * units * usEast.dynamoWriteRequestUnit.usd;
    const sqsUsd = (Math.ceil(units / 10) + 2 * units + 3) * usEast.sqsRequest.usd;
    expect(cost.requests).toBeCloseTo(cacheUsd + unitsOwnUsd + sqsUsd, 5);
  });

  it('leases the copies plan would, keeps the cooldown when asked, and takes a given throughput', () => {
    const config = triage({
      capacity: { workPerSecondPerCopy: 10, targetRunSeconds: 100, cooldown: 'always', maxCopies: 8 },
    });
    // Plan sizes copies from its own estimate: 5,000 / (10 x 100) = 5 copies.
    const estimate = estimateGenerateUsage({
      config,
      estimatedCost: 5_000,
      work,
      completionTokensPerSecond: 1_000,
      coldStartSeconds: 60,
    });
    expect(estimate.capacity).toMatchObject({
      copies: 5,
      busySeconds: 20,
      coldStartSeconds: 60,
      cooldownSeconds: 300,
    });
    expect(estimate.usage.endpointSeconds).toBe(5 * (60 + 20 + 300));
  });

  it('charges an always-on endpoint only the busy time, as a run without a lease is charged', () => {
    const config = triage({ capacity: { mode: 'always-on' } });
    const estimate = estimateGenerateUsage({ config, estimatedCost: 128_000, work });
    expect(estimate.capacity).toMatchObject({ mode: 'always-on', coldStartSeconds: 0, cooldownSeconds: 0 });
    expect(estimate.usage.endpointSeconds).toBeCloseTo(100_000 / 190, 9);
  });
});

describe('LLM_BATCH_ANCHORS', () => {
  it('prices prompt and completion tokens at 50% of the on-demand rates, each with a source', () => {
    const [openai, bedrock] = LLM_BATCH_ANCHORS;
    // 200,000 prompt + 100,000 completion tokens.
    expect(anchorUsd(openai!, 200_000, 100_000)).toBeCloseTo(0.2 * 0.075 + 0.1 * 0.3, 12);
    expect(anchorUsd(bedrock!, 200_000, 100_000)).toBeCloseTo(0.3 * 0.11, 12);
    for (const anchor of LLM_BATCH_ANCHORS) {
      expect(anchor.source).toMatch(/^https:\/\//);
      expect(anchor.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });
});

describe('GPU instance prices', () => {
  it('lists the instance types an LLM endpoint uses, each with a source and the table date', () => {
    for (const type of [
      'ml.g5.xlarge',
      'ml.g5.2xlarge',
      'ml.g5.12xlarge',
      'ml.g6.xlarge',
      'ml.g6.2xlarge',
      'ml.g6.12xlarge',
      'ml.p4d.24xlarge',
    ]) {
      const price = instanceHourPrice('us-east-1', type);
      expect(price.usd).toBeGreaterThan(0);
      expect(price.source).toMatch(/^https:\/\//);
      expect(price.readOn).toBe('2026-12-07');
    }
    expect(instanceHourPrice('us-east-1', 'ml.p4d.24xlarge').usd).toBe(37.688);
  });
});
