import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSimulatedDayBench } from '../../bench/simulated-day.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import { dynamoItemBytes } from '../../shared/cost/dynamo-item-size.ts';
import { docIndexItem } from '../../shared/cost/dynamo-storage.ts';
import { chunkIndexEstimate, estimateRunUsage } from '../../shared/cost/estimate-run.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
import { emptyUnitUsage, runUsageOf, UsageMeter, withFinalizeCalls } from '../../shared/cost/unit-usage.ts';
import type { IndexedDoc } from '../../shared/ports/chunk-index.ts';
import { sluice } from '../support/cli.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

const usEast = pricesFor('us-east-1');
const pipelinesDir = path.resolve('pipelines');
const RUN_ID = 'r-20261207T120000Z-abcdef';

/** A document of `chunks` chunks whose vectors start at row 8192 of unit u00003's part. */
const doc = (docId: string, chunks: number): IndexedDoc => ({
  docId,
  chunkCount: chunks,
  sourceKey: 'incoming/p/a.jsonl',
  chunks: {
    fingerprints: new Uint8Array(16 * chunks).fill(7),
    at: { runId: RUN_ID, unitId: 'u00003', firstRow: 8192 },
  },
});

/**
 * pk `DOC#p#d0001` 2 + 11, sk `DOC` 2 + 3, chunkCount (one digit) 10 + 2, sourceKey 9 + 18,
 * fp 2 + 16 per chunk, runId 5 + 25, unitId 6 + 6, row 8192 (four significant digits) 3 + 3.
 */
const docItemBytes = (chunks: number) => 13 + 5 + 12 + 27 + 2 + 16 * chunks + 30 + 12 + 6;

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
  it('prices each document item put by its size: 1 write unit per KB, a document of 4 chunks 1', async () => {
    expect(dynamoItemBytes(docIndexItem('p', doc('d0001', 4)))).toBe(docItemBytes(4));
    expect(docItemBytes(4)).toBe(171);
    // A document found removed: no fingerprints and no place, 30 bytes.
    expect(dynamoItemBytes(docIndexItem('p', { docId: 'd0001', chunkCount: 0 }))).toBe(30);
    const meter = new UsageMeter();
    const index = meter.chunkIndex(new MemoryChunkIndex());
    const ids = Array.from({ length: 1000 }, (_, d) => `d${String(d).padStart(4, '0')}`);
    await index.record(
      'p',
      ids.map((id) => doc(id, 4)),
    );
    // 1,000 document items x 1 write unit, $0.625 per million: no item per chunk any more.
    expect(meter.usage.chunkIndexWriteUnits).toBe(1000);
    expect(requestsUsd(meter)).toBe(0.000625);
    // A document of 60 chunks carries 960 bytes of fingerprints: 1,067 bytes, 2 write units.
    await index.record('p', [doc('long', 60)]);
    expect(meter.usage.chunkIndexWriteUnits).toBe(1002);
  });

  it('puts a document named twice in one record once, as the deployed index sends it', async () => {
    const meter = new UsageMeter();
    await meter.chunkIndex(new MemoryChunkIndex()).record('p', [doc('d', 60), doc('d', 1)]);
    // The last one named: 1 unit, not 2 + 1.
    expect(meter.usage.chunkIndexWriteUnits).toBe(1);
  });

  it('prices lookups as eventually consistent BatchGetItem: 0.5 per 4 KB found, 0.5 per distinct key not found', async () => {
    const inner = new MemoryChunkIndex();
    // 300 chunks: 4,800 bytes of fingerprints, a 4.9 KB item: 5 write units, and 2 x 0.5 read units.
    await inner.record('p', [doc('a', 2), doc('b', 1), doc('big', 300)]);
    const meter = new UsageMeter();
    const index = meter.chunkIndex(inner);
    const found = await index.lookupDocs('p', ['a', 'b', 'big', 'x', 'x', 'y']);
    expect(found.size).toBe(3);
    // Found: 0.5 + 0.5 + 1; not found: x (once) and y, 0.5 each.
    expect(meter.usage.chunkIndexReadUnits).toBe(3);
    expect(meter.usage.chunkIndexWriteUnits ?? 0).toBe(0);
    await index.record('p', [doc('big', 300)]);
    expect(meter.usage.chunkIndexWriteUnits).toBe(5);
    // In the run's usage with the other DynamoDB requests.
    const usage = runUsageOf([{ attempts: 1, usage: meter.usage }], undefined);
    expect(usage.dynamoReads).toBe(3);
    expect(usage.dynamoWrites).toBe(5);
  });

  it('adds finalize’s own chunk index calls (the source comparison’s lookups and rewrites) to the run’s', async () => {
    const inner = new MemoryChunkIndex();
    await inner.record('p', [doc('gone', 4), doc('kept', 4)]);
    const finalize = new UsageMeter();
    const index = finalize.chunkIndex(inner);
    await index.lookupDocs('p', ['gone', 'moved']);
    await index.record('p', [{ docId: 'gone', chunkCount: 0 }]);
    const units = runUsageOf([{ attempts: 1, usage: emptyUnitUsage() }], undefined);
    const run = withFinalizeCalls(units, finalize.usage);
    // One found and one missed (0.5 each), one put (1); the run's move is the other write.
    expect(run.dynamoReads - units.dynamoReads).toBe(1);
    expect(run.dynamoWrites - units.dynamoWrites).toBe(1 + 1);
    // The forgotten document's entry shrank from 171 to 30 bytes.
    expect(run.dynamoBytesStored).toBe(30 - docItemBytes(4));
    const quiet = withFinalizeCalls(units, emptyUnitUsage());
    expect(quiet).not.toHaveProperty('dynamoBytesStored');
  });
});

