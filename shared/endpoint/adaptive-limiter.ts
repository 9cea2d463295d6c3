import { ConfigError } from '../errors/errors.ts';

/** What the limiter needs to know about one call, besides how long it took. */
export interface LimiterRunOptions {
  /**
   * Relative size of the call (the endpoint client passes padded characters). Latency is
   * only compared between calls of similar cost, so a big batch is not mistaken for a
   * queueing endpoint. @default 1
   */
  readonly cost?: number;
  /**
   * Whether a failure of the call means the endpoint is overloaded (throttling, an
   * attempt timeout): the limit backs off. Any other failure leaves it as it is.
   * @default () => false
   */
  readonly isOverload?: (error: unknown) => boolean;
}

/** Runs calls to one endpoint with a bounded number in flight. */
export interface ConcurrencyLimiter {
  /** Waits for a slot (first come, first served), runs `fn`, frees the slot; `fn`'s result or error passes through. */
  run<T>(fn: () => Promise<T>, options?: LimiterRunOptions): Promise<T>;
}

export interface AdaptiveLimiterOptions {
  /** Calls allowed in flight before any signal has been seen. */
  readonly initialLimit: number;
  /** The limit never grows past this (the configured per-worker concurrency). */
  readonly maxLimit: number;
  /** @default 1 */
  readonly minLimit?: number;
  /** Factor applied to the limit on a throttle or timeout. @default 0.5 */
  readonly backoffRatio?: number;
  /** Smoothed latency over the no-load latency of calls of the same cost that counts as queueing. @default 2 */
  readonly latencyTolerance?: number;
  /** Factor applied to the limit when latency says the endpoint is queueing: a softer signal than a throttle. @default 0.75 */
  readonly latencyBackoffRatio?: number;
  /** Weight of the newest sample in the smoothed latency ratio (EWMA). @default 0.2 */
  readonly latencySmoothing?: number;
  /**
   * Samples since the last decrease before latency may lower the limit; until then a high
   * latency only stops the limit from growing. @default 5
   */
  readonly latencyMinSamples?: number;
  /**
   * No-load latencies are forgotten after this many samples, so a lasting change of the
   * endpoint (another instance type, a bigger model) becomes the new normal. @default 2000
   */
  readonly latencyBaselineSamples?: number;
  /**
   * After a backoff, climb back one step per success to just under the limit that was
   * overloaded, then probe that level slowly (`probeWindows`). Off: plain additive increase
   * (one step per window of `limit` successes) everywhere. @default true
   */
  readonly fastRecovery?: boolean;
  /**
   * Windows of successes needed for one step at the level that last overloaded; doubles
   * each time that level overloads again (up to `maxProbeWindows`). @default 4
   */
  readonly probeWindows?: number;
  /** @default 64 */
  readonly maxProbeWindows?: number;
  /**
   * Start with a slow-start phase (TCP's): one step per successful call while the limit is
   * in use, so the limit doubles per window of `limit` successes, until the first overload
   * signal (a throttle, a timeout, or latency past `latencyTolerance`); from then on, the
   * additive increase above. For endpoints whose capacity is far above the initial limit
   * and that throttle cleanly past it (an LLM server with many KV cache slots). Off: the
   * limit climbs additively from the start. @default false
   */
  readonly slowStart?: boolean;
  /** Milliseconds from any origin. @default performance.now */
  readonly now?: () => number;
}

/** What the limiter has seen, for logs, metrics and benchmarks. */
export interface AdaptiveLimiterStats {
  /** Calls allowed in flight now. */
  readonly limit: number;
  /** Highest and lowest limit so far. */
  readonly peakLimit: number;
  readonly lowestLimit: number;
  readonly inFlight: number;
  readonly waiting: number;
  /** Calls that finished, by outcome. */
  readonly succeeded: number;
  /** Calls that failed with an overload signal (throttling, timeout). */
  readonly throttles: number;
  readonly otherFailures: number;
  /** Times the limit went down, and how many of those were for latency. */
  readonly backoffs: number;
  readonly latencyBackoffs: number;
  /** Times the limit went up. */
  readonly increases: number;
  /** The limit that last overloaded the endpoint (undefined before any, or once the limit has grown past it). */
  readonly ceiling: number | undefined;
  /** Smoothed latency / no-load latency since the last backoff (1 = no queueing). */
  readonly latencyRatio: number | undefined;
  /** Still in the slow-start phase (always false without the `slowStart` option). */
  readonly slowStarting: boolean;
}

/** Latencies under this many ms count as this much: below it differences are timer noise. */
const LATENCY_FLOOR_MS = 1;

