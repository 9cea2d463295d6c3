import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import {
  DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES,
  dynamoItemBytes,
  dynamoItemStorageBytes,
} from '../../shared/cost/dynamo-item-size.ts';
import { StoredItemTally } from '../../shared/cost/dynamo-storage.ts';
import {
  estimateGenerateUsage,
  promptCacheStorageBytesPerRecord,
} from '../../shared/cost/estimate-generate.ts';
import { estimateRunUsage } from '../../shared/cost/estimate-run.ts';
import { pricesFor } from '../../shared/cost/pricing.ts';
import { type RunUsage, runCost } from '../../shared/cost/run-cost.ts';
import { runUsageOf, UsageMeter } from '../../shared/cost/unit-usage.ts';
import { type CachedAnswer, ObjectStorePromptCache } from '../../shared/jobs/generate/prompt-cache.ts';
import type { IndexedDoc } from '../../shared/ports/chunk-index.ts';
import { sluice } from '../support/cli.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

const usEast = pricesFor('us-east-1');
const GiB = 1024 ** 3;
const pipelinesDir = path.resolve('pipelines');

/** An answer whose prompt-cache item is 571 bytes, counted by hand below. */
const answer = (i: number): CachedAnswer => ({
  promptSha256: i.toString(16).padStart(64, '0'),
  model: 'm1',
  output: 'x'.repeat(300),
  outputJson: null,
  finishReason: 'stop',
  attempts: 1,
  promptTokens: 120,
  completionTokens: 75,
  runId: 'r-20261207T120000Z-abcdef',
});

/**
 * pk `PROMPT#p#<64 hex>` 2 + 73, sk `PROMPT` 2 + 6, promptSha256 12 + 64, model 5 + 2,
 * output 6 + 300, outputJson null 10 + 1, finishReason 12 + 4, attempts 1 8 + 2,
 * promptTokens 120 (two significant digits) 12 + 2, completionTokens 75 16 + 2, runId 5 + 25.
 */
const ANSWER_ITEM_BYTES = 75 + 8 + 76 + 7 + 306 + 11 + 16 + 10 + 14 + 18 + 30;

/** A document of `chunks` chunks, its vectors at row 12 of unit u00001's part. */
const doc = (chunks: number): IndexedDoc => ({
  docId: 'd1',
  chunkCount: chunks,
  sourceKey: 'incoming/p/a.jsonl',
  chunks: {
    fingerprints: new Uint8Array(16 * chunks),
    at: { runId: 'r-20261207T120000Z-abcdef', unitId: 'u00001', firstRow: 12 },
  },
});
/**
 * pk `DOC#p#d1` 2 + 8, sk 2 + 3, chunkCount 10 + 2, sourceKey 9 + 18, fp 2 + 16 a chunk,
 * runId 5 + 25, unitId 6 + 6, row 12 3 + 2.
 */
const docItemBytes = (chunks: number) => 10 + 5 + 12 + 27 + 2 + 16 * chunks + 30 + 12 + 5;

describe('DynamoDB item sizes (the developer guide’s rules)', () => {
  it('counts names and values: strings and binaries by bytes, numbers by significant digits, lists and maps with their overhead', () => {
    const item = {
      pk: 'PROMPT#p#ab', // 2 + 11
      n: 12345, // 1 + (3 + 1)
      b: new Uint8Array(10), // 1 + 10
      z: null, // 1 + 1
      t: true, // 1 + 1
      l: ['ab', 7], // 1 + 3 + (1 + 2) + (1 + 2)
      m: { k: 'v' }, // 1 + 3 + (1 + 1 + 1)
      gone: undefined, // not stored
    };
    expect(dynamoItemBytes(item)).toBe(13 + 5 + 11 + 2 + 2 + 10 + 7);
    expect(dynamoItemStorageBytes(item)).toBe(50 + DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES);
    // Leading and trailing zeros are trimmed; UTF-8 bytes, not characters.
    expect(dynamoItemBytes({ a: 1200 })).toBe(1 + 2);
    expect(dynamoItemBytes({ a: 0.0012 })).toBe(1 + 2);
    expect(dynamoItemBytes({ a: 'é' })).toBe(1 + 2);
  });

  it('sizes a prompt-cache answer’s item and a chunk index entry as counted by hand', () => {
    const meter = new UsageMeter();
    const cache = meter.promptCache(new ObjectStorePromptCache(new MemoryObjectStore()));
    return cache.record('p', [answer(1)]).then(() => {
      expect(meter.usage.dynamoBytesAdded).toBe(ANSWER_ITEM_BYTES + 100);
    });
  });
});

