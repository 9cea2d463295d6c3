import type { RecommendPipelineConfig } from '../../config/pipeline-config.ts';
import {
  emptyCounts,
  type RejectRow,
  type RunState,
  type UnitState,
  type WorkUnit,
} from '../../domain/types.ts';
import { RunNotReady } from '../../finalize/run-not-ready.ts';
import { openObjectWrite } from '../../output/streamed-part.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { EXCERPT_CHARS } from '../../readers/record-rules.ts';
import { putRejects } from '../../work/unit-output.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';
import type { StageMerged, UnitWork, UnitWorkDeps } from '../job-kind.ts';
import { type HoldOut, splitHoldout } from './evaluation.ts';
import { hotItemSample } from './hot-item-cap.ts';
import { writeInteractionIndex } from './index-codec.ts';
import { parseInteraction } from './interaction.ts';
import { buildInteractionIndex, popularityOrder } from './interaction-index.ts';
import { type Feedback, type InteractionLog, InteractionLogBuilder } from './interaction-log.ts';
import { encodeHoldOut, encodeInteractionLog } from './log-codec.ts';
import { type LogMergeOptions, type MergedLogSink, type MergedRow, mergeLogParts } from './log-merge.ts';
import { similarityOf } from './recommend-config.ts';
import {
  holdoutKey,
  indexKey,
  ingestManifestKey,
  ingestPartKey,
  recommendStagingPrefix,
  shardsKey,
} from './recommend-keys.ts';
import { estimateUserWork, planWorkShards, shardCountFor } from './shard-plan.ts';

const BINARY = 'application/octet-stream';

/** Explicit feedback when the pipeline names a value field, implicit (every value 1) otherwise. */
export const feedbackOf = (config: RecommendPipelineConfig): Feedback =>
  config.input.valueField === undefined ? 'implicit' : 'explicit';

/** One user shard of the plan: its users' bytes in the shard file, and its estimated work. */
export interface PlannedShard {
  readonly byteStart: number;
  readonly byteEnd: number;
  readonly estimatedWork: number;
}

/**
 * What the ingest stage's merge found and planned, for the similarity stage's planning,
 * its units and the run summary (`ingest.json` under the run's staging prefix).
 */
export interface IngestManifest {
  readonly version: 1;
  readonly records: number;
  readonly rejected: number;
  readonly feedback: Feedback;
  readonly similarity: 'cosine' | 'pearson';
  /** Interactions kept after duplicate pairs, held-out ones included. */
  readonly interactions: number;
  readonly duplicates: number;
  readonly users: number;
  readonly items: number;
  /** Items with at least one training user (the catalogue evaluation coverage is over). */
  readonly catalogueItems: number;
  readonly cappedItems: number;
  readonly heldOut: number;
  readonly shards: readonly PlannedShard[];
}

