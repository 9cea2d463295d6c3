import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptiveLimiter, type AdaptiveLimiterOptions } from '../../shared/endpoint/adaptive-limiter.ts';
import { ConfigError } from '../../shared/errors/errors.ts';

const THROTTLED = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
const REFUSED = Object.assign(new Error('bad input'), { name: 'ModelError' });

type Outcome = 'ok' | 'throttle' | 'fail';

interface Pending {
  readonly startedAt: number;
  readonly resolve: (value: string) => void;
  readonly reject: (error: unknown) => void;
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * An endpoint whose calls stay open until the test settles them, on a fake clock: a call
 * "takes" exactly the latency the test gives it. It records every time a call started
 * while more were in flight than the limit allowed.
 */
class FakeEndpoint {
  clock = 0;
  inFlight = 0;
  readonly pending: Pending[] = [];
  readonly violations: string[] = [];
  readonly limiter: AdaptiveLimiter;

  constructor(options: Partial<AdaptiveLimiterOptions> = {}) {
    this.limiter = new AdaptiveLimiter({ initialLimit: 4, maxLimit: 16, now: () => this.clock, ...options });
  }

  call(cost = 1): Promise<string> {
    const result = this.limiter.run(
      () => {
        this.inFlight += 1;
        const { limit, inFlight } = this.limiter.stats();
        if (this.inFlight > limit)
          this.violations.push(`${this.inFlight} in flight over a limit of ${limit}`);
        if (this.inFlight > inFlight)
          this.violations.push(`limiter counts ${inFlight}, ${this.inFlight} run`);
        return new Promise<string>((resolve, reject) =>
          this.pending.push({ startedAt: this.clock, resolve, reject }),
        );
      },
      { cost, isOverload: (error) => error === THROTTLED },
    );
    result.catch(() => {});
    return result;
  }

  /** Starts `count` calls; those over the limit wait. */
  async start(count: number, cost = 1): Promise<Promise<string>[]> {
    const calls = Array.from({ length: count }, () => this.call(cost));
    await flush();
    return calls;
  }

  /** Settles one running call (the oldest by default) `latencyMs` after it started. */
  async finish(outcome: Outcome, latencyMs = 100, index = 0): Promise<void> {
    const [call] = this.pending.splice(index, 1);
    if (!call) throw new Error('no call in flight');
    this.clock = call.startedAt + latencyMs;
    this.inFlight -= 1;
    if (outcome === 'ok') call.resolve('vectors');
    else call.reject(outcome === 'throttle' ? THROTTLED : REFUSED);
    await flush();
  }

  /** `count` successes, each replaced by a new call, so the limiter stays saturated. */
  async succeedSaturated(count: number, latencyMs = 100): Promise<void> {
    for (let i = 0; i < count; i += 1) {
      this.call();
      await this.finish('ok', latencyMs);
    }
  }