describe('DynamoDB storage in a run’s cost', () => {
  it('prices 1,000 new answers of 571 bytes as a month of 671,000 bytes of DynamoDB Standard storage', async () => {
    const meter = new UsageMeter();
    const cache = meter.promptCache(new ObjectStorePromptCache(new MemoryObjectStore()));
    await cache.record(
      'p',
      Array.from({ length: 1000 }, (_, i) => answer(i)),
    );
    const usage = runUsageOf([{ attempts: 1, usage: meter.usage }], undefined);
    expect(usage.dynamoBytesStored).toBe(1000 * (ANSWER_ITEM_BYTES + 100));
    const cost = runCost(usage, usEast, { region: 'us-east-1', estimate: true });
    // 671,000 / 1,024^3 GB x $0.25 = $0.000156 (the S3 part: no bytes put).
    expect(usEast.dynamoStandardGbMonth.usd).toBe(0.25);
    expect(cost.storage).toBe(0.000156);
    expect(cost.basis.storage).toMatch(/100 bytes of per-item overhead/);
  });

  it('adds nothing for answers a lookup found (a re-run carries them), and only the change for a replaced entry', async () => {
    const store = new MemoryObjectStore();
    await new ObjectStorePromptCache(store).record('p', [answer(1), answer(2)]);
    const meter = new UsageMeter();
    const cache = meter.promptCache(new ObjectStorePromptCache(store));
    const found = await cache.lookup('p', [
      answer(1).promptSha256,
      answer(2).promptSha256,
      answer(3).promptSha256,
    ]);
    expect(found.size).toBe(2);
    await cache.record('p', [answer(3), { ...answer(1), output: 'x'.repeat(310) }]);
    expect(meter.usage.dynamoBytesAdded).toBe(ANSWER_ITEM_BYTES + 100 + 10);
  });

  it('counts a chunk index’s new entries whole and a re-recorded one by its change', async () => {
    expect(docItemBytes(2)).toBe(135);
    const index = new MemoryChunkIndex();
    const first = new UsageMeter();
    const metered = first.chunkIndex(index);
    await metered.lookupDocs('p', ['d1']);
    await metered.record('p', [doc(2)]);
    expect(first.usage.dynamoBytesAdded).toBe(docItemBytes(2) + 100);

    // The same document with a third chunk: 16 bytes more, no new item.
    const second = new UsageMeter();
    const again = second.chunkIndex(index);
    await again.lookupDocs('p', ['d1']);
    await again.record('p', [doc(3)]);
    expect(second.usage.dynamoBytesAdded).toBe(16);

    // Unchanged: its entry written again (a new place) at the same size adds nothing.
    const third = new UsageMeter();
    const same = third.chunkIndex(index);
    await same.lookupDocs('p', ['d1']);
    await same.record('p', [
      {
        ...doc(3),
        chunks: {
          ...doc(3).chunks!,
          at: { runId: 'r-20261208T120000Z-abcdef', unitId: 'u00002', firstRow: 40 },
        },
      },
    ]);
    expect(third.usage.dynamoBytesAdded).toBe(0);

    // Found removed: the entry keeps no fingerprints and no place, and shrinks to 30 bytes.
    const fourth = new UsageMeter();
    const removed = fourth.chunkIndex(index);
    await removed.lookupDocs('p', ['d1']);
    await removed.record('p', [{ docId: 'd1', chunkCount: 0 }]);
    expect(fourth.usage.dynamoBytesAdded).toBe(27 - docItemBytes(3));
  });

  it('remembers a bounded number of keys: an item found long before it is put again counts as new (an over-count)', () => {
    const tally = new StoredItemTally(2);
    const item = (pk: string) => ({ pk, sk: 'S', v: 'x' });
    // pk 2 + 1, sk 2 + 1, v 1 + 1: 8 bytes.
    for (const pk of ['a', 'b', 'c', 'd']) tally.found(item(pk));
    expect(tally.put(item('d'))).toBe(0);
    expect(tally.put(item('a'))).toBe(8 + 100);
  });

  it('leaves the summary’s usage as before for a run that adds no item, and never prices a shrink below zero', () => {
    const usage = runUsageOf([{ attempts: 1, usage: new UsageMeter().usage }], undefined);
    expect(usage).not.toHaveProperty('dynamoBytesStored');
    const shrunk: RunUsage = { ...usage, dynamoBytesStored: -5000 };
    expect(runCost(shrunk, usEast, { region: 'us-east-1', estimate: true }).storage).toBe(0);
  });
});