describe('the chunk index’s request units in `sluice cost` estimates', () => {
  const tokens = 100_000_000;
  const docsConfig = async () => {
    const config = await loadPipelineConfig(pipelinesDir, 'docs');
    if (config.kind !== 'embed') throw new Error('docs is an embed pipeline');
    return config;
  };
  const price = (usage: ReturnType<typeof estimateRunUsage>['usage']) =>
    runCost(usage, usEast, { region: 'us-east-1', estimate: true });

  it('embed, incremental, documents not counted: one per chunk, each looked up and missed and its item put', async () => {
    const config = await docsConfig();
    const chunks = Math.ceil(tokens / config.chunking.maxTokens); // 390,625
    const on = estimateRunUsage({ config, estimatedCost: tokens });
    const off = estimateRunUsage({
      config: { ...config, incremental: { enabled: false } },
      estimatedCost: tokens,
    });
    expect(on.chunkIndex).toMatchObject({ chunks, documents: chunks, documentsCounted: false });
    expect(off.chunkIndex).toBeUndefined();
    // Reads: 0.5 per document; writes: 1 per document (a one-chunk item of 183 bytes).
    expect(on.chunkIndex?.itemBytes).toBe(183);
    expect(on.usage.dynamoReads - off.usage.dynamoReads).toBeCloseTo(chunks / 2, 6);
    expect(on.usage.dynamoWrites - off.usage.dynamoWrites).toBeCloseTo(chunks, 6);
    // 195,312.5 x $0.125 + 390,625 x $0.625 per million = $0.024414 + $0.244141.
    expect(price(on.usage).requests - price(off.usage).requests).toBeCloseTo(0.268555, 5);
    // A first embedding reads no vector back.
    expect(on.usage.s3Gets).toBe(off.usage.s3Gets);
  });

  it('embed, documents counted: one entry per document, its fingerprints sized by its chunks', async () => {
    const config = await docsConfig();
    const chunks = Math.ceil(tokens / config.chunking.maxTokens);
    const documents = Math.ceil(chunks / 12);
    const upper = estimateRunUsage({ config, estimatedCost: tokens });
    const counted = estimateRunUsage({ config, estimatedCost: tokens, estimatedDocuments: documents });
    expect(counted.chunkIndex).toMatchObject({ documents, documentsCounted: true });
    // 12 chunks: 192 bytes of fingerprints (chunkCount 12 is as long as 1), one write unit still.
    expect(counted.chunkIndex?.itemBytes).toBe(183 - 16 + 192);
    expect(counted.chunkIndex?.writeUnits).toBe(documents);
    expect(counted.chunkIndex?.readUnits).toBe(documents / 2);
    expect(counted.usage.dynamoBytesStored).toBeCloseTo(documents * (183 + 176 + 100), 0);
    // Counting documents never prices more than the one-per-chunk bound.
    expect(price(counted.usage).requests).toBeLessThan(price(upper.usage).requests);
    expect(price(counted.usage).storage).toBeLessThan(price(upper.usage).storage);
    // More documents than chunks cannot be: the bound holds.
    const over = estimateRunUsage({ config, estimatedCost: tokens, estimatedDocuments: 2 * chunks });
    expect(over.chunkIndex?.documents).toBe(chunks);
  });

  it('an unchanged re-run finds every entry, rewrites one in 7, adds no storage, and reads its vectors back by row group', () => {
    const rerun = chunkIndexEstimate({
      pipeline: 'docs',
      chunks: 390_625,
      sortWindow: 2048,
      units: 50,
      unchanged: true,
      rowBytes: 2760,
    });
    expect(rerun.readUnits).toBe(390_625 * 0.5);
    // A run a day: each entry is refreshed once its run is 7 days old.
    expect(rerun.rewrittenDocuments).toBe(55_804);
    expect(rerun.writeUnits).toBe(55_804);
    // Its parts (and every run's) stay up to 8 days after it started, superseded or not.
    expect(rerun).toMatchObject({ heldPartBytes: 390_625 * 2760, heldPartDays: 8 });
    expect(rerun.storageBytes).toBe(0);
    // 50 units each open their earlier part (a HEAD and a footer GET); 191 windows each read
    // at most 2 row groups of 2,048 rows, at most 3 GETs each (columns, offset index).
    expect(rerun.s3Gets).toBe(50 * 2 + 191 * 2 * 3);
    const first = chunkIndexEstimate({
      pipeline: 'docs',
      chunks: 390_625,
      sortWindow: 2048,
      units: 50,
      unchanged: false,
    });
    expect(first.s3Gets).toBe(0);
    expect(first.writeUnits).toBe(390_625);
  });

  it('breaks the chunk index out of `sluice cost --json` for the docs sample, one entry per sampled record', async () => {
    const run = await sluice('cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs', '--json');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.out.at(-1) ?? '{}');
    const chunks = Math.ceil(report.work.amount / 256);
    // 300 records of 410 chunks; the file is over the sample's 4 windows, so they are sampled.
    const documents = report.chunkIndex.documents;
    expect(report.chunkIndex).toMatchObject({ chunks, documentsCounted: true, documentsFrom: 'sampled' });
    expect(documents).toBeGreaterThanOrEqual(270);
    expect(documents).toBeLessThanOrEqual(330);
    expect(report.chunkIndex.readUnits).toBe(documents / 2);
    expect(report.chunkIndex.writeUnits).toBe(documents);
    // Its share of the requests part, at $0.125 and $0.625 per million, rounded to the
    // micro-dollar: within half of one (the sample's windows, seeded by the file's path, decide
    // the count, and some counts land exactly on a half: 296 -> $0.0002035).
    expect(Math.abs(report.chunkIndex.requestsUsd - documents * (0.0625 + 0.625) * 1e-6)).toBeLessThanOrEqual(
      0.5e-6 + 1e-12,
    );
    expect(report.chunkIndex.requestsUsd).toBeLessThanOrEqual(report.perRun.requests);
    const text = await sluice('cost', 'events/data/docs-sample.jsonl', '--pipeline', 'docs');
    expect(text.out.find((l) => l.startsWith('  index'))).toMatch(
      /^ {2}index {5}\$[\d.]+ of the requests: [\d,]+ document entries \(sampled: records per byte of the planning sample\), [\d,.]+ read \+ [\d,]+ write units$/,
    );
  });
});

