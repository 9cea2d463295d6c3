import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePipelineConfig, type RecommendPipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  estimateRecommendUsage,
  RECOMMEND_THROUGHPUT_ASSUMPTION,
} from '../../shared/cost/estimate-recommend.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
import {
  ID_CHARS_ASSUMED,
  servingItemBytes,
  servingWriteUnits,
  servingWriteUnitsPerUser,
} from '../../shared/cost/serving-writes.ts';
import { compactList } from '../../shared/jobs/recommend/recommendation-lists.ts';

const recommend = (extra: Record<string, unknown> = {}) =>
  parsePipelineConfig({
    ...JSON.parse(readFileSync('pipelines/recommend.json', 'utf8')),
    ...extra,
  }) as RecommendPipelineConfig;

describe('servingItemBytes', () => {
  it('sizes an item as DynamoDB does: attribute names plus values, by hand', () => {
    // Entry ["iii",<18>,"cf",<2>] = 1 + 5 + 1 + 18 + 1 + 4 + 1 + 2 + 1 = 34; list of 2:
    // 2 + 68 + 1 = 71. pk 2 + "RECS#recs#" 10 + 4 = 16; sk 2 + "RUN#" 4 + 25 = 31; runId
    // 5 + 25 = 30; unitId 6 + 8 = 14; items 5 + 71 = 76. Total 167: one write unit.
    const shape = { pipeline: 'recs', topN: 2, userIdChars: 4, itemIdChars: 3 };
    expect(servingItemBytes(shape)).toBe(167);
    expect(servingWriteUnitsPerUser(shape)).toBe(1);
    // Top 20 with 16-character ids: entry 47, list 2 + 940 + 19 = 961; 28 + 31 + 30 + 14 +
    // 966 = 1,069 bytes: two write units.
    expect(ID_CHARS_ASSUMED).toBe(16);
    expect(servingItemBytes({ pipeline: 'recs', topN: 20 })).toBe(1069);
    expect(servingWriteUnits(1000, { pipeline: 'recs', topN: 20 })).toBe(2000);
    // The sample's short ids (u0000, i433): 823 bytes, one unit.
    expect(
      servingWriteUnitsPerUser({ pipeline: 'recommend', topN: 20, userIdChars: 5, itemIdChars: 4 }),
    ).toBe(1);
    expect(servingWriteUnits(0, { pipeline: 'recs', topN: 20 })).toBe(0);
  });

  it('comes within 3% of the item the serving writer stores for a typical list', () => {
    const items = Array.from({ length: 20 }, (_, i) => ({
      itemId: `item-${String(i).padStart(11, '0')}`,
      score: 0.9234567890123456 - i / 97,
      source: 'cf' as const,
      neighbours: 10 + i,
    }));
    const stored = {
      pk: `RECS#recs#${'u'.repeat(16)}`,
      sk: 'RUN#r-20261128T235108Z-3f9a1c',
      runId: 'r-20261128T235108Z-3f9a1c',
      unitId: 'u00012',
      items: JSON.stringify(compactList(items)),
    };
    const bytes = Object.entries(stored).reduce((sum, [name, value]) => sum + name.length + value.length, 0);
    const estimate = servingItemBytes({ pipeline: 'recs', topN: 20 });
    expect(Math.abs(bytes - estimate) / estimate).toBeLessThan(0.03);
    expect(Math.ceil(bytes / 1024)).toBe(Math.ceil(estimate / 1024));
  });
});

describe('estimateRecommendUsage', () => {
  it('prices the two stages in the workers, the index and lists stored, and one serving item per user', () => {
    const config = recommend();
    const rates = RECOMMEND_THROUGHPUT_ASSUMPTION;
    const rows = 228_000;
    const estimate = estimateRecommendUsage({
      config,
      estimatedCost: rows,
      work: { rows, users: 1000, userIdChars: 5, itemIdChars: 4 },
    });
    // Ingest 1 s + similarity 228,000 / 24,500 s of one worker, at the configured memory.
    const seconds = rows / rates.ingestRowsPerSecond + rows / rates.similarityRowsPerSecond;
    expect(estimate.usage.lambdaGbSeconds).toBeCloseTo(seconds * (config.workers.memoryMiB / 1024), 9);
    expect(estimate.usage.endpointSeconds).toBe(0);
    expect(estimate.hosting).toBe('none');
    // Shards: 228,000 x 519 postings / 2,000,000 per shard = 59.2 -> 60.
    expect(config.sharding.targetUnitWork).toBe(2_000_000);
    const ingestUnits = estimate.units - 60;
    expect(ingestUnits).toBeGreaterThan(0);
    expect(estimate.usage.lambdaRequests).toBe(estimate.units + 2);
    // Serving: 1,000 users, each item one or two write units by its size.
    const perUser = servingWriteUnitsPerUser({
      pipeline: 'recommend',
      topN: 20,
      userIdChars: 5,
      itemIdChars: 4,
    });
    expect(estimate.usage.servingWrites).toBe(1000 * perUser);
    // ... and as many again to delete the superseded lists (steady state), a Query each (half a read unit).
    expect(estimate.usage.dynamoWrites).toBe(2 * estimate.units + 2 * 1000 * perUser);
    expect(estimate.usage.dynamoReads).toBeGreaterThanOrEqual(1000 * 0.5);
    // Stored: 50 bytes per row staged and indexed, 40 per recommendations row.
    expect(estimate.usage.bytesStored).toBeCloseTo(rows * 50 + 1000 * 20 * 40, 3);
    const cost = runCost(estimate.usage, pricesFor('us-east-1'), { region: 'us-east-1', estimate: true });
    expect(cost.endpoint).toBe(0);
    expect(cost.basis.endpoint).toBe('none: the run calls no model');
    expect(cost.requests).toBeGreaterThan((1000 * perUser * 0.625) / 1e6 - 1e-6);
  });
});
