import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import {
  emptyCounts,
  type RejectRow,
  type ScoreRow,
  type UnitCounts,
  type WorkUnit,
} from '../../domain/types.ts';
import { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { EndpointUnavailable, ModelError } from '../../errors/errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import {
  positiveOf,
  type SegmentAggregatesState,
  SegmentAggregator,
  segmentValuesOf,
} from '../../scoring/aggregates/segment-aggregates.ts';
import type { FeatureTransformer } from '../../scoring/features/feature-transformer.ts';
import { transformRecords } from '../../scoring/features/feature-transformer.ts';
import { transformerFor } from '../../scoring/scoring-context.ts';
import { formatCsvRows } from '../../scoring/xgboost/csv-contract.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';

/** Where a scoring unit leaves its segment aggregates for finalize to merge. */
export function segmentPartialKey(pipeline: string, runId: string, unitId: string): string {
  return `runs/${pipeline}/${runId}/segments/${unitId}.json`;
}

interface PendingRow {
  readonly id: string;
  readonly values: Readonly<Record<string, unknown>>;
  readonly metadata: Record<string, string | null>;
  readonly sourceKey: string;
  readonly line: number;
  readonly byteOffset: number;
}

/** Where a unit's scored rows go as each flush of them is done (a Parquet part writer). */
export interface ScoreSink {
  add(rows: readonly ScoreRow[]): void | Promise<void>;
}

export interface ScoredUnit {
  readonly rejects: RejectRow[];
  readonly counts: UnitCounts;
  readonly segments: SegmentAggregatesState;
  /** The rows in the unit's part, in part order, for finalize's duplicate-id rule. */
  readonly idList: UnitIdList;
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
 * Scores a unit's rows: features by the fitted transformer (a row whose value cannot be a
 * feature is rejected with the reason), `text/csv` requests of at most
 * `model.maxRowsPerRequest` rows and SageMaker's payload limit, predictions joined back
 * by row, and per-segment aggregates accumulated for finalize. A request the model
 * refuses (4xx) is bisected down to the row, which is rejected; the rest are scored.
 * Each flush's rows go to `sink` in the order they were read, so a unit holds one flush
 * of rows (`maxRowsPerRequest x concurrency`), not all of them.
 */
export async function scoreUnit(
  deps: { store: ObjectStore; endpoint: ScoringEndpoint; maxPayloadBytes?: number },
  config: ScorePipelineConfig,
  unit: WorkUnit,
  sink: ScoreSink,
  checkpoint?: Checkpoint,
): Promise<ScoredUnit> {
  const transformer = await transformerFor(deps.store, config, unit.runId);
  const counts = emptyCounts();
  /** The current flush's scored rows, by their position in it. */
  let scored: (ScoreRow | undefined)[] = [];
  const rejects: RejectRow[] = [];
  const model = config.model.modelId ?? config.model.modelKey;
  const segments = new SegmentAggregator({
    segmentColumns: config.segments.columns,
    maxSegments: config.segments.maxSegments,
  });
  const positive = config.segments.positive;
  const positiveOptions =
    positive === undefined
      ? {}
      : 'column' in positive
        ? { outcomeColumn: positive.column }
        : { threshold: positive.threshold };
  const maxPayloadBytes = deps.maxPayloadBytes ?? 6 * 1024 * 1024;
  let pending: PendingRow[] = [];
  const idList = new UnitIdList();

  const reject = (row: PendingRow, reason: string) =>
    rejects.push({
      source_key: row.sourceKey,
      byte_offset: row.byteOffset,
      line: row.line,
      reason,
      excerpt: JSON.stringify(row.values).slice(0, 200),
    });

  const scoreBatch = async (
    batch: PendingRow[],
    features: Float64Array,
    width: number,
    first: number,
  ): Promise<void> => {
    const csv = formatCsvRows(features, batch.length, width);
    if (Buffer.byteLength(csv) > maxPayloadBytes && batch.length > 1) {
      const half = Math.ceil(batch.length / 2);
      await scoreBatch(batch.slice(0, half), features.subarray(0, half * width), width, first);
      await scoreBatch(batch.slice(half), features.subarray(half * width), width, first + half);
      return;
    }
    let predictions: number[][];
    try {
      predictions = parsePredictionLines(await deps.endpoint.score(csv, counts), batch.length);
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      if (batch.length === 1) {
        reject(batch[0]!, `model rejected the row: ${error.message}`);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await scoreBatch(batch.slice(0, half), features.subarray(0, half * width), width, first);
      await scoreBatch(batch.slice(half), features.subarray(half * width), width, first + half);
      return;
    }
    batch.forEach((row, i) => {
      const outputs = predictions[i]!;
      const score = outputs.length === 1 ? outputs[0]! : outputs[config.model.scoreClass];
      if (score === undefined)
        throw new EndpointUnavailable(
          `endpoint returned ${outputs.length} outputs per row; model.scoreClass is ${config.model.scoreClass}`,
        );
      scored[first + i] = {
        record_id: row.id,
        score,
        model,
        source_key: row.sourceKey,
        line: row.line,
        outputs,
        metadata: row.metadata,
      };
      segments.add(
        segmentValuesOf(row.values, config.segments.columns),
        score,
        positiveOf(row.values, score, positiveOptions),
      );
    });
  };

  const flush = async (): Promise<void> => {
    const batchRows = pending;
    pending = [];
    const { data, numRows, rowIndex, rejected } = transformRecords(
      transformer as FeatureTransformer,
      batchRows.map((r) => r.values),
    );
    for (const { index, reason } of rejected) reject(batchRows[index]!, reason);
    const accepted = Array.from(rowIndex.subarray(0, numRows), (i) => batchRows[i]!);
    const width = transformer.width;
    const requests: { rows: PendingRow[]; features: Float64Array; first: number }[] = [];
    for (let start = 0; start < accepted.length; start += config.model.maxRowsPerRequest) {
      const end = Math.min(accepted.length, start + config.model.maxRowsPerRequest);
      requests.push({
        rows: accepted.slice(start, end),
        features: data.subarray(start * width, end * width),
        first: start,
      });
    }
    scored = new Array(accepted.length);
    await mapWithConcurrency(requests, config.model.concurrency, (r) =>
      scoreBatch(r.rows, r.features, width, r.first),
    );
    // Rows the model refused are holes; the rest keep the order they were read in.
    const rows: ScoreRow[] = [];
    scored.forEach((row, i) => {
      if (row === undefined) return;
      rows.push(row);
      const read = accepted[i]!;
      idList.add({
        id: read.id,
        sourceKey: read.sourceKey,
        byteOffset: read.byteOffset,
        line: read.line,
        rows: 1,
        carried: 0,
      });
    });
    counts.scored += rows.length;
    await sink.add(rows);
  };

  for await (const { slice, record } of unitRecords(
    deps.store,
    unit,
    { ...config.input, shape: 'row' },
    checkpoint,
  )) {
    counts.records += 1;
    if (record.kind === 'reject') {
      rejects.push(rejectRowOf(slice.key, record));
      continue;
    }
    if (record.kind !== 'row') throw new Error(`scoring reader yielded a ${record.kind}`);
    pending.push({
      id: record.id,
      values: record.values,
      metadata: record.metadata,
      sourceKey: slice.key,
      line: record.line,
      byteOffset: record.byteOffset,
    });
    if (pending.length >= config.model.maxRowsPerRequest * config.model.concurrency) await flush();
  }
  await flush();

  counts.rejected = rejects.length;
  return { rejects, counts, segments: segments.toJSON(), idList };
}
