import type { CapacityConfig, PipelineConfig } from '../config/pipeline-config.ts';
import type { WorkUnit } from '../domain/types.ts';
import { MAX_SEND_DELAY_SECONDS } from '../ports/work-queue.ts';

/**
 * How a unit waits for a cold endpoint (issue 14): sent back to the queue with a delay
 * that starts at `firstDelaySeconds` and doubles up to `maxDelaySeconds`, until capacity
 * serves it or `limitSeconds` have passed since it first met no capacity.
 */
export interface WarmingPolicy {
  /** @default 30 */
  readonly firstDelaySeconds: number;
  /** @default 900, the most SQS delays a message */
  readonly maxDelaySeconds: number;
  /** @default the pipeline's `capacity.warmupLimitSeconds` */
  readonly limitSeconds: number;
}

export const DEFAULT_FIRST_WARMING_DELAY_SECONDS = 30;

/**
 * The longest wait of a unit whose run raises its copies on demand (docs/capacity.md,
 * "Copies on demand"): its copies come up at the capacity sweeper's next pass (up to a minute
 * after the first unit asked) plus the cold start, so the waits' doubling (tries 30, 90,
 * 210, 450, 930 s after the first) would find a copy up at 421-480 s only at 930 s, the
 * copy billing idle meanwhile. Capped at 120 s, the tries after 210 s are 2 minutes apart.
 */
export const ON_DEMAND_MAX_WARMING_DELAY_SECONDS = 120;

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
    firstDelaySeconds: DEFAULT_FIRST_WARMING_DELAY_SECONDS,
    maxDelaySeconds: MAX_SEND_DELAY_SECONDS,
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
