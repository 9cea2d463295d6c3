import { setTimeout as delay } from 'node:timers/promises';

/**
 * How a raise waits out a "busy" refusal of the work event source (Lambda
 * `ResourceInUseException` / `ResourceConflictException` while an earlier update of the
 * mapping is under way), instead of leaving the raise to the capacity sweeper a minute later.
 * Only busy refusals wait: an error (access denied, not found, a bad value) is reported at
 * once. docs/capacity.md, "A busy refusal is waited out".
 */
export interface BusyRetryPolicy {
  /**
   * Most time one raise spends from its first busy refusal to its last try, waits and calls
   * together, before it leaves the raise to the sweeper. 10 s: about 1% of plan's 15-minute
   * timeout, and a fifth of the sweeper's 50 s, which waits at most this long per pass.
   * @default 10_000
   */
  readonly budgetMs: number;
  /** The first wait's ceiling; it doubles with each wait up to `maxDelayMs`. @default 500 */
  readonly baseDelayMs: number;
  /** The longest single wait. @default 4_000 */
  readonly maxDelayMs: number;
  /** Waits `ms` milliseconds (tests record the waits instead). */
  readonly sleep: (ms: number) => Promise<void>;
  /** Epoch milliseconds now (tests advance it in `sleep`). */
  readonly now: () => number;
  /** A uniform draw from [0, 1) for the jitter. */
  readonly random: () => number;
}

/** The deployed policy: 10 s in all, waits of 0.25-0.5 s, 0.5-1 s, 1-2 s, then 2-4 s. */
export const DEFAULT_BUSY_RETRY: BusyRetryPolicy = {
  budgetMs: 10_000,
  baseDelayMs: 500,
  maxDelayMs: 4_000,
  sleep: (ms) => delay(ms),
  now: () => Date.now(),
  random: () => Math.random(),
};

/**
 * The waits of one raise (plan's, or one sweeper pass's set and its check): each busy
 * refusal asks {@link BusyWaits.wait}, which sleeps and answers true while the budget allows
 * another try, or false once it is spent (the caller then defers to the sweeper).
 *
 * Waits grow exponentially with "equal jitter" (half the step fixed, half drawn at random):
 * writers refused by the same update spread out rather than retry together, and a wait is
 * never near zero, so the budget is spent on a few spaced tries, not on many calls.
 */
export class BusyWaits {
  private startedAt: number | undefined;
  private count = 0;

  constructor(private readonly policy: BusyRetryPolicy = DEFAULT_BUSY_RETRY) {}

  /** Waits before the next try; false (without waiting) when that try would end past the budget. */
  async wait(): Promise<boolean> {
    const { budgetMs, baseDelayMs, maxDelayMs, sleep, now, random } = this.policy;
    this.startedAt ??= now();
    const step = Math.min(maxDelayMs, baseDelayMs * 2 ** this.count);
    const ms = step / 2 + (random() * step) / 2;
    if (now() - this.startedAt + ms > budgetMs) return false;
    this.count += 1;
    await sleep(ms);
    return true;
  }

  /** Busy refusals waited out so far. */
  get waits(): number {
    return this.count;
  }

  /** Milliseconds from the first busy refusal to now (0 before any). */
  elapsedMs(): number {
    return this.startedAt === undefined ? 0 : this.policy.now() - this.startedAt;
  }
}