/** A row the reader gave that is not an interaction, as a `rejects` row with the reason. */
function rejectOfRow(
  sourceKey: string,
  record: { readonly values: unknown; readonly line: number; readonly byteOffset: number },
  reason: string,
): RejectRow {
  return {
    source_key: sourceKey,
    byte_offset: record.byteOffset,
    line: record.line,
    reason,
    // Parquet INT64 values are bigints, which JSON.stringify refuses.
    excerpt: JSON.stringify(record.values, (_key, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v,
    ).slice(0, EXCERPT_CHARS),
  };
}

/**
 * The ingest stage's work on one unit (a record-aligned slice of the log): each record read
 * and validated (a missing user or item, a non-numeric value, a bad timestamp go to
 * `rejects` with the reason), the valid ones deduplicated within the unit and written as
 * one compact interactions file for the stage's merge. Cost: records read.
 */
export async function workIngestUnit(
  deps: UnitWorkDeps,
  config: RecommendPipelineConfig,
  unit: WorkUnit,
  checkpoint?: Checkpoint,
): Promise<UnitWork> {
  const counts = emptyCounts();
  const rejects: RejectRow[] = [];
  const builder = new InteractionLogBuilder(feedbackOf(config));
  const fields = { ...config.input, shape: 'row' as const };
  for await (const { slice, record } of unitRecords(deps.store, unit, fields, checkpoint)) {
    counts.records += 1;
    if (record.kind === 'reject') {
      rejects.push(rejectRowOf(slice.key, record));
      continue;
    }
    if (record.kind !== 'row') throw new Error(`interaction reader yielded a ${record.kind}`);
    const parsed = parseInteraction(record.values, config.input);
    if (parsed.ok) builder.add(parsed.interaction);
    else rejects.push(rejectOfRow(slice.key, record, parsed.reason));
  }
  counts.rejected = rejects.length;
  const partKey = ingestPartKey(unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(partKey, encodeInteractionLog(builder.build().log), BINARY);
  const rejectsKey = await putRejects(deps.store, unit, rejects);
  return {
    counts,
    outputKeys: [rejectsKey, partKey].filter((k): k is string => k !== undefined),
    actualCost: counts.records,
  };
}

/** The users of each shard as one little-endian int32 file, and each shard's byte range in it. */
function shardFile(shards: readonly { users: Int32Array; estimatedWork: number }[]): {
  bytes: Buffer;
  planned: PlannedShard[];
} {
  const total = shards.reduce((sum, s) => sum + s.users.length, 0);
  const bytes = Buffer.alloc(4 * total);
  const planned: PlannedShard[] = [];
  let at = 0;
  for (const shard of shards) {
    const byteStart = at;
    for (const user of shard.users) {
      bytes.writeInt32LE(user, at);
      at += 4;
    }
    planned.push({ byteStart, byteEnd: at, estimatedWork: shard.estimatedWork });
  }
  return { bytes, planned };
}

/**
 * The training side of the merged log, one user at a time: each user's row split into
 * training and held-out interactions (the contract's holdout, per user, as
 * {@link splitHoldout} does it on a whole log), the training rows appended to typed arrays
 * sized by the units' entries (an upper bound: duplicates across units are dropped).
 */
class TrainingRows implements MergedLogSink {
  userIds: readonly string[] = [];
  itemIds: readonly string[] = [];
  userPtr = new Int32Array(1);
  items = new Int32Array(0);
  values = new Float64Array(0);
  holdPtr = new Int32Array(1);
  held = new Int32Array(1024);
  kept = 0;
  heldCount = 0;
  evaluated = 0;
  private lastUser = -1;

  constructor(
    private readonly feedback: Feedback,
    private readonly evaluation: RecommendPipelineConfig['evaluation'] | undefined,
  ) {}

  start(tables: { userIds: readonly string[]; itemIds: readonly string[]; inputEntries: number }): void {
    this.userIds = tables.userIds;
    this.itemIds = tables.itemIds;
    this.userPtr = new Int32Array(tables.userIds.length + 1);
    this.holdPtr = new Int32Array(tables.userIds.length + 1);
    this.items = new Int32Array(tables.inputEntries);
    this.values = new Float64Array(tables.inputEntries);
  }

  user(user: number, row: MergedRow): void {
    this.fillTo(user);
    const n = row.items.length;
    const evaluation = this.evaluation;
    if (evaluation !== undefined && n >= evaluation.minUserItems) {
      const { train, holdOut } = splitHoldout(
        {
          feedback: this.feedback,
          userIds: [this.userIds[user]!],
          itemIds: this.itemIds,
          userPtr: Int32Array.of(0, n),
          items: row.items,
          values: row.values,
          timestamps: row.timestamps,
        },
        evaluation,
      );
      this.append(train.items, train.values);
      if (this.heldCount + holdOut.items.length > this.held.length) {
        const grown = new Int32Array(2 * (this.heldCount + holdOut.items.length));
        grown.set(this.held.subarray(0, this.heldCount));
        this.held = grown;
      }
      this.held.set(holdOut.items, this.heldCount);
      this.heldCount += holdOut.items.length;
      this.evaluated += holdOut.users;
    } else this.append(row.items, row.values);
    this.userPtr[user + 1] = this.kept;
    this.holdPtr[user + 1] = this.heldCount;
    this.lastUser = user;
  }

  /** The training log (its rows are views over the arrays) and the holdout. */
  finish(): { train: InteractionLog; holdOut: HoldOut } {
    this.fillTo(this.userIds.length);
    return {
      train: {
        feedback: this.feedback,
        userIds: this.userIds,
        itemIds: this.itemIds,
        userPtr: this.userPtr,
        items: this.items.subarray(0, this.kept),
        values: this.values.subarray(0, this.kept),
        timestamps: new Float64Array(0),
      },
      holdOut: { users: this.evaluated, userPtr: this.holdPtr, items: this.held.slice(0, this.heldCount) },
    };
  }

  private append(items: Int32Array, values: Float64Array): void {
    this.items.set(items, this.kept);
    this.values.set(values, this.kept);
    this.kept += items.length;
  }

  /** Users without a row up to `user` (none in practice: every user of the id tables has one) get empty rows. */
  private fillTo(user: number): void {
    for (let u = this.lastUser + 1; u < user; u++) {
      this.userPtr[u + 1] = this.kept;
      this.holdPtr[u + 1] = this.heldCount;
    }
    this.lastUser = Math.max(this.lastUser, user - 1);
  }
}

/**
 * The end of the ingest stage: every unit's interactions merged (duplicate pairs resolved
 * across units by the contract's rule) as a streaming k-way merge of the units' sorted
 * logs (log-merge.ts), the holdout split off user by user, the run's index built and
 * written piece by piece, the hot-item cap applied, and the users cut into shards of about
 * equal estimated similarity work (`sharding.targetUnitWork`), written beside it with the
 * manifest the similarity stage is planned from. Deterministic and rewritten whole by a
 * retry. Holds the training index (about 24 bytes per interaction) and the id tables, not
 * the log: the unit logs are read a window at a time.
 */
export function mergeIngestStage(
  deps: { readonly store: ObjectStore },
  config: RecommendPipelineConfig,
  run: RunState,
  units: readonly UnitState[],
): Promise<StageMerged> {
  return mergeIngestUnits(deps, config, run, units, {});
}

/** {@link mergeIngestStage} with the log merge's fan-in and window set (tests make them tiny). */
export async function mergeIngestUnits(
  deps: { readonly store: ObjectStore },
  config: RecommendPipelineConfig,
  run: RunState,
  units: readonly UnitState[],
  merge: Pick<LogMergeOptions, 'fanIn' | 'windowEntries'>,
): Promise<StageMerged> {
  const feedback = feedbackOf(config);
  let records = 0;
  let rejected = 0;
  const keys: string[] = [];
  const succeeded = units.filter((u) => u.status === 'succeeded');
  for (const unit of [...succeeded].sort((a, b) => (a.unitId < b.unitId ? -1 : 1))) {
    records += unit.counts?.records ?? 0;
    rejected += unit.counts?.rejected ?? 0;
    const key = ingestPartKey(run.pipeline, run.runId, unit.unitId);
    if (!(await deps.store.head(key))) throw new RunNotReady(`missing ${key}`);
    keys.push(key);
  }
  const evaluate = config.evaluation.holdoutFraction > 0;
  const rows = new TrainingRows(feedback, evaluate ? config.evaluation : undefined);
  const merged = await mergeLogParts(
    deps.store,
    keys,
    { ...merge, spillPrefix: `${recommendStagingPrefix(run.pipeline, run.runId)}ingest-merge/` },
    rows,
  );
  const { train, holdOut } = rows.finish();
  const index = buildInteractionIndex(train);
  const similarity = similarityOf(config);
  const sample = hotItemSample(index, config.neighbours.maxItemUsers);
  const work = estimateUserWork(index, sample);
  const shards = planWorkShards(
    work,
    shardCountFor(work, config.sharding.targetUnitWork),
    config.sharding.method,
  );
  const { bytes, planned } = shardFile(shards);
  const out = await openObjectWrite(deps.store, indexKey(run.pipeline, run.runId), BINARY);
  try {
    await writeInteractionIndex(out, index);
  } catch (error) {
    await out.abort();
    throw error;
  }
  await out.finish();
  if (evaluate) await deps.store.put(holdoutKey(run.pipeline, run.runId), encodeHoldOut(holdOut), BINARY);
  await deps.store.put(shardsKey(run.pipeline, run.runId), bytes, BINARY);
  const manifest: IngestManifest = {
    version: 1,
    records,
    rejected,
    feedback,
    similarity,
    interactions: merged.kept,
    duplicates: records - rejected - merged.kept,
    users: index.userIds.length,
    items: index.itemIds.length,
    catalogueItems: popularityOrder(index).length,
    cappedItems: sample.cappedItems,
    heldOut: evaluate ? holdOut.items.length : 0,
    shards: planned,
  };
  await deps.store.put(
    ingestManifestKey(run.pipeline, run.runId),
    `${JSON.stringify(manifest)}\n`,
    'application/json',
  );
  return {};
}
