import { ObjectStoreRecommendationLists } from '../../adapters/local/object-store-recommendation-lists.ts';
import type { RecommendPipelineConfig } from '../../config/pipeline-config.ts';
import {
  emptyCounts,
  type RecommendRunSummary,
  type RunState,
  type UnitState,
  type WorkUnit,
} from '../../domain/types.ts';
import { RunNotReady } from '../../finalize/run-not-ready.ts';
import { ParquetPartWriter, TABLE_COLUMNS } from '../../output/parquet-tables.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { intoStreamedPart, streamedTablePart } from '../../work/unit-output.ts';
import type { StageMerged, StagePlanContext, UnitWork, UnitWorkDeps } from '../job-kind.ts';
import {
  EvaluationAccumulator,
  type EvaluationPartial,
  type HoldOut,
  mergeEvaluation,
  summarizeEvaluation,
} from './evaluation.ts';
import { type SimilarityPostings, similarityPostings } from './hot-item-cap.ts';
import { decodeInteractionIndex } from './index-codec.ts';
import type { IngestManifest } from './ingest-stage.ts';
import { type InteractionIndex, popularityOrder } from './interaction-index.ts';
import { decodeHoldOut } from './log-codec.ts';
import { holdoutKey, indexKey, ingestManifestKey, shardResultKey, shardsKey } from './recommend-keys.ts';
import { userListOf } from './recommendation-lists.ts';
import { SupersededRunsOfStore } from './superseded-runs.ts';
import { popularityList, type RecommendationRow, recommendationRows, UserCfShard } from './user-cf.ts';

const decoder = new TextDecoder();

/** A staging file an earlier stage wrote; missing means the run cannot go on from here. */
async function required(store: ObjectStore, key: string): Promise<Uint8Array> {
  const bytes = await store.get(key);
  if (!bytes) throw new RunNotReady(`missing ${key}`);
  return bytes;
}

export async function readIngestManifest(
  store: ObjectStore,
  pipeline: string,
  runId: string,
): Promise<IngestManifest> {
  const key = ingestManifestKey(pipeline, runId);
  return JSON.parse(decoder.decode(await required(store, key))) as IngestManifest;
}

/** Unit id of user shard `shard`: distinct from every ingest unit's id. */
export const similarityUnitIdOf = (shard: number): string => `similarity-${String(shard).padStart(5, '0')}`;

/**
 * The similarity stage's units: one per user shard of the plan the ingest merge wrote
 * (users balanced by estimated similarity work, not by count). A unit's range is its
 * users' bytes in the shard file; its estimated cost, the shard's estimated work.
 * Deterministic: it only reads what the merge wrote.
 */
export async function planSimilarityUnits(
  _ingestUnits: readonly WorkUnit[],
  context: StagePlanContext<RecommendPipelineConfig>,
): Promise<WorkUnit[]> {
  const { run, store } = context;
  const manifest = await readIngestManifest(store, run.pipeline, run.runId);
  return manifest.shards.map((shard, s) => ({
    runId: run.runId,
    unitId: similarityUnitIdOf(s),
    pipeline: run.pipeline,
    sourceKey: shardsKey(run.pipeline, run.runId),
    byteStart: shard.byteStart,
    byteEnd: shard.byteEnd,
    firstLine: 1,
    format: 'text',
    compression: 'none',
    packed: [],
    estCost: Math.max(1, Math.round(shard.estimatedWork)),
    stage: 'similarity',
  }));
}

/** What every shard of a run reads: the index, its capped postings, the popularity order, the holdout. */
interface RunIndex {
  readonly key: string;
  readonly index: InteractionIndex;
  readonly postings: SimilarityPostings;
  readonly popular: Int32Array;
  readonly holdOut: HoldOut | undefined;
}

// A worker works many shards of the same run: the index is read and prepared once.
let cached: RunIndex | undefined;

async function runIndexOf(
  store: ObjectStore,
  config: RecommendPipelineConfig,
  unit: WorkUnit,
  manifest: IngestManifest,
): Promise<RunIndex> {
  const key = indexKey(unit.pipeline, unit.runId);
  if (cached?.key === key) return cached;
  cached = undefined;
  const index = decodeInteractionIndex(await required(store, key), key);
  const hKey = holdoutKey(unit.pipeline, unit.runId);
  const holdOut = manifest.heldOut > 0 ? decodeHoldOut(await required(store, hKey), hKey) : undefined;
  cached = {
    key,
    index,
    postings: similarityPostings(index, manifest.similarity, config.neighbours.maxItemUsers),
    popular: popularityOrder(index),
    holdOut,
  };
  return cached;
}

/** The users of a unit: its range of the shard file. */
async function shardUsers(store: ObjectStore, unit: WorkUnit): Promise<Int32Array> {
  const chunks: Uint8Array[] = [];
  if (unit.byteEnd > unit.byteStart)
    for await (const chunk of store.readRange(unit.sourceKey, unit.byteStart, unit.byteEnd))
      chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const users = new Int32Array(bytes.length / 4);
  for (let k = 0; k < users.length; k++) users[k] = bytes.readInt32LE(4 * k);
  return users;
}

/**
 * The similarity stage's work on one user shard: each user's neighbours and top N by the
 * contract, written as the unit's `recommendations` part, and with a holdout, the shard's
 * evaluation partial (CF's list against popularity's). Cost: the operations counted
 * (postings accumulated plus neighbour items scanned), in the units of the estimate.
 */