describe('the simulated day with the chunk index priced', () => {
  it('states the embedding target as the figure has it, and the figure without the index beside it', async () => {
    const day = await runSimulatedDayBench();
    const target = day.targets.embeddingAtOrUnder001PerMillionTokens;
    expect(target.met).toBe(target.value <= 0.01);
    expect(target.value).toBe(day.embeddingUsdPerMillionTokens);
    const index = day.chunkIndex;
    // One entry per document, one document per chunk (the bound): $0.27 of requests a run of 100M tokens.
    expect(index.firstEmbedding.requestsUsd).toBeCloseTo(0.268555, 5);
    expect(index.embeddingUsdPerMillionTokensWithoutIndex).toBeLessThan(day.embeddingUsdPerMillionTokens);
    expect(index.indexCostOnFirstEmbeddingUsdPerMillionTokens).toBeCloseTo(
      day.embeddingUsdPerMillionTokens - index.embeddingUsdPerMillionTokensWithoutIndex,
      6,
    );
    // The re-run's S3 reads of the earlier part are priced, and counted.
    expect(index.unchangedRerun.byChunksPerDocument[0]?.s3Gets).toBeGreaterThan(0);
    // More chunks per document: fewer entries, a larger saving.
    const saved = index.unchangedRerun.byChunksPerDocument.map((row) => row.savedUsd);
    expect(saved).toEqual([...saved].sort((a, b) => a - b));
  });
});
