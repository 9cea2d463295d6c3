import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import type { RejectRow, ScoreRow, UnitCounts } from '../../domain/types.ts';
import { EndpointUnavailable, ModelError } from '../../errors/errors.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import {
  positiveOf,
  type SegmentAggregator,
  segmentValuesOf,
} from '../../scoring/aggregates/segment-aggregates.ts';
import { formatCsvRows } from '../../scoring/xgboost/csv-contract.ts';

/** The steps of scoring one flush of a unit's rows, each on its own (see `scoreUnit`). */

export interface PendingRow {
  readonly id: string;
  readonly values: Readonly<Record<string, unknown>>;
  readonly metadata: Record<string, string | null>;
  readonly sourceKey: string;
  readonly line: number;
  readonly byteOffset: number;
  /** `output.passThrough` values, typed (absent when the pipeline passes none through). */
  readonly passThrough?: Readonly<Record<string, unknown>>;
}

/** One request's rows, their features, and the position of its first row in the flush. */
export interface ScoreRequest {
  readonly rows: PendingRow[];
  readonly features: Float64Array;
  readonly first: number;
}

export type PositiveOptions = { outcomeColumn?: string; threshold?: number };

/** How a row counts as positive in segment aggregates: an outcome column, a threshold, or neither. */
export function positiveOptionsOf(positive: ScorePipelineConfig['segments']['positive']): PositiveOptions {
  if (positive === undefined) return {};
  return 'column' in positive ? { outcomeColumn: positive.column } : { threshold: positive.threshold };
}

/** The reject row for a row that could not be scored. */
export function rejectOfRow(row: PendingRow, reason: string): RejectRow {
  return {
    source_key: row.sourceKey,
    byte_offset: row.byteOffset,
    line: row.line,
    reason,
    excerpt: JSON.stringify(row.values).slice(0, 200),
  };
}

/** Cuts a flush's accepted rows and their features into requests of at most `maxRows` rows. */
export function requestsOf(
  accepted: readonly PendingRow[],
  data: Float64Array,
  width: number,
  maxRows: number,
): ScoreRequest[] {
  const requests: ScoreRequest[] = [];
  for (let start = 0; start < accepted.length; start += maxRows) {
    const end = Math.min(accepted.length, start + maxRows);
    requests.push({
      rows: accepted.slice(start, end),
      features: data.subarray(start * width, end * width),
      first: start,
    });
  }
  return requests;
}

/** A row's score: its only output, or the output of `scoreClass`. */
export function scoreOf(outputs: readonly number[], scoreClass: number): number {
  const score = outputs.length === 1 ? outputs[0]! : outputs[scoreClass];
  if (score === undefined)
    throw new EndpointUnavailable(
      `endpoint returned ${outputs.length} outputs per row; model.scoreClass is ${scoreClass}`,
    );
  return score;
}

/**
 * Reads the predictions of `rows` rows: one line per row (one value, or one per class),
 * or the single comma-separated line older XGBoost containers answer for one output.
 */
export function parsePredictionLines(text: string, rows: number): number[][] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const parse = (field: string) => {
    const value = Number(field);
    if (field.trim() === '' || !Number.isFinite(value))
      throw new EndpointUnavailable(
        `endpoint returned a prediction that is not a number: "${field.slice(0, 40)}"`,
      );
    return value;
  };
  if (lines.length === rows) return lines.map((line) => line.split(',').map(parse));
  if (lines.length === 1 && rows > 1) {
    const values = lines[0]!.split(',').map(parse);
    if (values.length === rows) return values.map((v) => [v]);
  }
  throw new EndpointUnavailable(`endpoint returned ${lines.length} prediction lines for ${rows} rows`);
}

/**
 * Scores a flush's requests. A request over the payload limit is halved before it is sent;
 * one the model refuses is bisected down to the row, which lands in `refused`. Scored rows
 * land in `scored` at their position in the flush and go into the segment aggregates.
 */
export class BatchScorer {
  readonly scored: (ScoreRow | undefined)[];
  readonly refused: RejectRow[] = [];

  constructor(
    private readonly deps: {
      endpoint: ScoringEndpoint;
      counts: UnitCounts;
      segments: SegmentAggregator;
      maxPayloadBytes: number;
    },
    private readonly config: ScorePipelineConfig,
    private readonly positiveOptions: PositiveOptions,
    private readonly width: number,
    rows: number,
  ) {
    this.scored = new Array(rows);
  }

  async score(batch: PendingRow[], features: Float64Array, first: number): Promise<void> {
    const csv = formatCsvRows(features, batch.length, this.width);
    if (Buffer.byteLength(csv) > this.deps.maxPayloadBytes && batch.length > 1)
      return this.bisect(batch, features, first);
    let predictions: number[][];
    try {
      predictions = parsePredictionLines(await this.deps.endpoint.score(csv, this.deps.counts), batch.length);
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      if (batch.length === 1) {
        this.refused.push(rejectOfRow(batch[0]!, `model rejected the row: ${error.message}`));
        return;
      }
      return this.bisect(batch, features, first);
    }
    batch.forEach((row, i) => {
      this.keep(row, predictions[i]!, first + i);
    });
  }

  private async bisect(batch: PendingRow[], features: Float64Array, first: number): Promise<void> {
    const half = Math.ceil(batch.length / 2);
    await this.score(batch.slice(0, half), features.subarray(0, half * this.width), first);
    await this.score(batch.slice(half), features.subarray(half * this.width), first + half);
  }

  private keep(row: PendingRow, outputs: number[], at: number): void {
    const { config } = this;
    const score = scoreOf(outputs, config.model.scoreClass);
    this.scored[at] = {
      record_id: row.id,
      score,
      model: config.model.modelId ?? config.model.modelKey,
      source_key: row.sourceKey,
      line: row.line,
      outputs,
      metadata: row.metadata,
      ...(row.passThrough === undefined ? {} : { passThrough: row.passThrough }),
    };
    this.deps.segments.add(
      segmentValuesOf(row.values, config.segments.columns),
      score,
      positiveOf(row.values, score, this.positiveOptions),
    );
  }
}
