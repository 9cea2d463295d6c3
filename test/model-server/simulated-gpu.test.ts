import { describe, expect, it } from 'vitest';
import { SimulatedGpu } from '../../cli/model-server/simulated-gpu.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { sleepGate } from './gates.ts';

const counter = new EstimatingTokenCounter();
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('SimulatedGpu', () => {
  it('prices a batch by padded tokens: the longest input, estimated as the batcher does, times the count', () => {
    const gpu = new SimulatedGpu({ latencyMsFixed: 20, latencyMsPerToken: 0.02 });
    const inputs = [
      'a short one',
      'a considerably longer input about visibility timeouts',
      'mid length text',
    ];

    const { padded, real } = gpu.paddedTokensOf(inputs);

    const tokens = inputs.map((t) => counter.count(t));
    expect(padded).toBe(Math.max(...tokens) * 3);
    expect(real).toBe(tokens.reduce((a, b) => a + b, 0));
    expect(gpu.latencyMsOf(16_384)).toBeCloseTo(20 + 0.02 * 16_384, 9);
  });

  it('runs `capacity` batches at once, lets `queue` more wait and refuses the rest at once', async () => {
    const gate = sleepGate();
    const gpu = new SimulatedGpu({ capacity: 2, queue: 1, latencyMsFixed: 10, sleep: gate.sleep });

    const first = gpu.admit(['a']);
    const second = gpu.admit(['b']);
    const third = gpu.admit(['c']);
    const fourth = gpu.admit(['d']);

    expect(first).toBeDefined();
    expect(second).toBeDefined();
    expect(third).toBeDefined();
    expect(fourth).toBeUndefined();
    expect(gpu.stats()).toMatchObject({ running: 2, waiting: 1, admitted: 3, throttled: 1, peakWaiting: 1 });

    // A finished batch hands its slot to the one waiting, before any newcomer.
    const finishing = (await first!).finish();
    await flush();
    gate.openAll();
    await finishing;
    await third;
    expect(gpu.stats()).toMatchObject({ running: 2, waiting: 0, throttled: 1, peakRunning: 2 });
    // Its queue place is free again.
    expect(gpu.admit(['e'])).toBeDefined();
    expect(gpu.admit(['f'])).toBeUndefined();
    expect(gpu.stats()).toMatchObject({ running: 2, waiting: 1, throttled: 2 });
  });

  it('counts the padded tokens and slot time of finished batches', async () => {
    const gpu = new SimulatedGpu({ capacity: 4 });
    const slot = await gpu.admit(['one two three', 'four'])!;
    await slot.finish();

    const stats = gpu.stats();
    const longest = Math.max(counter.count('one two three'), counter.count('four'));
    expect(stats).toMatchObject({ paddedTokens: longest * 2, running: 0, admitted: 1 });
    expect(stats.busyMs).toBeGreaterThanOrEqual(0);
  });

  it('with no capacity set, never throttles', () => {
    const gpu = new SimulatedGpu();
    for (let i = 0; i < 100; i += 1) expect(gpu.admit(['x'])).toBeDefined();
    expect(gpu.stats()).toMatchObject({ capacity: null, throttled: 0, running: 100 });
  });

  it('rejects settings that cannot describe a GPU', () => {
    expect(() => new SimulatedGpu({ capacity: 0 })).toThrow(/capacity/);
    expect(() => new SimulatedGpu({ capacity: 1.5 })).toThrow(/capacity/);
    expect(() => new SimulatedGpu({ queue: -1 })).toThrow(/queue/);
    expect(() => new SimulatedGpu({ latencyMsPerToken: -1 })).toThrow(/latencies/);
  });
});
