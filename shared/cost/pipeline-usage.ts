import type { PipelineConfig } from '../config/pipeline-config.ts';
import type { UnitCounts } from '../domain/types.ts';
import { endpointHostingOf } from './endpoint-hosting.ts';
import type { RunUsage } from './run-cost.ts';
import { servingSweepUnits, servingWriteUnits } from './serving-writes.ts';
import { runUsageOf, type UnitUsageSource } from './unit-usage.ts';

/** A unit as finalize reads it: its deliveries, stored usage, counts and stage. */
export interface PricedUnit extends UnitUsageSource {
  readonly counts?: Pick<UnitCounts, 'records' | 'promptTokens' | 'completionTokens'> | null | undefined;
  readonly stage?: string | undefined;
}

/** The stage whose units write the per-user lists (one unit per user shard; its records are users). */
const RECOMMEND_LIST_STAGE = 'similarity';

/**
 * A run's usage as its pipeline's kind bills it: the units' metered usage with the
 * endpoint by where the model runs ({@link runUsageOf}), plus what the kind adds:
 * - `generate`: the prompt and completion tokens the endpoint reported (`usage`), so the
 *   cost has a per-1M-tokens figure;
 * - `recommend`: the serving table's write request units, one item per user written (the
 *   similarity stage's records), sized by {@link servingWriteUnits} with assumed id lengths,
 *   and the units' sweep of superseded lists ({@link servingSweepUnits}: a Query and, in
 *   steady state, one delete per user).
 */
export function runUsageOfPipeline(
  config: PipelineConfig | undefined,
  units: readonly PricedUnit[],
): RunUsage {
  const usage = runUsageOf(
    units.map((u) => ({ attempts: u.attempts, usage: u.usage })),
    endpointHostingOf(config),
  );
  if (config?.kind === 'generate') {
    let promptTokens = 0;
    let completionTokens = 0;
    for (const unit of units) {
      promptTokens += unit.counts?.promptTokens ?? 0;
      completionTokens += unit.counts?.completionTokens ?? 0;
    }
    return { ...usage, promptTokens, completionTokens };
  }
  if (config?.kind === 'recommend') {
    const users = units
      .filter((u) => u.stage === RECOMMEND_LIST_STAGE)
      .reduce((sum, u) => sum + (u.counts?.records ?? 0), 0);
    const shape = { pipeline: config.name, topN: config.output.topN };
    const servingWrites = servingWriteUnits(users, shape);
    const sweep = servingSweepUnits(users, shape);
    return {
      ...usage,
      dynamoWrites: usage.dynamoWrites + servingWrites + sweep.deletes,
      dynamoReads: usage.dynamoReads + sweep.reads,
      servingWrites,
      usersWritten: users,
    };
  }
  return usage;
}
