import type { CapacityConfig, PipelineConfig } from '../config/pipeline-config.ts';
import type { WorkUnit } from '../domain/types.ts';
import { MAX_SEND_DELAY_SECONDS } from '../ports/work-queue.ts';

/**
 * How a unit waits for a cold endpoint (issue 14): sent back to the queue with a delay
 * that starts at `firstDelaySeconds` and doubles up to `maxDelaySeconds`, until capacity
 * serves it or `limitSeconds` have passed since it first met no capacity.
 */
export interface WarmingPolicy {
  /** @default {@link WARMING_POLL_SECONDS} */
  readonly firstDelaySeconds: number;
  /** @default {@link WARMING_POLL_SECONDS} */
  readonly maxDelaySeconds: number;
  /** @default the pipeline's `capacity.warmupLimitSeconds` */
  readonly limitSeconds: number;
}

/**
 * The wait between a unit's tries while its endpoint has no copy serving. A copy bills from
 * its start, so every second between it serving and the next try is paid for idle: with
 * tries 20 s apart a copy is found within 20 s (10 s on average). The waits used to double
 * from 30 s to 900 s (tries 30, 90, 210, 450 s after the first), which found a copy
 * serving at 216 s (AWS's published ml.g5.xlarge start) only at 450 s, 234 s of an idle GPU
 * ($0.09 on an ml.g5.xlarge); on-demand runs capped them at 120 s (found at 330 s).
 *
 * A try is not free either: an embed unit's first window is read, chunked and looked up in
 * the chunk index again before its call (about $0.00014, mostly the lookup's read units,
 * against $0.0004 a second of the idle copy), and the workers that try are few (they follow
 * the copies: 2 on one copy). 20 s is about where polling and idling cost the least
 * together (`npm run bench -- simulated-day`, `pollSensitivity`: the nightly run's GPU bills
 * 1.74x its busy time, 1.81x with tries 30 s apart, 1.91x at the 120 s cap, 2.32x with the
 * doubling to 900 s).
 */
export const WARMING_POLL_SECONDS = 20;

/** The capacity settings of the endpoint a pipeline calls. */
function capacityOf(config: PipelineConfig): CapacityConfig | undefined {
  if (config.kind === 'embed' || config.kind === 'generate') return config.endpoint.capacity;
  return config.kind === 'score' ? config.model.capacity : undefined;
}

/** `capacity.warmupLimitSeconds`' default, for a kind that calls no endpoint. */
const DEFAULT_WARMUP_LIMIT_SECONDS = 1800;

/**
 * The pipeline's policy, with any field overridden (tests and local runs shorten the
 * waits; the config's minimum warm-up limit of 60 s stays what users can set).
 */
export function warmingPolicyOf(
  config: PipelineConfig,
  overrides: Partial<WarmingPolicy> = {},
): WarmingPolicy {
  return {
    firstDelaySeconds: WARMING_POLL_SECONDS,
    maxDelaySeconds: WARMING_POLL_SECONDS,
    limitSeconds: capacityOf(config)?.warmupLimitSeconds ?? DEFAULT_WARMUP_LIMIT_SECONDS,
    ...overrides,
  };
}

/** What to do with a unit whose delivery met no capacity. */
export type WarmingStep =
  /** Send `unit` (the same unit, carrying when it began waiting) again after `delaySeconds`. */
  | { readonly kind: 'wait'; readonly unit: WorkUnit; readonly delaySeconds: number }
  /** Waited past the limit: the unit fails for good with `reason`. */
  | { readonly kind: 'give-up'; readonly reason: string };

/**
 * The next step for a unit that met a cold endpoint at `now` (epoch ms). The unit carries
 * `warmingSince` (when its first delivery met no capacity) and `warmingDeferrals` (how often
 * it was sent back) in its message, so the wait survives any number of deliveries and the
 * delays double without state anywhere else. A delay never reaches much past the limit: the
 * last wait ends just after it, for one more try.
 */
export function nextWarmingStep(
  unit: WorkUnit,
  endpointName: string,
  now: number,
  policy: WarmingPolicy,
): WarmingStep {
  const since = unit.warmingSince ?? now;
  const waitedSeconds = (now - since) / 1000;
  if (waitedSeconds > policy.limitSeconds) {
    return {
      kind: 'give-up',
      reason: `endpoint ${endpointName} had no capacity for ${policy.limitSeconds} s (capacity.warmupLimitSeconds); check the capacity sweeper and the endpoint's events`,
    };
  }
  const deferrals = unit.warmingDeferrals ?? 0;
  const backoff = Math.min(policy.maxDelaySeconds, policy.firstDelaySeconds * 2 ** deferrals);
  const untilLimit = Math.ceil(policy.limitSeconds - waitedSeconds) + 1;
  const delaySeconds = Math.max(1, Math.min(backoff, untilLimit, MAX_SEND_DELAY_SECONDS));
  return {
    kind: 'wait',
    unit: { ...unit, warmingSince: since, warmingDeferrals: deferrals + 1 },
    delaySeconds,
  };
}

/** The unit without its waiting state: what a continuation or a fresh delivery starts from. */
export function withoutWarming(unit: WorkUnit): WorkUnit {
  const { warmingSince: _since, warmingDeferrals: _deferrals, ...rest } = unit;
  return rest;
}
