import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { UsageMeter } from '../../shared/cost/unit-usage.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import {
  type CachedAnswer,
  ObjectStorePromptCache,
  PROMPT_ITEM_MAX_BYTES,
  promptItemBytes,
} from '../../shared/jobs/generate/prompt-cache.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';

const stats = () => ({ endpointCalls: 0, throttled: 0, retries: 0 });

describe('UsageMeter', () => {
  it('counts endpoint calls, their summed time and the bytes sent, for serverless pricing', async () => {
    let clock = 1000;
    const meter = new UsageMeter(() => clock);
    const endpoint = meter.embeddingEndpoint({
      embed: async (inputs) => {
        clock += 40;
        return inputs.map(() => [0]);
      },
    });
    await endpoint.embed(['héllo', 'abc'], stats());
    await endpoint.embed(['x'], stats());
    const scoring = meter.scoringEndpoint({
      score: async () => {
        clock += 10;
        return '0.5\n';
      },
    });
    await scoring.score('1,2,3\n', stats());
    expect(meter.usage).toMatchObject({
      endpointCalls: 3,
      // 'héllo' is 6 bytes in UTF-8.
      endpointBytes: 6 + 3 + 1 + 6,
      endpointCallMs: 40 + 40 + 10,
      endpointFirstAt: 1000,
      endpointLastAt: 1090,
    });
  });

  it('forwards a queue’s delayed send and counts it, and leaves it out where the queue has none', async () => {
    const later: [string, number][] = [];
    const queue: WorkQueue = {
      sendUnits: async () => {},
      requestFinalize: async () => {},
      sendUnitLater: async (unit, delaySeconds) => {
        later.push([unit.unitId, delaySeconds]);
      },
    };
    const meter = new UsageMeter();
    const metered = meter.queue(queue);
    await metered.sendUnitLater?.({ unitId: 'u1' } as WorkUnit, 30);
    expect(later).toEqual([['u1', 30]]);
    expect(meter.usage.queueSends).toBe(1);
    const plain = new UsageMeter().queue({ sendUnits: async () => {}, requestFinalize: async () => {} });
    expect(plain.sendUnitLater).toBeUndefined();
  });

  it('counts the prompt cache as DynamoDB request units (0.5 per key read, 1 per KB written) and an S3 GET per miss', async () => {
    const meter = new UsageMeter();
    const store = new MemoryObjectStore();
    const cache = meter.promptCache(new ObjectStorePromptCache(store));
    const answer = (n: number, output: string): CachedAnswer => ({
      promptSha256: String(n).repeat(64).slice(0, 64),
      model: 'm',
      output,
      outputJson: null,
      finishReason: 'stop',
      attempts: 1,
      promptTokens: 1,
      completionTokens: 1,
      runId: 'r',
    });
    const small = answer(1, 'short');
    const big = answer(2, 'x'.repeat(5000)); // a 5 KB item: 5 write units, 2 read blocks of 4 KB
    const huge = answer(3, 'x'.repeat(PROMPT_ITEM_MAX_BYTES)); // too large for an item: not written
    await cache.record('p', [small, big, huge]);
    expect(meter.usage.promptCacheWriteUnits).toBe(1 + Math.ceil(promptItemBytes('p', big) / 1024));
    // The cache's own object store is not metered: no S3 PUT counted for the entries.
    expect(meter.usage.s3Puts).toBe(0);
    const found = await cache.lookup('p', [small.promptSha256, big.promptSha256, '4'.repeat(64)]);
    expect(found.size).toBe(2);
    // small: 0.5; big (about 5 KB): 2 x 0.5; the miss: 0.5 and one GET of the old S3 cache.
    expect(meter.usage.promptCacheReadUnits).toBe(0.5 + 1 + 0.5);
    expect(meter.usage.s3Gets).toBe(1);
  });
});