describe('DynamoDB storage in `sluice cost` estimates', () => {
  it('generate: one prompt-cache item per answer, the answer twice with a JSON schema (727 bytes for 40 tokens)', async () => {
    const config = await loadPipelineConfig(pipelinesDir, 'generate-triage');
    if (config.kind !== 'generate') throw new Error('generate-triage is a generate pipeline');
    const work = { records: 1000, answerable: 1000, promptTokens: 124_000, completionTokens: 40_000 };
    // pk 2 + 87, sk 8, promptSha256 76, model 5 + 24, output and outputJson 6 + 160 and 10 + 160,
    // finishReason 16, attempts 10, promptTokens 124 12 + 3, completionTokens 40 16 + 2, runId 30, overhead 100.
    expect(promptCacheStorageBytesPerRecord(config, work)).toBe(
      89 + 8 + 76 + 29 + 166 + 170 + 16 + 10 + 15 + 18 + 30 + 100,
    );
    const estimate = estimateGenerateUsage({ config, estimatedCost: work.promptTokens, work });
    expect(estimate.usage.dynamoBytesStored).toBeCloseTo(1000 * 727, 6);
    const cost = runCost(estimate.usage, usEast, { region: 'us-east-1', estimate: true });
    const s3Only = (estimate.usage.bytesStored / GiB) * usEast.s3StandardGbMonth.usd;
    const dynamo = ((1000 * 727) / GiB) * usEast.dynamoStandardGbMonth.usd;
    expect(cost.storage).toBeCloseTo(s3Only + dynamo, 6);
    expect(cost.storage).toBeGreaterThan(s3Only + 0.0001);
  });

  it('generate at scale (docs/cost.md): 1M tickets of 124 + 40 tokens keep 727 MB of cache items, $0.18 of storage a month', async () => {
    const config = await loadPipelineConfig(pipelinesDir, 'generate-triage');
    if (config.kind !== 'generate') throw new Error('generate-triage is a generate pipeline');
    const n = 1_000_000;
    const work = { records: n, answerable: n, promptTokens: 124 * n, completionTokens: 40 * n };
    const estimate = estimateGenerateUsage({ config, estimatedCost: work.promptTokens, work });
    const cost = runCost(estimate.usage, usEast, { region: 'us-east-1', estimate: true });
    expect(estimate.usage.dynamoBytesStored).toBeCloseTo(727_000_000, 0);
    // S3: 360 MB of generations x $0.023 = $0.007711; DynamoDB: 727 MB x $0.25 = $0.169268.
    expect(cost.storage).toBe(0.176979);
  });

  it('embed: one chunk index entry per document when the pipeline is incremental (one per chunk uncounted), none when it is not', async () => {
    const config = await loadPipelineConfig(pipelinesDir, 'docs');
    if (config.kind !== 'embed') throw new Error('docs is an embed pipeline');
    const chunks = Math.ceil(1_000_000 / config.chunking.maxTokens);
    const on = estimateRunUsage({ config, estimatedCost: 1_000_000 });
    // No vectors: a one-chunk document's entry is 183 bytes and 100 of overhead.
    expect((on.usage.dynamoBytesStored ?? 0) / chunks).toBeCloseTo(283, 6);
    const counted = estimateRunUsage({ config, estimatedCost: 1_000_000, estimatedDocuments: chunks / 4 });
    // Four chunks a document: 48 bytes more fingerprints, a quarter of the items.
    expect(counted.usage.dynamoBytesStored).toBeCloseTo((chunks / 4) * (283 + 48), 6);
    const off = estimateRunUsage({
      config: { ...config, incremental: { enabled: false } },
      estimatedCost: 1_000_000,
    });
    expect(off.usage).not.toHaveProperty('dynamoBytesStored');
  });

  it('prints the prompt cache’s items in the storage line, and their bytes in --json', async () => {
    const args = ['cost', 'events/data/tickets-sample.jsonl', '--pipeline', 'generate-triage'];
    const text = await sluice(...args);
    expect(text.code).toBe(0);
    expect(text.out.find((l) => l.startsWith('  storage'))).toMatch(
      /^ {2}storage {3}\$[\d.]+ {2}\(one month of the outputs, [\d.]+ MiB in S3, and of 47 prompt-cache items of [\d,]+ bytes, [\d.]+ MiB in DynamoDB\)$/,
    );
    const json = (await sluice(...args, '--json')).json<{
      promptCache: { items: number; storageBytesPerItem: number; usdPerMonthKept: number };
      perRun: { usage: RunUsage };
    }>();
    expect(json.promptCache.items).toBe(47);
    expect(json.perRun.usage.dynamoBytesStored).toBeCloseTo(47 * json.promptCache.storageBytesPerItem, 6);
    expect(json.promptCache.usdPerMonthKept).toBeGreaterThan(0);
  });
});
