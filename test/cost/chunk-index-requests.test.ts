import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSimulatedDayBench } from '../../bench/simulated-day.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { dynamoItemBytes } from '../../shared/cost/dynamo-item-size.ts';
import { chunkIndexItem, docIndexItem } from '../../shared/cost/dynamo-storage.ts';
import { estimateRunUsage } from '../../shared/cost/estimate-run.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
import { runUsageOf, UsageMeter } from '../../shared/cost/unit-usage.ts';
import type { IndexedChunk } from '../../shared/ports/chunk-index.ts';
import { sluice } from '../support/cli.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

const usEast = pricesFor('us-east-1');
const pipelinesDir = path.resolve('pipelines');
const RUN_ID = 'r-20261207T120000Z-abcdef';

const chunk = (chunkId: string, dimension = 384): IndexedChunk => ({
  chunkId,
  textSha256: 'a'.repeat(64),
  embedding: new Float32Array(dimension),
  runId: RUN_ID,
});

/** Only the DynamoDB requests of a metered unit, priced: no Lambda, SQS or S3 around them. */
const requestsUsd = (meter: UsageMeter) => {
  const usage = {
    ...runUsageOf([{ attempts: 0, usage: meter.usage }], undefined),
    lambdaRequests: 0,
    sqsRequests: 0,
  };
  return runCost(usage, usEast, { region: 'us-east-1', estimate: true }).requests;
};

describe('the chunk index in request units (DynamoDB on demand)', () => {
  it('prices each chunk item put by its size: 1 write unit per KB, a 384-float entry 2', async () => {
    // pk `CHUNK#p#d0001#0` 2 + 15, sk `CHUNK` 2 + 5, sha 3 + 64, vec 3 + 1,536, runId 5 + 25.
    expect(dynamoItemBytes(chunkIndexItem('p', chunk('d0001#0')))).toBe(17 + 7 + 67 + 1539 + 30);
    // pk `DOC#p#d0001` 2 + 11, sk `DOC` 2 + 3, chunkCount 4 (one digit) 10 + 2: 30 bytes, 1 unit.
    expect(dynamoItemBytes(docIndexItem('p', { docId: 'd0001', chunkCount: 4 }))).toBe(30);
    const meter = new UsageMeter();
    const index = meter.chunkIndex(new MemoryChunkIndex());
    const ids = Array.from({ length: 1000 }, (_, d) => `d${String(d).padStart(4, '0')}`);
    await index.record(
      'p',
      ids.flatMap((d) => [0, 1, 2, 3].map((n) => chunk(`${d}#${n}`))),
      ids.map((docId) => ({ docId, chunkCount: 4 })),
    );
    // 4,000 chunk items x 2 + 1,000 document items x 1 = 9,000 write units, $0.625 per million.
    expect(meter.usage.chunkIndexWriteUnits).toBe(9000);
    expect(requestsUsd(meter)).toBe(0.005625);
  });

  it('puts a key named twice in one record once, as the deployed index sends it', async () => {
    const meter = new UsageMeter();
    await meter.chunkIndex(new MemoryChunkIndex()).record('p', [chunk('d#0'), chunk('d#0')], []);
    expect(meter.usage.chunkIndexWriteUnits).toBe(2);
  });

  it('prices lookups as eventually consistent BatchGetItem: 0.5 per 4 KB found, 0.5 per distinct key not found', async () => {
    const inner = new MemoryChunkIndex();
    // A 1,100-float vector makes a 4.5 KB item: 5 write units, and 2 x 0.5 read units.
    await inner.record(
      'p',
      [chunk('a#0'), chunk('a#1'), chunk('big#0', 1100)],
      [{ docId: 'a', chunkCount: 2 }],
    );
    const meter = new UsageMeter();
    const index = meter.chunkIndex(inner);
    const found = await index.lookupChunks('p', ['a#0', 'a#1', 'big#0', 'x#0', 'x#0', 'y#0']);
    expect(found.size).toBe(3);
    // Found: 0.5 + 0.5 + 1; not found: x#0 (once) and y#0, 0.5 each.
    expect(meter.usage.chunkIndexReadUnits).toBe(3);
    await index.lookupDocs('p', ['a', 'b']);
    expect(meter.usage.chunkIndexReadUnits).toBe(3 + 0.5 + 0.5);
    expect(meter.usage.chunkIndexWriteUnits ?? 0).toBe(0);
    await index.record('p', [chunk('big#0', 1100)], []);
    expect(meter.usage.chunkIndexWriteUnits).toBe(5);
    // In the run's usage with the other DynamoDB requests, priced at $0.125 and $0.625 per million.
    const usage = runUsageOf([{ attempts: 1, usage: meter.usage }], undefined);
    expect(usage.dynamoReads).toBe(4);
    expect(usage.dynamoWrites).toBe(5);
  });
});

