import type { ScorePipelineConfig } from '../../config/pipeline-config.ts';
import {
  emptyCounts,
  type RejectRow,
  type ScoreRow,
  type UnitCounts,
  type WorkUnit,
} from '../../domain/types.ts';
import { UnitIdList } from '../../duplicates/unit-id-list.ts';
import { ConfigError } from '../../errors/errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { ScoringEndpoint } from '../../ports/scoring-endpoint.ts';
import {
  type SegmentAggregatesState,
  SegmentAggregator,
} from '../../scoring/aggregates/segment-aggregates.ts';
import type { FeatureTransformer } from '../../scoring/features/feature-transformer.ts';
import { transformRecords } from '../../scoring/features/feature-transformer.ts';
import { maxModelBytesFor } from '../../scoring/in-worker/model-cache.ts';
import { RowReasons, workerExplainer } from '../../scoring/in-worker/row-reasons.ts';
import { passThroughOf } from '../../scoring/pass-through.ts';
import { transformerFor } from '../../scoring/scoring-context.ts';
import { columnMapOfInputs } from '../../scoring/xgboost/reason-codes.ts';
import { mapWithConcurrency } from '../../work/concurrency.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';
import {
  BatchScorer,
  type PendingRow,
  type PositiveOptions,
  positiveOptionsOf,
  rejectOfRow,
  requestsOf,
} from './score-batch.ts';

