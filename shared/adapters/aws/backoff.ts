import { setTimeout as delay } from 'node:timers/promises';

/** Waits `ms` milliseconds; injected into adapters so tests can record delays instead of waiting. */
export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => delay(ms);

/**
 * Exponential backoff with full jitter: a uniform draw from `[0, min(maxDelayMs, baseDelayMs * 2^retry))`.
 * Full jitter spreads retries of many concurrent callers instead of synchronising them
 * (AWS Architecture Blog, "Exponential Backoff And Jitter").
 *
 * @param retry 0 for the first retry.
 */
export function fullJitterDelay(
  retry: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number,
): number {
  return random() * Math.min(maxDelayMs, baseDelayMs * 2 ** retry);
}