describe('the chunk index’s request units in `sluice cost` estimates', () => {
  it('embed, incremental: every chunk new, its key and its document’s looked up and missed, both items put', async () => {
    const config = await loadPipelineConfig(pipelinesDir, 'docs');
    if (config.kind !== 'embed') throw new Error('docs is an embed pipeline');
    const tokens = 100_000_000;
    const chunks = Math.ceil(tokens / config.chunking.maxTokens); // 390,625
    const on = estimateRunUsage({ config, estimatedCost: tokens });
    const off = estimateRunUsage({
      config: { ...config, incremental: { enabled: false } },
      estimatedCost: tokens,
    });
    // Reads: 0.5 + 0.5 per chunk; writes: 2 (chunk item) + 1 (document item) per chunk.
    expect(on.usage.dynamoReads - off.usage.dynamoReads).toBeCloseTo(chunks, 6);
    expect(on.usage.dynamoWrites - off.usage.dynamoWrites).toBeCloseTo(3 * chunks, 6);
    const price = (usage: typeof on.usage) => runCost(usage, usEast, { region: 'us-east-1', estimate: true });
    // 390,625 x $0.125 + 1,171,875 x $0.625 per million = $0.048828 + $0.732422.
    expect(price(on.usage).requests - price(off.usage).requests).toBeCloseTo(0.78125, 5);
  });

  it('prints them in the requests part of `sluice cost --json` for the docs sample', async () => {
    const run = await sluice('cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--json');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.out.at(-1) ?? '{}');
    const chunks = report.work.amount / 256;
    // At least one read and three write units per chunk (run-store requests besides).
    expect(report.perRun.usage.dynamoReads).toBeGreaterThanOrEqual(chunks);
    expect(report.perRun.usage.dynamoWrites).toBeGreaterThanOrEqual(3 * chunks);
    expect(report.perRun.requests).toBeGreaterThanOrEqual(3 * chunks * 0.625e-6);
  });
});

describe('the simulated day with the chunk index priced', () => {
  it('states the embedding target as the figure has it, and the figure without the index beside it', async () => {
    const day = await runSimulatedDayBench();
    const target = day.targets.embeddingAtOrUnder001PerMillionTokens;
    expect(target.met).toBe(target.value <= 0.01);
    const index = day.chunkIndex;
    // The index's requests are in the bill: $0.78 a run of 100M tokens.
    expect(index.firstEmbedding.requestsUsd).toBeCloseTo(0.78125, 5);
    expect(index.embeddingUsdPerMillionTokensWithoutIndex).toBeLessThan(day.embeddingUsdPerMillionTokens);
    expect(index.indexCostOnFirstEmbeddingUsdPerMillionTokens).toBeCloseTo(
      day.embeddingUsdPerMillionTokens - index.embeddingUsdPerMillionTokensWithoutIndex,
      6,
    );
    expect(index.savedOnUnchangedRerunUsdPerMillionTokens).toBeGreaterThan(0);
  });
});