export async function workSimilarityUnit(
  deps: UnitWorkDeps,
  config: RecommendPipelineConfig,
  unit: WorkUnit,
): Promise<UnitWork> {
  const manifest = await readIngestManifest(deps.store, unit.pipeline, unit.runId);
  const { index, postings, popular, holdOut } = await runIndexOf(deps.store, config, unit, manifest);
  const users = await shardUsers(deps.store, unit);
  const topN = config.output.topN;
  const computer = new UserCfShard(index, postings, { ...config.neighbours, topN });
  const evaluation = new EvaluationAccumulator(topN, index.itemIds);
  const writer = new ParquetPartWriter<RecommendationRow>(TABLE_COLUMNS.recommendations, (row) => ({
    ...row,
  }));
  const part = streamedTablePart(deps.store, 'recommendations', unit, writer);
  // Served by key: each user's list under this run, stored before the unit can complete;
  // the user's lists of runs no reader serves again are deleted as it goes (where the
  // store deletes by user: DynamoDB; a local home's are `sluice gc`'s).
  const served = (deps.recommendationLists ?? new ObjectStoreRecommendationLists(deps.store)).unitWriter(
    unit.pipeline,
    unit.runId,
    unit.unitId,
    { superseded: new SupersededRunsOfStore(deps.runs, unit.pipeline, unit.runId) },
  );
  const { key } = await intoStreamedPart(part, async (sink) => {
    try {
      for (const user of users) {
        const list = computer.recommend(user);
        const rows = recommendationRows(index, list, unit);
        await sink.add(rows);
        await served.add(userListOf(index.userIds[user]!, rows));
        if (!holdOut) continue;
        const relevant = new Set(holdOut.items.subarray(holdOut.userPtr[user]!, holdOut.userPtr[user + 1]!));
        if (relevant.size > 0)
          evaluation.add(relevant, list.items, popularityList(index, popular, user, topN));
      }
      await served.finish();
    } catch (error) {
      // The unit fails with its own error; a temporary file left by a failed abort is gc's.
      await served.abort().catch(() => {});
      throw error;
    }
  });
  const result: ShardResult = {
    users: users.length,
    rows: writer.rows,
    ...(holdOut ? { evaluation: evaluation.partial() } : {}),
  };
  const resultKey = shardResultKey(unit.pipeline, unit.runId, unit.unitId);
  await deps.store.put(resultKey, JSON.stringify(result), 'application/json');
  const counts = { ...emptyCounts(), records: users.length };
  return {
    counts,
    outputKeys: [...(key === undefined ? [] : [key]), resultKey],
    actualCost: Math.max(1, computer.operations),
  };
}

/** What a shard left for the stage's merge: users and rows written, and with a holdout, its evaluation partial. */
interface ShardResult {
  readonly users: number;
  readonly rows: number;
  readonly evaluation?: EvaluationPartial;
}

/** max / mean of the shards' figures (1 for one shard or none). */
function maxOverMean(values: readonly number[]): number {
  if (values.length === 0) return 1;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return mean > 0 ? Math.round((Math.max(...values) / mean) * 1000) / 1000 : 1;
}

const rounded = (x: number): number => Math.round(x * 1e6) / 1e6;

/**
 * The end of the similarity stage (the run's last): the shards' evaluation partials
 * merged into CF and popularity metrics, and the run's figures for the summary. The
 * summary's records and rejects are the ingest stage's (the input's), so
 * `run.toleratedRejectPercent` judges the interactions read.
 */
export async function mergeSimilarityStage(
  deps: { readonly store: ObjectStore },
  config: RecommendPipelineConfig,
  run: RunState,
  units: readonly UnitState[],
): Promise<StageMerged> {
  const manifest = await readIngestManifest(deps.store, run.pipeline, run.runId);
  const succeeded = units.filter((u) => u.status === 'succeeded');
  const results: ShardResult[] = [];
  for (const unit of succeeded) {
    const key = shardResultKey(run.pipeline, run.runId, unit.unitId);
    results.push(JSON.parse(decoder.decode(await required(deps.store, key))) as ShardResult);
  }
  const usersRecommended = results.reduce((sum, r) => sum + r.users, 0);
  const summary: RecommendRunSummary = {
    feedback: manifest.feedback,
    similarity: manifest.similarity,
    interactions: manifest.interactions,
    duplicates: manifest.duplicates,
    users: manifest.users,
    items: manifest.items,
    cappedItems: manifest.cappedItems,
    shards: {
      count: manifest.shards.length,
      estimatedMaxOverMean: maxOverMean(manifest.shards.map((s) => s.estimatedWork)),
      actualMaxOverMean: maxOverMean(succeeded.map((u) => u.actualCost ?? 0)),
    },
    usersRecommended,
    rows: results.reduce((sum, r) => sum + r.rows, 0),
    ...(manifest.heldOut > 0 ? { evaluation: evaluationOf(config, results, manifest) } : {}),
  };
  return {
    inputCounts: { records: manifest.records, rejected: manifest.rejected },
    summary: { recommendations: summary },
  };
}

function evaluationOf(
  config: RecommendPipelineConfig,
  results: readonly ShardResult[],
  manifest: IngestManifest,
): NonNullable<RecommendRunSummary['evaluation']> {
  const partials = results.flatMap((r) => (r.evaluation ? [r.evaluation] : []));
  const merged = summarizeEvaluation(mergeEvaluation(partials), manifest.catalogueItems);
  const metrics = (m: typeof merged.cf) => ({
    precision: rounded(m.precision),
    recall: rounded(m.recall),
    ndcg: rounded(m.ndcg),
    coverage: rounded(m.coverage),
  });
  return {
    holdoutFraction: config.evaluation.holdoutFraction,
    heldOut: manifest.heldOut,
    topN: config.output.topN,
    users: merged.users,
    cf: metrics(merged.cf),
    popular: metrics(merged.popular),
  };
}