  get limit(): number {
    return this.limiter.stats().limit;
  }
}

describe('AdaptiveLimiter', () => {
  it('lets the initial limit of calls run and queues the rest first come, first served', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 2 });
    const calls = await endpoint.start(5);
    expect(endpoint.inFlight).toBe(2);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 2, inFlight: 2, waiting: 3 });

    await endpoint.finish('ok');
    expect(await calls[0]).toBe('vectors');
    expect(endpoint.inFlight).toBe(2);
    expect(endpoint.limiter.stats().waiting).toBe(2);
  });

  it('passes results and errors through, and other failures leave the limit alone', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 2 });
    const [refused] = await endpoint.start(3);

    await endpoint.finish('fail');

    await expect(refused).rejects.toBe(REFUSED);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 2, otherFailures: 1, backoffs: 0, throttles: 0 });
  });

  it('adds one slot per window of `limit` successes while the limit is in use, up to the maximum', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 2, maxLimit: 4 });
    await endpoint.start(10);

    await endpoint.succeedSaturated(1);
    expect(endpoint.limit).toBe(2);
    await endpoint.succeedSaturated(1);
    expect(endpoint.limit).toBe(3);
    await endpoint.succeedSaturated(3);
    expect(endpoint.limit).toBe(4);
    expect(endpoint.inFlight).toBe(4);
    await endpoint.succeedSaturated(40);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, peakLimit: 4, increases: 2 });
    expect(endpoint.violations).toEqual([]);
  });

  it('does not grow while fewer than half of its slots are used', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 4 });
    for (let i = 0; i < 30; i += 1) {
      await endpoint.start(1);
      await endpoint.finish('ok');
    }
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, succeeded: 30, increases: 0 });
  });

  it('halves the limit on a throttle, once for all the calls that were sent at the old limit', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 8, fastRecovery: false });
    const calls = await endpoint.start(12);

    await endpoint.finish('throttle');
    await endpoint.finish('throttle');
    await endpoint.finish('throttle');

    await expect(calls[0]).rejects.toBe(THROTTLED);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, throttles: 3, backoffs: 1, lowestLimit: 4 });
    // 5 calls of the old epoch are still running: no new one starts until fewer than 4 are.
    expect(endpoint.inFlight).toBe(5);
    await endpoint.finish('ok');
    expect(endpoint.limiter.stats()).toMatchObject({ inFlight: 4, waiting: 4 });
    await endpoint.finish('ok');
    expect(endpoint.limiter.stats()).toMatchObject({ inFlight: 4, waiting: 3 });
    expect(endpoint.violations).toEqual([]);
  });

  it('halves again on a throttle of a call sent after the last decrease, down to the minimum of 1', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 4 });
    await endpoint.start(40);
    const limits: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      await endpoint.finish('throttle', 100, endpoint.pending.length - 1);
      limits.push(endpoint.limit);
      // The calls sent before this decrease finish; those admitted meanwhile belong to the new epoch.
      const stale = endpoint.pending.length;
      for (let k = 0; k < stale; k += 1) await endpoint.finish('ok');
    }
    expect(limits).toEqual([2, 1, 1, 1, 1, 1]);
    expect(endpoint.limiter.stats().lowestLimit).toBe(1);
  });

  it('climbs back one step per success to just under the limit that throttled, then probes it slowly', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 8, probeWindows: 4 });
    await endpoint.start(40);
    await endpoint.finish('throttle', 100, 7);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, ceiling: 8 });

    // Any success shows the endpoint still answers: one step each, up to just under 8.
    for (let i = 0; i < 3; i += 1) await endpoint.finish('ok');
    expect(endpoint.limit).toBe(7);
    // The other calls sent at 8 say nothing about probing 8 again.
    for (let i = 0; i < 4; i += 1) await endpoint.finish('ok');
    expect(endpoint.limit).toBe(7);

    await endpoint.succeedSaturated(7 * 4 - 1);
    expect(endpoint.limit).toBe(7);
    await endpoint.succeedSaturated(1);
    expect(endpoint.limit).toBe(8);
    expect(endpoint.violations).toEqual([]);
  });

  it('probes a level that throttles again twice as slowly', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 8, probeWindows: 2 });
    await endpoint.start(60);
    await endpoint.finish('throttle', 100, 7);
    for (let i = 0; i < 7; i += 1) await endpoint.finish('ok');
    await endpoint.succeedSaturated(7 * 2);
    expect(endpoint.limit).toBe(8);

    await endpoint.finish('throttle', 100, 7);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, ceiling: 8 });
    for (let i = 0; i < 7; i += 1) await endpoint.finish('ok');
    await endpoint.succeedSaturated(7 * 4 - 1);
    expect(endpoint.limit).toBe(7);
    await endpoint.succeedSaturated(1);
    expect(endpoint.limit).toBe(8);
  });

  it('forgets the ceiling once the limit has grown past it without a throttle', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 8, probeWindows: 1 });
    await endpoint.start(40);
    await endpoint.finish('throttle', 100, 7);
    for (let i = 0; i < 7; i += 1) await endpoint.finish('ok');
    await endpoint.succeedSaturated(7 + 8);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 9, ceiling: undefined, peakLimit: 9 });
    // Back to plain additive increase: one step per window of 9.
    await endpoint.succeedSaturated(8);
    expect(endpoint.limit).toBe(9);
    await endpoint.succeedSaturated(1);
    expect(endpoint.limit).toBe(10);
  });

  it('without fast recovery, grows back additively after a decrease (plain AIMD)', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 8, fastRecovery: false });
    await endpoint.start(30);
    await endpoint.finish('throttle', 100, 7);
    for (let i = 0; i < 7; i += 1) await endpoint.finish('ok');
    expect(endpoint.limit).toBe(4);

    await endpoint.succeedSaturated(4);
    expect(endpoint.limit).toBe(5);
    await endpoint.succeedSaturated(5);
    expect(endpoint.limit).toBe(6);
  });

  it('backs off when the smoothed latency passes twice the no-load latency', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 8, maxLimit: 8 });
    await endpoint.start(40);
    await endpoint.succeedSaturated(10, 100);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 8, latencyRatio: 1 });

    // EWMA(0.2) of ratio 3: 1.4, 1.72, 1.98, 2.18
    await endpoint.succeedSaturated(3, 300);
    expect(endpoint.limit).toBe(8);
    await endpoint.succeedSaturated(1, 300);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 6, latencyBackoffs: 1, backoffs: 1, ceiling: 8 });
    expect(endpoint.violations).toEqual([]);
  });

  it('does not grow while latency says the endpoint is queueing, even before it may back off', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 2, maxLimit: 8, latencyMinSamples: 50 });
    await endpoint.start(40);
    await endpoint.succeedSaturated(2, 100);
    expect(endpoint.limit).toBe(3);

    await endpoint.succeedSaturated(30, 1000);

    expect(endpoint.limiter.stats()).toMatchObject({ limit: 3, backoffs: 0, increases: 1 });
  });

  it('compares latency only between calls of similar cost, so big batches are not mistaken for queueing', async () => {
    const endpoint = new FakeEndpoint({ initialLimit: 4, maxLimit: 4 });
    for (let i = 0; i < 40; i += 1) {
      const big = i % 2 === 0;
      await endpoint.start(1, big ? 16_384 : 512);
      await endpoint.finish('ok', big ? 350 : 30);
    }
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, latencyBackoffs: 0, latencyRatio: 1 });
  });

  it('ignores the latencies of calls sent before a decrease and waits for enough new samples', async () => {
    const endpoint = new FakeEndpoint({
      initialLimit: 8,
      maxLimit: 8,
      latencyMinSamples: 5,
      fastRecovery: false,
    });
    await endpoint.start(40);
    await endpoint.succeedSaturated(5, 100);
    await endpoint.succeedSaturated(1, 1000);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 6, latencyBackoffs: 1 });

    // The 7 calls still out were sent at 8; then 4 samples of the new epoch are not enough.
    await endpoint.succeedSaturated(7 + 4, 1000);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 6, latencyBackoffs: 1 });
    await endpoint.succeedSaturated(1, 1000);
    expect(endpoint.limiter.stats()).toMatchObject({ limit: 4, latencyBackoffs: 2 });
  });

  describe('slow start (opt-in)', () => {
    it('doubles the limit per window of `limit` successes while it is in use', async () => {
      const endpoint = new FakeEndpoint({ initialLimit: 4, maxLimit: 64, slowStart: true });
      await endpoint.start(100);

      await endpoint.succeedSaturated(4);
      expect(endpoint.limit).toBe(8);
      await endpoint.succeedSaturated(8);
      expect(endpoint.limit).toBe(16);
      await endpoint.succeedSaturated(16);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 32, slowStarting: true, backoffs: 0 });
      expect(endpoint.inFlight).toBe(32);
      expect(endpoint.violations).toEqual([]);
    });

    it('stops at the maximum', async () => {
      const endpoint = new FakeEndpoint({ initialLimit: 4, maxLimit: 10, slowStart: true });
      await endpoint.start(40);
      await endpoint.succeedSaturated(30);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 10, peakLimit: 10 });
    });

    it('ends at the first throttle: halves, then recovers and climbs additively, never doubling again', async () => {
      const endpoint = new FakeEndpoint({ initialLimit: 4, maxLimit: 64, slowStart: true, probeWindows: 1 });
      await endpoint.start(100);
      await endpoint.succeedSaturated(4 + 8);
      expect(endpoint.limit).toBe(16);

      await endpoint.finish('throttle', 100, endpoint.pending.length - 1);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 8, ceiling: 16, slowStarting: false });
      // Calls sent at 16 finish: fast recovery climbs back to just under 16, one step each.
      for (let i = 0; i < 15; i += 1) await endpoint.finish('ok');
      expect(endpoint.limit).toBe(15);
      // Then one step per window (probing 16 with probeWindows 1), and above it plain additive
      // increase: one step per window of 17, not doubling.
      await endpoint.succeedSaturated(15);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 16 });
      await endpoint.succeedSaturated(16);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 17, ceiling: undefined, slowStarting: false });
      await endpoint.succeedSaturated(16);
      expect(endpoint.limit).toBe(17);
      await endpoint.succeedSaturated(1);
      expect(endpoint.limit).toBe(18);
      expect(endpoint.violations).toEqual([]);
    });

    it('ends when latency says the endpoint is queueing, even before latency may lower the limit', async () => {
      const endpoint = new FakeEndpoint({
        initialLimit: 4,
        maxLimit: 64,
        slowStart: true,
        latencyMinSamples: 1000,
      });
      await endpoint.start(100);
      await endpoint.succeedSaturated(4, 100);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 8, slowStarting: true });

      // EWMA(0.2) of ratio 5: 1.8, 2.44 (past the tolerance of 2): growth holds, slow start ends.
      await endpoint.succeedSaturated(2, 500);
      expect(endpoint.limiter.stats()).toMatchObject({ limit: 9, slowStarting: false, backoffs: 0 });
      // Back to normal latency: one step per window of 9, not one per success.
      await endpoint.succeedSaturated(30, 100);
      expect(endpoint.limiter.stats().latencyRatio).toBeLessThan(2);
      expect(endpoint.limit).toBe(11);
    });

    it('with the default options the limiter never takes the slow-start path (additive climb, unchanged)', async () => {
      const withDefaults = new FakeEndpoint({ initialLimit: 4, maxLimit: 64 });
      const explicitlyOff = new FakeEndpoint({ initialLimit: 4, maxLimit: 64, slowStart: false });
      const withSlowStart = new FakeEndpoint({ initialLimit: 4, maxLimit: 64, slowStart: true });
      const trajectory = async (endpoint: FakeEndpoint) => {
        await endpoint.start(100);
        const limits: number[] = [];
        for (let i = 0; i < 60; i += 1) {
          await endpoint.succeedSaturated(1);
          expect(endpoint.limiter.stats().slowStarting).toBe(endpoint === withSlowStart);
          limits.push(endpoint.limit);
        }
        return limits;
      };
      // Plain additive increase: one step per window of `limit` successes.
      const additive: number[] = [];
      for (let limit = 4, toward = 0; additive.length < 60; ) {
        toward += 1;
        if (toward === limit) {
          limit += 1;
          toward = 0;
        }
        additive.push(limit);
      }

      expect(await trajectory(withDefaults)).toEqual(additive);
      expect(await trajectory(explicitlyOff)).toEqual(additive);
      expect((await trajectory(withSlowStart)).at(-1)).toBe(64);
      expect(additive.at(-1)).toBe(12);
    });
  });

  it('rejects options that make no sense, naming them', () => {
    expect(() => new AdaptiveLimiter({ initialLimit: 10, maxLimit: 4 })).toThrow(ConfigError);
    expect(() => new AdaptiveLimiter({ initialLimit: 10, maxLimit: 4 })).toThrow(/initialLimit/);
    expect(() => new AdaptiveLimiter({ initialLimit: 1, maxLimit: 4, backoffRatio: 1 })).toThrow(
      /backoffRatio/,
    );
    expect(() => new AdaptiveLimiter({ initialLimit: 1, maxLimit: 4, latencyTolerance: 1 })).toThrow(
      /latencyTolerance/,
    );
    expect(() => new AdaptiveLimiter({ initialLimit: 0, maxLimit: 4 })).toThrow(/initialLimit/);
  });

  it('never has more calls in flight than the limit in force when each started, and settles every call', async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('start' as const), count: fc.integer({ min: 1, max: 6 }) }),
      fc.record({
        kind: fc.constant('finish' as const),
        pick: fc.nat(),
        outcome: fc.constantFrom<Outcome>('ok', 'ok', 'ok', 'throttle', 'fail'),
        latencyMs: fc.integer({ min: 0, max: 2000 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 10 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(step, { maxLength: 120 }),
        async (initialLimit, headroom, fastRecovery, slowStart, steps) => {
          const maxLimit = initialLimit + headroom;
          const endpoint = new FakeEndpoint({ initialLimit, maxLimit, fastRecovery, slowStart });
          const calls: Promise<string>[] = [];
          const limitInBounds = () => {
            const { limit } = endpoint.limiter.stats();
            return limit >= 1 && limit <= maxLimit;
          };
          for (const s of steps) {
            if (s.kind === 'start') calls.push(...(await endpoint.start(s.count)));
            else if (endpoint.pending.length > 0)
              await endpoint.finish(s.outcome, s.latencyMs, s.pick % endpoint.pending.length);
            if (!limitInBounds()) return false;
          }
          while (endpoint.pending.length > 0) await endpoint.finish('ok');
          const settled = await Promise.allSettled(calls);
          const stats = endpoint.limiter.stats();
          return (
            endpoint.violations.length === 0 &&
            settled.length === calls.length &&
            stats.inFlight === 0 &&
            stats.waiting === 0 &&
            stats.succeeded + stats.throttles + stats.otherFailures === calls.length
          );
        },
      ),
      { numRuns: 150 },
    );
  });
});