/**
 * AIMD concurrency limit for the calls of one worker to one endpoint, shared by all its
 * batches (the congestion control of TCP, applied to requests in flight).
 *
 * - **Slow start** (opt-in, `slowStart`): until the first overload signal, one more call
 *   in flight per successful call while the limit is really used, so the limit doubles per
 *   window; the first throttle, timeout or high latency ends it for good.
 * - **Additive increase**: one more call in flight per window of `limit` successful calls,
 *   counted only while the limit is really used (at least half of it in flight), up to
 *   `maxLimit`.
 * - **Multiplicative decrease**: x`backoffRatio` (0.5) on a throttle or timeout, and
 *   x`latencyBackoffRatio` (0.75) when the smoothed latency of recent calls rises past
 *   `latencyTolerance` (2) times the lowest latency seen for calls of the same cost: the
 *   endpoint is queueing, a throttle is near (Vegas / gradient style).
 * - **One decrease per signal**: a decrease opens a new epoch; calls that began before it
 *   were sent at the old limit, so their throttles and latencies do not lower it again.
 * - **Fast recovery** (BIC style): an endpoint that throttles beyond its capacity without
 *   queueing (SageMaker's own throttling, a container with no queue) would make plain AIMD
 *   saw-tooth between half and all of its capacity, using about 3/4 of it. So the limit
 *   that overloaded is remembered: after a decrease the limit climbs back one step per
 *   successful call (of any epoch) to just under it, then probes it slowly, and more
 *   slowly each time the same level overloads again. If another worker's load lowers the
 *   capacity, the next throttle happens lower and moves the remembered level down.
 */
export class AdaptiveLimiter implements ConcurrencyLimiter {
  private readonly maxLimit: number;
  private readonly minLimit: number;
  private readonly backoffRatio: number;
  private readonly latencyTolerance: number;
  private readonly latencyBackoffRatio: number;
  private readonly latencySmoothing: number;
  private readonly latencyMinSamples: number;
  private readonly latencyBaselineSamples: number;
  private readonly fastRecovery: boolean;
  private readonly initialProbeWindows: number;
  private readonly maxProbeWindows: number;
  private readonly now: () => number;

  private limit: number;
  private inFlight = 0;
  private readonly waiters: (() => void)[] = [];
  private epoch = 0;
  private successesTowardStep = 0;
  private ceiling: number | undefined;
  private probeWindows: number;
  private slowStarting: boolean;
  private latencyRatio: number | undefined;
  private epochSamples = 0;
  private readonly noLoadLatency = new Map<number, number>();
  private baselineAge = 0;
  private counters = {
    peakLimit: 0,
    lowestLimit: 0,
    succeeded: 0,
    throttles: 0,
    otherFailures: 0,
    backoffs: 0,
    latencyBackoffs: 0,
    increases: 0,
  };

  constructor(options: AdaptiveLimiterOptions) {
    this.minLimit = options.minLimit ?? 1;
    this.maxLimit = options.maxLimit;
    requireInteger('minLimit', this.minLimit, 1, Number.MAX_SAFE_INTEGER);
    requireInteger('maxLimit', this.maxLimit, this.minLimit, Number.MAX_SAFE_INTEGER);
    requireInteger('initialLimit', options.initialLimit, this.minLimit, this.maxLimit);
    this.backoffRatio = requireRatio('backoffRatio', options.backoffRatio ?? 0.5);
    this.latencyBackoffRatio = requireRatio('latencyBackoffRatio', options.latencyBackoffRatio ?? 0.75);
    this.latencySmoothing = requireRatio('latencySmoothing', options.latencySmoothing ?? 0.2, true);
    this.latencyTolerance = options.latencyTolerance ?? 2;
    if (!(this.latencyTolerance > 1))
      throw new ConfigError(
        `adaptive limiter: latencyTolerance must be above 1, got ${this.latencyTolerance}`,
      );
    this.latencyMinSamples = options.latencyMinSamples ?? 5;
    this.latencyBaselineSamples = options.latencyBaselineSamples ?? 2000;
    this.fastRecovery = options.fastRecovery ?? true;
    this.initialProbeWindows = options.probeWindows ?? 4;
    this.maxProbeWindows = options.maxProbeWindows ?? 64;
    requireInteger('probeWindows', this.initialProbeWindows, 1, Number.MAX_SAFE_INTEGER);
    requireInteger(
      'maxProbeWindows',
      this.maxProbeWindows,
      this.initialProbeWindows,
      Number.MAX_SAFE_INTEGER,
    );
    this.now = options.now ?? (() => performance.now());
    this.limit = options.initialLimit;
    this.probeWindows = this.initialProbeWindows;
    this.slowStarting = options.slowStart ?? false;
    this.counters.peakLimit = this.limit;
    this.counters.lowestLimit = this.limit;
  }

