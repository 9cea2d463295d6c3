import { describe, expect, it } from 'vitest';
import { UsageMeter } from '../../shared/cost/unit-usage.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
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
});
