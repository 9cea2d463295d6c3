import type { RecommendPipelineConfig } from '../config/pipeline-config.ts';
import { unitCount } from '../plan/plan-units.ts';
import type { RunEstimate } from './estimate-run.ts';
import { type ServingItemShape, servingSweepUnits, servingWriteUnits } from './serving-writes.ts';
import { runUsageOf, type UnitUsage } from './unit-usage.ts';

/**
 * How fast one worker gets through a recommend run's two stages, the figures an estimate
 * assumes. Measured on the pure core in one process (bench/results/recommend.json: 10,000
 * users, 2,500 items, Zipf popularity, 5 power users, explicit cosine, k 40, top 20):
 * - ingest: 282,834 rows read, validated and deduplicated in 1,240 ms = 228,000 rows/s;
 * - similarity: 277,338 interactions' neighbours and top N in 11,316 ms of shards =
 *   24,500 interactions/s, at 519 postings touched per interaction (144.0M work over the
 *   32 shards), which sizes the similarity stage's units (`sharding.targetUnitWork`).
 * Similarity work per interaction grows with how popular the items users hold are (the
 * hot-item cap bounds it): a log more skewed than the bench's costs more than this says.
 */
export const RECOMMEND_THROUGHPUT_ASSUMPTION = {
  ingestRowsPerSecond: 228_000,
  similarityRowsPerSecond: 24_500,
  similarityWorkPerRow: 519,
  source:
    'bench/results/recommend.json (wallMs.readAndDedupe, wallMs.fit.shards, shardCost.workGreedy; one thread, AMD EPYC)',
} as const;

/** Bytes written per interaction: the ingest unit's compact log and the run's index (bench: 25 bytes/row each). */
const STAGED_BYTES_PER_ROW = 50;
/** Bytes of one `recommendations` row in Parquet (ids, score, rank, source, neighbours; compressed). */
const BYTES_PER_RECOMMENDATION = 40;

/** What `sluice cost` measured of a recommend pipeline's inputs. */
export interface RecommendWork {
  /** Interaction rows the planner estimates. */
  readonly rows: number;
  /** Users who will get a list (counted, or bounded, from the inputs). */
  readonly users: number;
  /** Mean characters of the ids read (they size the serving table's items). */
  readonly userIdChars?: number;
  readonly itemIdChars?: number;
}

export interface RecommendEstimateInput {
  readonly config: RecommendPipelineConfig;
  /** The planner's estimate (rows: a recommend record costs 1), which cuts the ingest units. */
  readonly estimatedCost: number;
  readonly work: RecommendWork;
}

/**
 * The usage a recommend run would have: no endpoint; Lambda time of the ingest units
 * (rows at the ingest rate) and of the similarity shards (rows at the similarity rate),
 * one request per unit of each stage; per unit a range read or the index read, its parts
 * and the run store's start and completion; the staged log and index and the
 * `recommendations` rows as stored bytes; and the serving table's request units: one item
 * put per user ({@link servingWriteUnits}), and the sweep's Query and steady-state delete
 * per user ({@link servingSweepUnits}).
 */
export function estimateRecommendUsage(input: RecommendEstimateInput): RunEstimate {
  const { config, work } = input;
  const rates = RECOMMEND_THROUGHPUT_ASSUMPTION;
  const ingestUnits = unitCount(input.estimatedCost, config).units;
  const shards = Math.max(
    1,
    Math.ceil((work.rows * rates.similarityWorkPerRow) / config.sharding.targetUnitWork),
  );
  const ingest = stageUsage(config, ingestUnits, work.rows / rates.ingestRowsPerSecond, {
    s3Gets: 1,
    s3Puts: 2,
    bytes: work.rows * STAGED_BYTES_PER_ROW,
  });
  const similarity = stageUsage(config, shards, work.rows / rates.similarityRowsPerSecond, {
    s3Gets: 2,
    s3Puts: 2,
    bytes: work.users * config.output.topN * BYTES_PER_RECOMMENDATION,
  });
  const usage = runUsageOf(
    [
      ...Array.from({ length: ingestUnits }, () => ({ attempts: 1, usage: ingest })),
      ...Array.from({ length: shards }, () => ({ attempts: 1, usage: similarity })),
    ],
    undefined,
  );
  const shape: ServingItemShape = {
    pipeline: config.name,
    topN: config.output.topN,
    ...(work.userIdChars === undefined ? {} : { userIdChars: work.userIdChars }),
    ...(work.itemIdChars === undefined ? {} : { itemIdChars: work.itemIdChars }),
  };
  const servingWrites = servingWriteUnits(work.users, shape);
  const sweep = servingSweepUnits(work.users, shape);
  return {
    usage: {
      ...usage,
      dynamoWrites: usage.dynamoWrites + servingWrites + sweep.deletes,
      dynamoReads: usage.dynamoReads + sweep.reads,
      servingWrites,
      usersWritten: work.users,
    },
    units: ingestUnits + shards,
    work: { amount: work.rows, unit: 'interactions' },
    throughputPerSecond: rates.ingestRowsPerSecond,
    hosting: 'none',
  };
}

/** One unit's usage in a stage whose `seconds` of one worker's time are spread over `units`. */
function stageUsage(
  config: RecommendPipelineConfig,
  units: number,
  seconds: number,
  io: { readonly s3Gets: number; readonly s3Puts: number; readonly bytes: number },
): UnitUsage {
  return {
    workerMs: (seconds * 1000) / units,
    memoryMiB: config.workers.memoryMiB,
    endpointFirstAt: 0,
    endpointLastAt: 0,
    endpointCallMs: 0,
    s3Gets: io.s3Gets,
    s3Puts: io.s3Puts,
    bytesPut: io.bytes / units,
    queueSends: 0,
    runStoreReads: 0,
    runStoreWrites: 2,
  };
}