  async run<T>(fn: () => Promise<T>, options: LimiterRunOptions = {}): Promise<T> {
    await this.acquire();
    const epoch = this.epoch;
    // Successes only argue for a higher limit when the current one is really used.
    const busy = this.inFlight * 2 >= this.limit;
    const started = this.now();
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      if (options.isOverload?.(error) === true) this.onOverload(epoch);
      else this.counters.otherFailures += 1;
      this.release();
      throw error;
    }
    this.onSuccess(epoch, this.now() - started, options.cost ?? 1, busy);
    this.release();
    return result;
  }

  stats(): AdaptiveLimiterStats {
    return {
      limit: this.limit,
      inFlight: this.inFlight,
      waiting: this.waiters.length,
      ceiling: this.ceiling,
      latencyRatio: this.latencyRatio,
      slowStarting: this.slowStarting,
      ...this.counters,
    };
  }

  private acquire(): Promise<void> {
    if (this.waiters.length === 0 && this.inFlight < this.limit) {
      this.inFlight += 1;
      return Promise.resolve();
    }
    // The slot is handed over by `admit`, which counts it before waking the waiter.
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    this.inFlight -= 1;
    this.admit();
  }

  private admit(): void {
    while (this.waiters.length > 0 && this.inFlight < this.limit) {
      this.inFlight += 1;
      this.waiters.shift()!();
    }
  }

  private onOverload(epoch: number): void {
    this.counters.throttles += 1;
    // Calls sent before the last decrease say nothing about the limit that is in force now.
    if (epoch === this.epoch) this.decrease(this.backoffRatio);
  }

  private onSuccess(epoch: number, latencyMs: number, cost: number, busy: boolean): void {
    this.counters.succeeded += 1;
    if (epoch === this.epoch) {
      if (this.observeLatency(latencyMs, cost) > this.latencyTolerance) {
        // The endpoint is queueing: the limit is near its capacity, stop doubling it.
        this.slowStarting = false;
        // Queueing: back off once the signal rests on enough samples; until then, only hold.
        if (this.epochSamples < this.latencyMinSamples) return;
        this.counters.latencyBackoffs += 1;
        this.decrease(this.latencyBackoffRatio);
        return;
      }
    } else if (!this.recovering()) {
      // Sent at an older, higher limit: it says nothing about the limit in force now,
      // except that the endpoint still answers, which is all fast recovery needs.
      return;
    }
    if (!busy || this.limit >= this.maxLimit) return;
    this.successesTowardStep += 1;
    if (this.successesTowardStep < this.successesPerStep()) return;
    this.successesTowardStep = 0;
    this.limit += 1;
    this.counters.increases += 1;
    this.counters.peakLimit = Math.max(this.counters.peakLimit, this.limit);
    if (this.ceiling !== undefined && this.limit > this.ceiling) {
      // Grown past the level that overloaded: the capacity is higher now.
      this.ceiling = undefined;
      this.probeWindows = this.initialProbeWindows;
    }
    this.admit();
  }

  /** Folds one latency into the smoothed ratio of latency to no-load latency, and returns it. */
  private observeLatency(latencyMs: number, cost: number): number {
    if (this.baselineAge >= this.latencyBaselineSamples) {
      this.noLoadLatency.clear();
      this.baselineAge = 0;
    }
    this.baselineAge += 1;
    // Buckets of cost a factor sqrt(2) wide: within one, no-load latencies differ by less than that.
    const bucket = Math.round(Math.log2(Math.max(cost, Number.MIN_VALUE)) * 2);
    const latency = Math.max(latencyMs, LATENCY_FLOOR_MS);
    const noLoad = Math.min(this.noLoadLatency.get(bucket) ?? latency, latency);
    this.noLoadLatency.set(bucket, noLoad);
    const ratio = latency / noLoad;
    this.latencyRatio =
      this.latencyRatio === undefined
        ? ratio
        : this.latencySmoothing * ratio + (1 - this.latencySmoothing) * this.latencyRatio;
    this.epochSamples += 1;
    return this.latencyRatio;
  }

  /** Below the level that last overloaded, climbing back one step per success. */
  private recovering(): boolean {
    return this.fastRecovery && this.ceiling !== undefined && this.limit + 1 < this.ceiling;
  }

  private successesPerStep(): number {
    if (this.slowStarting || this.recovering()) return 1;
    if (!this.fastRecovery || this.ceiling === undefined) return this.limit;
    return this.limit * this.probeWindows;
  }

  private decrease(ratio: number): void {
    const before = this.limit;
    this.slowStarting = false;
    if (this.ceiling !== undefined && before >= this.ceiling)
      this.probeWindows = Math.min(this.maxProbeWindows, this.probeWindows * 2);
    this.ceiling = before;
    this.limit = Math.max(this.minLimit, Math.min(before - 1, Math.floor(before * ratio)));
    this.counters.backoffs += 1;
    this.counters.lowestLimit = Math.min(this.counters.lowestLimit, this.limit);
    this.epoch += 1;
    this.successesTowardStep = 0;
    this.latencyRatio = undefined;
    this.epochSamples = 0;
  }
}

function requireInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(`adaptive limiter: ${name} must be an integer from ${min} to ${max}, got ${value}`);
}

function requireRatio(name: string, value: number, inclusive = false): number {
  if (!(value > 0 && (value < 1 || (inclusive && value === 1))))
    throw new ConfigError(`adaptive limiter: ${name} must be between 0 and 1, got ${value}`);
  return value;
}
