import { setTimeout as delay } from 'node:timers/promises';
import { EstimatingTokenCounter, type TokenCounter } from '../../shared/embedding/token-counter.ts';

export interface SimulatedGpuOptions {
  /** Batches computed at once (an accelerator's concurrent batches). @default unlimited */
  readonly capacity?: number;
  /** Batches allowed to wait for a free slot beyond `capacity`; more are throttled. @default 0 */
  readonly queue?: number;
  /** Time of any batch, in ms. @default 0 */
  readonly latencyMsFixed?: number;
  /** Time per padded token (longest input x inputs), in ms. @default 0 */
  readonly latencyMsPerToken?: number;
  /** Estimates each input's tokens, as the client's batcher does. @default EstimatingTokenCounter */
  readonly tokenCounter?: TokenCounter;
  /** Waits out a batch's remaining compute time; tests hold batches open with their own. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** A batch holding a slot; `finish` frees it once the simulated compute time has passed. */
export interface GpuSlot {
  readonly paddedTokens: number;
  /** Waits until the batch's compute time (counted from admission to a slot) has passed, then frees the slot. */
  finish(): Promise<void>;
}

export interface SimulatedGpuStats {
  readonly capacity: number | null;
  readonly queue: number;
  readonly latencyMsFixed: number;
  readonly latencyMsPerToken: number;
  /** Batches admitted (computed or computing). */
  readonly admitted: number;
  /** Batches refused because every slot and queue place was taken. */
  readonly throttled: number;
  readonly running: number;
  readonly waiting: number;
  readonly peakRunning: number;
  readonly peakWaiting: number;
  /** Sum over slots of the time each was held, in ms: busyMs / capacity / elapsed = utilisation. */
  readonly busyMs: number;
  /** Sum of the time admitted batches waited in the queue for a slot, in ms. */
  readonly queuedMs: number;
  readonly paddedTokens: number;
  readonly realTokens: number;
}

/**
 * A GPU as a benchmark sees it: `capacity` batches run at once, each taking
 * `latencyMsFixed + latencyMsPerToken x padded tokens`; up to `queue` more wait for a slot
 * and anything beyond is refused at once, as SageMaker does when an endpoint is over its
 * capacity. It sleeps instead of computing, so many simulated GPUs fit on one laptop.
 */
export class SimulatedGpu {
  private readonly capacity: number;
  private readonly queue: number;
  private readonly latencyMsFixed: number;
  private readonly latencyMsPerToken: number;
  private readonly tokenCounter: TokenCounter;
  private readonly sleep: (ms: number) => Promise<void>;
  private running = 0;
  private readonly waiters: (() => void)[] = [];
  private counters = {
    admitted: 0,
    throttled: 0,
    peakRunning: 0,
    peakWaiting: 0,
    busyMs: 0,
    queuedMs: 0,
    paddedTokens: 0,
    realTokens: 0,
  };

  constructor(options: SimulatedGpuOptions = {}) {
    this.capacity = options.capacity ?? Number.POSITIVE_INFINITY;
    this.queue = options.queue ?? 0;
    this.latencyMsFixed = options.latencyMsFixed ?? 0;
    this.latencyMsPerToken = options.latencyMsPerToken ?? 0;
    this.tokenCounter = options.tokenCounter ?? new EstimatingTokenCounter();
    this.sleep = options.sleep ?? ((ms) => delay(ms));
    if (
      !(this.capacity >= 1) ||
      !(Number.isInteger(this.capacity) || this.capacity === Number.POSITIVE_INFINITY)
    )
      throw new RangeError(`simulated GPU: capacity must be a positive integer, got ${this.capacity}`);
    if (!Number.isInteger(this.queue) || this.queue < 0)
      throw new RangeError(`simulated GPU: queue must be an integer of 0 or more, got ${this.queue}`);
    if (!(this.latencyMsFixed >= 0) || !(this.latencyMsPerToken >= 0))
      throw new RangeError('simulated GPU: latencies must be 0 or more');
  }

  /** The batch's cost as the latency model sees it: longest input's estimated tokens x inputs. */
  paddedTokensOf(inputs: readonly string[]): { padded: number; real: number } {
    let longest = 0;
    let real = 0;
    for (const text of inputs) {
      const tokens = this.tokenCounter.count(text);
      real += tokens;
      longest = Math.max(longest, tokens);
    }
    return { padded: longest * inputs.length, real };
  }

  latencyMsOf(paddedTokens: number): number {
    return this.latencyMsFixed + this.latencyMsPerToken * paddedTokens;
  }

  /**
   * Takes a slot for the batch (waiting in the queue if there is room), or returns
   * undefined at once when the GPU is full: the caller answers with a throttle.
   */
  admit(inputs: readonly string[]): Promise<GpuSlot> | undefined {
    const hasSlot = this.running < this.capacity && this.waiters.length === 0;
    if (!hasSlot && this.waiters.length >= this.queue) {
      this.counters.throttled += 1;
      return undefined;
    }
    const { padded, real } = this.paddedTokensOf(inputs);
    this.counters.admitted += 1;
    const slot = (): GpuSlot => {
      this.running += 1;
      this.counters.peakRunning = Math.max(this.counters.peakRunning, this.running);
      const started = performance.now();
      return {
        paddedTokens: padded,
        finish: async () => {
          const remaining = this.latencyMsOf(padded) - (performance.now() - started);
          if (remaining > 0) await this.sleep(remaining);
          this.running -= 1;
          this.counters.busyMs += performance.now() - started;
          this.counters.paddedTokens += padded;
          this.counters.realTokens += real;
          this.waiters.shift()?.();
        },
      };
    };
    if (hasSlot) return Promise.resolve(slot());
    this.counters.peakWaiting = Math.max(this.counters.peakWaiting, this.waiters.length + 1);
    const queuedAt = performance.now();
    return new Promise<GpuSlot>((resolve) =>
      this.waiters.push(() => {
        this.counters.queuedMs += performance.now() - queuedAt;
        resolve(slot());
      }),
    );
  }

  stats(): SimulatedGpuStats {
    return {
      capacity: Number.isFinite(this.capacity) ? this.capacity : null,
      queue: this.queue,
      latencyMsFixed: this.latencyMsFixed,
      latencyMsPerToken: this.latencyMsPerToken,
      running: this.running,
      waiting: this.waiters.length,
      ...this.counters,
    };
  }
}
