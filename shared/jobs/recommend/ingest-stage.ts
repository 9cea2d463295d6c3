import type { RecommendPipelineConfig } from '../../config/pipeline-config.ts';
import {
  emptyCounts,
  type RejectRow,
  type RunState,
  type UnitState,
  type WorkUnit,
} from '../../domain/types.ts';
import { RunNotReady } from '../../finalize/run-not-ready.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { EXCERPT_CHARS } from '../../readers/record-rules.ts';
import { putRejects } from '../../work/unit-output.ts';
import { type Checkpoint, rejectRowOf, unitRecords } from '../../work/unit-records.ts';
import type { StageMerged, UnitWork, UnitWorkDeps } from '../job-kind.ts';
import { splitHoldout } from './evaluation.ts';
import { similarityPostings } from './hot-item-cap.ts';
import { encodeInteractionIndex } from './index-codec.ts';
import { parseInteraction } from './interaction.ts';
import { buildInteractionIndex, popularityOrder } from './interaction-index.ts';
import { type Feedback, InteractionLogBuilder } from './interaction-log.ts';
import { decodeInteractionLog, encodeHoldOut, encodeInteractionLog } from './log-codec.ts';
import { similarityOf } from './recommend-config.ts';
import { holdoutKey, indexKey, ingestManifestKey, ingestPartKey, shardsKey } from './recommend-keys.ts';
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
    excerpt: JSON.stringify(record.values).slice(0, EXCERPT_CHARS),
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

/** Every succeeded unit's interactions in one builder (unit id order; the result does not depend on it). */
async function mergedInteractions(
  store: ObjectStore,
  feedback: Feedback,
  run: RunState,
  units: readonly UnitState[],
): Promise<{ builder: InteractionLogBuilder; records: number; rejected: number }> {
  const builder = new InteractionLogBuilder(feedback);
  let records = 0;
  let rejected = 0;
  const succeeded = units.filter((u) => u.status === 'succeeded');
  for (const unit of [...succeeded].sort((a, b) => (a.unitId < b.unitId ? -1 : 1))) {
    records += unit.counts?.records ?? 0;
    rejected += unit.counts?.rejected ?? 0;
    const key = ingestPartKey(run.pipeline, run.runId, unit.unitId);
    const bytes = await store.get(key);
    if (!bytes) throw new RunNotReady(`missing ${key}`);
    const log = decodeInteractionLog(bytes, key);
    for (let u = 0; u < log.userIds.length; u++) {
      for (let e = log.userPtr[u]!; e < log.userPtr[u + 1]!; e++) {
        const timestamp = log.timestamps[e]!;
        builder.add({
          userId: log.userIds[u]!,
          itemId: log.itemIds[log.items[e]!]!,
          value: log.values[e]!,
          ...(Number.isNaN(timestamp) ? {} : { timestamp }),
        });
      }
    }
  }
  return { builder, records, rejected };
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
 * The end of the ingest stage: every unit's interactions merged (duplicate pairs resolved
 * across units by the contract's rule), the holdout split off, the run's index built and
 * written, the hot-item cap applied, and the users cut into shards of about equal
 * estimated similarity work (`sharding.targetUnitWork`), written beside it with the
 * manifest the similarity stage is planned from. Deterministic and rewritten whole by a
 * retry. Holds the whole index in memory: the finalize function is sized for it.
 */
export async function mergeIngestStage(
  deps: { readonly store: ObjectStore },
  config: RecommendPipelineConfig,
  run: RunState,
  units: readonly UnitState[],
): Promise<StageMerged> {
  const feedback = feedbackOf(config);
  const { builder, records, rejected } = await mergedInteractions(deps.store, feedback, run, units);
  const { log } = builder.build();
  const evaluate = config.evaluation.holdoutFraction > 0;
  const { train, holdOut } = evaluate
    ? splitHoldout(log, config.evaluation)
    : { train: log, holdOut: undefined };
  const index = buildInteractionIndex(train);
  const similarity = similarityOf(config);
  const postings = similarityPostings(index, similarity, config.neighbours.maxItemUsers);
  const work = estimateUserWork(index, postings);
  const shards = planWorkShards(
    work,
    shardCountFor(work, config.sharding.targetUnitWork),
    config.sharding.method,
  );
  const { bytes, planned } = shardFile(shards);
  await deps.store.put(indexKey(run.pipeline, run.runId), encodeInteractionIndex(index), BINARY);
  if (holdOut) await deps.store.put(holdoutKey(run.pipeline, run.runId), encodeHoldOut(holdOut), BINARY);
  await deps.store.put(shardsKey(run.pipeline, run.runId), bytes, BINARY);
  const manifest: IngestManifest = {
    version: 1,
    records,
    rejected,
    feedback,
    similarity,
    interactions: log.items.length,
    duplicates: records - rejected - log.items.length,
    users: index.userIds.length,
    items: index.itemIds.length,
    catalogueItems: popularityOrder(index).length,
    cappedItems: postings.cappedItems,
    heldOut: holdOut?.items.length ?? 0,
    shards: planned,
  };
  await deps.store.put(
    ingestManifestKey(run.pipeline, run.runId),
    `${JSON.stringify(manifest)}\n`,
    'application/json',
  );
  return {};
}
