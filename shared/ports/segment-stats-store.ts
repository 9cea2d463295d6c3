import type { BetaPrior } from '../scoring/aggregates/beta-prior.ts';
import type { SegmentStats } from '../scoring/aggregates/segment-aggregates.ts';

/**
 * Per-run, per-segment statistics where dashboards read them by key (DynamoDB deployed,
 * a JSON file locally), beside the `segment_stats` Parquet table that Athena reads.
 */
export interface SegmentStatsStore {
  /** Writes (or rewrites, on a retried finalize) every segment of a run. */
  recordSegments(
    pipeline: string,
    runId: string,
    prior: BetaPrior,
    segments: readonly SegmentStats[],
  ): Promise<void>;
  /** The segments of a run, in key order. */
  listSegments(runId: string): Promise<SegmentStats[]>;
}