/** Where a scoring unit leaves its segment aggregates for finalize to merge. */
export function segmentPartialKey(pipeline: string, runId: string, unitId: string): string {
  return `runs/${pipeline}/${runId}/segments/${unitId}.json`;
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

export { parsePredictionLines } from './score-batch.ts';

/**
 * Scores a unit's rows: features by the fitted transformer (a row whose value cannot be a
 * feature is rejected with the reason), `text/csv` requests of at most
 * `model.maxRowsPerRequest` rows and SageMaker's payload limit, predictions joined back
 * by row, and per-segment aggregates accumulated for finalize. A request the model
 * refuses (4xx) is bisected down to the row, which is rejected; the rest are scored.
 * Each flush's rows go to `sink` in the order they were read, so a unit holds one flush
 * of rows (`maxRowsPerRequest x concurrency`), not all of them. With `explain`, each
 * scored row gets its reason codes; with `output.passThrough`, its input columns (a
 * value that is not of its column's type rejects the row).
 */
export async function scoreUnit(
  deps: ScoreDeps,
  config: ScorePipelineConfig,
  unit: WorkUnit,
  sink: ScoreSink,
  checkpoint?: Checkpoint,
): Promise<ScoredUnit> {
  const transformer = (await transformerFor(deps.store, config, unit.runId)) as FeatureTransformer;
  const reasons = config.explain ? await rowReasonsFor(deps.store, config, transformer) : undefined;
  return new UnitScorer(deps, config, unit, sink, transformer, reasons).run(checkpoint);
}

/**
 * Reason codes from the model file the worker scores with (`model.modelKey`; config
 * allows `explain` only with in-worker hosting), summed back over the transformer's
 * expanded columns to the record fields they read.
 */
async function rowReasonsFor(
  store: ObjectStore,
  config: ScorePipelineConfig,
  transformer: FeatureTransformer,
): Promise<RowReasons> {
  const { modelKey, scoreClass } = config.model;
  const explainer = await workerExplainer(store, modelKey, maxModelBytesFor(config.workers.memoryMiB));
  return new RowReasons(
    explainer,
    columnMapOfInputs(transformer.columnInputs),
    config.explain!.topK,
    scoreClass,
    modelKey,
  );
}

interface ScoreDeps {
  store: ObjectStore;
  endpoint: ScoringEndpoint;
  maxPayloadBytes?: number;
}

/**
 * A CSV row holds every header name and a Parquet row every schema column, so a
 * pass-through column absent from one is absent from the file: one line for the whole run
 * (a ConfigError, not a reject per row). JSONL has no header: an absent key is null.
 */
function checkHeaderHolds(
  slice: { readonly key: string; readonly format: string },
  values: Readonly<Record<string, unknown>>,
  passThrough: readonly { readonly column: string }[],
): void {
  if (slice.format !== 'csv' && slice.format !== 'parquet') return;
  for (const { column } of passThrough) {
    if (column in values) continue;
    const what = slice.format === 'csv' ? 'header' : 'schema';
    throw new ConfigError(
      `output.passThrough: column "${column}" is not in the ${what} of ${slice.key} (its columns: ${Object.keys(values).slice(0, 20).join(', ')})`,
    );
  }
}

/** One unit's scoring: the unit's results so far and the rows read for the next flush, as fields. */
class UnitScorer {
  private readonly counts = emptyCounts();
  private readonly rejects: RejectRow[] = [];
  private readonly idList = new UnitIdList();
  private readonly segments: SegmentAggregator;
  private readonly positiveOptions: PositiveOptions;
  private pending: PendingRow[] = [];

  constructor(
    private readonly deps: ScoreDeps,
    private readonly config: ScorePipelineConfig,
    private readonly unit: WorkUnit,
    private readonly sink: ScoreSink,
    private readonly transformer: FeatureTransformer,
    private readonly reasons: RowReasons | undefined,
  ) {
    this.segments = new SegmentAggregator({
      segmentColumns: config.segments.columns,
      maxSegments: config.segments.maxSegments,
    });
    this.positiveOptions = positiveOptionsOf(config.segments.positive);
  }

  async run(checkpoint: Checkpoint | undefined): Promise<ScoredUnit> {
    const { config } = this;
    const fields = { ...config.input, shape: 'row' as const };
    for await (const { slice, record } of unitRecords(this.deps.store, this.unit, fields, checkpoint)) {
      this.counts.records += 1;
      if (record.kind === 'reject') {
        this.rejects.push(rejectRowOf(slice.key, record));
        continue;
      }
      if (record.kind !== 'row') throw new Error(`scoring reader yielded a ${record.kind}`);
      const row: PendingRow = {
        id: record.id,
        values: record.values,
        metadata: record.metadata,
        sourceKey: slice.key,
        line: record.line,
        byteOffset: record.byteOffset,
      };
      const passThrough = config.output.passThrough;
      if (passThrough.length > 0) {
        checkHeaderHolds(slice, record.values, passThrough);
        const kept = passThroughOf(record.values, passThrough);
        if (!kept.ok) {
          this.rejects.push(rejectOfRow(row, kept.reason));
          continue;
        }
        this.pending.push({ ...row, passThrough: kept.values });
      } else this.pending.push(row);
      if (this.pending.length >= config.model.maxRowsPerRequest * config.model.concurrency)
        await this.flush();
    }
    await this.flush();
    this.counts.rejected = this.rejects.length;
    return {
      rejects: this.rejects,
      counts: this.counts,
      segments: this.segments.toJSON(),
      idList: this.idList,
    };
  }

  /** Scores the rows read so far and sends them to the sink in the order they were read. */
  private async flush(): Promise<void> {
    const read = this.pending;
    this.pending = [];
    const { data, numRows, rowIndex, rejected } = transformRecords(
      this.transformer,
      read.map((r) => r.values),
    );
    for (const { index, reason } of rejected) this.rejects.push(rejectOfRow(read[index]!, reason));
    const accepted = Array.from(rowIndex.subarray(0, numRows), (i) => read[i]!);
    const scorer = await this.scoreAccepted(accepted, data);
    this.rejects.push(...scorer.refused);
    const rows = this.keepScored(scorer.scored, accepted, data);
    this.counts.scored += rows.length;
    await this.sink.add(rows);
  }

  private async scoreAccepted(accepted: PendingRow[], data: Float64Array): Promise<BatchScorer> {
    const { config, deps } = this;
    const width = this.transformer.width;
    const scorer = new BatchScorer(
      {
        endpoint: deps.endpoint,
        counts: this.counts,
        segments: this.segments,
        maxPayloadBytes: deps.maxPayloadBytes ?? 6 * 1024 * 1024,
      },
      config,
      this.positiveOptions,
      width,
      accepted.length,
    );
    const requests = requestsOf(accepted, data, width, config.model.maxRowsPerRequest);
    await mapWithConcurrency(requests, config.model.concurrency, (r) =>
      scorer.score(r.rows, r.features, r.first),
    );
    return scorer;
  }

  /**
   * Rows the model refused are holes; the rest keep the order they were read in, each with
   * its reason codes when the pipeline explains (from the features it was scored with).
   */
  private keepScored(
    scored: readonly (ScoreRow | undefined)[],
    accepted: readonly PendingRow[],
    data: Float64Array,
  ): ScoreRow[] {
    const rows: ScoreRow[] = [];
    const width = this.transformer.width;
    scored.forEach((row, i) => {
      if (row === undefined) return;
      const read = accepted[i]!;
      if (this.reasons)
        row.reasons = this.reasons.reasonsOf(
          data.subarray(i * width, (i + 1) * width),
          read.values,
          row.outputs,
        );
      rows.push(row);
      this.idList.add({
        id: read.id,
        sourceKey: read.sourceKey,
        byteOffset: read.byteOffset,
        line: read.line,
        rows: 1,
        carried: 0,
      });
    });
    return rows;
  }
}
