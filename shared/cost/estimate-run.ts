import type { PipelineConfig } from '../config/pipeline-config.ts';
import { unitCount } from '../plan/plan-units.ts';
import type { RunUsage } from './run-cost.ts';
import { runUsageOf, type UnitUsage } from './unit-usage.ts';

/**
 * Endpoint throughput a cost estimate assumes when none is given. Neither is a measured
 * GPU or SageMaker figure (none is available to this project yet): replace them with
 * `--tokens-per-second` / `--rows-per-second` from a run of your own.
 */
export const THROUGHPUT_ASSUMPTIONS = {
  /** Padded tokens/s of one embedding instance: the simulated GPU of docs/sizing.md. */
  tokensPerSecond: 336_785,
  /** Rows/s of one scoring instance: the XGBoost JSON evaluator, one thread (docs/scoring.md). */
  rowsPerSecond: 190_000,
} as const;

/** Per-token prices users compare a run with (issue 14). */
export const PER_TOKEN_ANCHORS = [
  { name: 'OpenAI batch API, text-embedding-3-small', usdPerMillionTokens: 0.01 },
] as const;

export interface RunEstimateInput {
  readonly config: PipelineConfig;
  /** The planner's estimate of the run's work: tokens (embed) or rows x features (score). */
  readonly estimatedCost: number;
  /** Throughput of one endpoint instance. @default THROUGHPUT_ASSUMPTIONS */
  readonly tokensPerSecond?: number;
  readonly rowsPerSecond?: number;
}

/** What the estimate assumed, printed beside it. */
export interface RunEstimate {
  readonly usage: RunUsage;
  readonly units: number;
  /** Tokens (embed) or rows (score) the estimate priced. */
  readonly work: { readonly amount: number; readonly unit: 'tokens' | 'rows' };
  readonly throughputPerSecond: number;
}

/**
 * The usage a run would have, from the planner's estimate: the endpoint busy for the
 * work at the given throughput (one instance, no warm-up), the run's units spread over
 * `workers.maxConcurrency` workers that each live as long as the endpoint is busy (they
 * wait on it), and per unit the requests a unit makes (one range read, its parts, the id
 * list, the run store's start and completion). Output bytes: 4 per dimension per chunk
 * (embed) or 64 per row (score).
 */
export function estimateRunUsage(input: RunEstimateInput): RunEstimate {
  const { config, estimatedCost } = input;
  const instanceType = config.kind === 'embed' ? config.endpoint.instanceType : config.model.instanceType;
  const rows = config.kind === 'score' ? estimatedCost / Math.max(1, config.featureSpec.features.length) : 0;
  const throughput =
    config.kind === 'embed'
      ? (input.tokensPerSecond ?? THROUGHPUT_ASSUMPTIONS.tokensPerSecond)
      : (input.rowsPerSecond ?? THROUGHPUT_ASSUMPTIONS.rowsPerSecond);
  const work = config.kind === 'embed' ? estimatedCost : rows;
  const endpointMs = (work / throughput) * 1000;
  const { units } = unitCount(estimatedCost, config);
  const workers = Math.min(units, config.workers.maxConcurrency);
  const bytes =
    config.kind === 'embed'
      ? Math.ceil(estimatedCost / config.chunking.maxTokens) * config.endpoint.dimension * 4
      : rows * 64;
  // The endpoint window is shared by the units; each worker's time is spread over its units.
  const perUnit = (total: number) => total / units;
  const unitUsage: UnitUsage = {
    workerMs: perUnit(endpointMs * workers),
    memoryMiB: config.workers.memoryMiB,
    endpointFirstAt: 0,
    endpointLastAt: 0,
    endpointCallMs: perUnit(endpointMs),
    s3Gets: 1,
    s3Puts: 3,
    bytesPut: perUnit(bytes),
    queueSends: 0,
    runStoreReads: 0,
    runStoreWrites: 2,
  };
  const usage = runUsageOf(
    Array.from({ length: units }, () => ({ attempts: 1, usage: unitUsage })),
    instanceType,
  );
  return {
    usage: { ...usage, endpointSeconds: endpointMs / 1000 },
    units,
    work:
      config.kind === 'embed' ? { amount: estimatedCost, unit: 'tokens' } : { amount: rows, unit: 'rows' },
    throughputPerSecond: throughput,
  };
}
