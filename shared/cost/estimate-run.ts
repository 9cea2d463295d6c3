import { cooldownAfterRelease } from '../capacity/cooldown.ts';
import { nextCronTick } from '../capacity/next-tick.ts';
import type { CapacityConfig, PipelineConfig } from '../config/pipeline-config.ts';
import { EMBEDDINGS_HOLD_DAYS, ENTRY_REFRESH_DAYS } from '../incremental/entry-refresh.ts';
import { unitCount } from '../plan/plan-units.ts';
import { coldStartFor } from './cold-start.ts';
import { DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES, dynamoItemBytes } from './dynamo-item-size.ts';
import { MISSING_KEY_READ_UNITS, readRequestUnits, writeRequestUnits } from './dynamo-request-units.ts';
import { typicalDocIndexItem } from './dynamo-storage.ts';
import { endpointHostingOf } from './endpoint-hosting.ts';
import type { RegionPrices } from './pricing.ts';
import type { EndpointHosting, RunUsage } from './run-cost.ts';
import { DAYS_PER_MONTH, ScheduleUnsupported } from './schedule-runs.ts';
import { runUsageOf, type UnitUsage } from './unit-usage.ts';

/**
 * Endpoint throughput a cost estimate assumes when none is given. Neither is a measured
 * SageMaker figure (no GPU run has replaced them yet): pass `--tokens-per-second` /
 * `--rows-per-second` from a run of your own, or set `capacity.workPerSecondPerCopy`.
 *
 * The embedding figure is the simulated GPU of docs/sizing.md. It is checked against a
 * published benchmark: michaelfeil/infinity's docs/docs/benchmarking.md measured
 * huggingface/TEI (candle, flash-bert) at 0.54 requests/s of 115,000 tokens = 62,100
 * tokens/s for BAAI/bge-large-en-v1.5 (bert-large, 24 layers x 1024) on one NVIDIA L4;
 * bge-small-en-v1.5 (12 layers x 384) needs about 1/14 of its FLOPs per token, and an A10G
 * (ml.g5.xlarge) has about the L4's fp16 throughput and twice its memory bandwidth. So
 * 336,785 tokens/s (5.4x the bert-large figure, not 14x) is a conservative figure for a
 * BERT-small on one copy; it is not a measurement.
 */
export const THROUGHPUT_ASSUMPTIONS = {
  /** Padded tokens/s of one embedding copy: the simulated GPU of docs/sizing.md. */
  tokensPerSecond: 336_785,
  tokensPerSecondSource:
    'docs/sizing.md simulated GPU; checked against https://github.com/michaelfeil/infinity/blob/main/docs/docs/benchmarking.md (TEI, bge-large on an L4: 62,100 tokens/s; bge-small needs ~1/14 the FLOPs per token)',
  /** Rows/s of one scoring copy, serverless call or worker: the XGBoost JSON evaluator, one thread (docs/scoring.md). */
  rowsPerSecond: 143_670,
  rowsPerSecondSource:
    'bench/results/scoring.json (2026-12-07): the XGBoost JSON evaluator, one thread, 200 trees of depth 6 (0.96x XGBoost 1.7.4 on the same rows)',
} as const;

/** A per-token price users compare a run with (issue 14), with where it was read. */
export interface PerTokenAnchor {
  readonly name: string;
  readonly usdPerMillionTokens: number;
  readonly source: string;
  readonly readOn: string;
}

/** Per-token prices users compare a run with (issue 14). */
export const PER_TOKEN_ANCHORS: readonly PerTokenAnchor[] = [
  {
    name: 'OpenAI batch API, text-embedding-3-small',
    // $0.02 per 1M tokens, and the Batch API bills half of it.
    usdPerMillionTokens: 0.01,
    source:
      'https://openai.com/api/pricing/ (text-embedding-3-small $0.02 per 1M, quoted at https://gigagpu.com/?p=15050; Batch API 50% off)',
    readOn: '2026-12-07',
  },
  {
    name: 'Bedrock batch inference, Titan Text Embeddings V2',
    // On-demand $0.02 per 1M input tokens (amazon.titan-embed-text-v2:0); batch takes 50% off.
    usdPerMillionTokens: 0.01,
    source:
      'https://aws.amazon.com/bedrock/pricing/ (Titan Text Embeddings V2 on demand $0.02 per 1M tokens, as public pricing tables quote it); batch 50% off: https://www.wring.co/blog/aws-bedrock-batch-inference-guide',
    readOn: '2026-12-07',
  },
];

/**
 * SageMaker Batch Transform's price per 1M tokens for a job: it starts an instance for the
 * job and stops it after, so the job pays the cold start and the work at the instance's
 * hourly rate (priced here at the real-time rate of the same type; an assumption).
 */
export function batchTransformUsdPerMillionTokens(
  tokens: number,
  tokensPerSecond: number,
  hourlyUsd: number,
  coldStartSeconds: number,
): number {
  if (tokens <= 0) return 0;
  const seconds = coldStartSeconds + tokens / tokensPerSecond;
  return ((seconds / 3600) * hourlyUsd) / (tokens / 1_000_000);
}

export interface RunEstimateInput {
  readonly config: PipelineConfig;
  /** The planner's estimate of the run's work: tokens (embed) or rows x features (score). */
  readonly estimatedCost: number;
  /** Throughput of one endpoint copy. @default THROUGHPUT_ASSUMPTIONS */
  readonly tokensPerSecond?: number;
  readonly rowsPerSecond?: number;
  /** @default the instance type's figure, {@link coldStartFor} */
  readonly coldStartSeconds?: number;
  /**
   * Documents the run reads (embed), when counted: each is one chunk index entry. Without
   * it one document per chunk is taken, the most the chunks can be (an upper bound of the
   * index's requests and storage).
   */
  readonly estimatedDocuments?: number;
}

/** What the estimate assumed, printed beside it. */
export interface RunEstimate {
  readonly usage: RunUsage;
  readonly units: number;
  /** Tokens (embed), rows (score), completion tokens (generate) or interactions (recommend) the estimate priced. */
  readonly work: {
    readonly amount: number;
    readonly unit: 'tokens' | 'rows' | 'completion tokens' | 'interactions';
  };
  readonly throughputPerSecond: number;
  readonly hosting: EndpointHosting['kind'] | 'none';
  /** An incremental embed pipeline's chunk index: its share of the requests and storage. */
  readonly chunkIndex?: ChunkIndexEstimate;
  /** Run-scoped instance hosting: how the endpoint seconds were made up. */
  readonly capacity?: {
    readonly mode: CapacityConfig['mode'];
    readonly copies: number;
    readonly busySeconds: number;
    readonly coldStartSeconds: number;
    readonly cooldownSeconds: number;
  };
}

/**
 * The copies a run asks for (the rule of shared/capacity): enough for its work within
 * `targetRunSeconds` at the per-copy rate, at least 1 and at most `maxCopies`.
 */
export function estimatedCopies(work: number, capacity: CapacityConfig, perCopyPerSecond: number): number {
  const perCopy = capacity.workPerSecondPerCopy ?? perCopyPerSecond;
  if (!Number.isFinite(work) || work <= 0) return 1;
  return Math.max(1, Math.min(capacity.maxCopies, Math.ceil(work / (perCopy * capacity.targetRunSeconds))));
}

/**
 * The usage a run would have, from the planner's estimate, by where its model runs:
 * - `instance`, run-scoped: `copies` copies billed from the lease (a cold start) through
 *   the work (spread over the copies) to the end of `cooldownSeconds`; always-on: the
 *   busy window only, as a run is charged today (the idle hours belong to no run);
 * - `serverless`: the work's call time x `model.serverless.memoryMiB`, and its bytes;
 * - `in-worker`: no endpoint; the workers evaluate the model (their CPU time is Lambda's).
 * The run's units are spread over `workers.maxConcurrency` workers that live as long as the
 * endpoint is busy (they wait on it), and per unit the requests a unit makes (one range
 * read, its parts, the id list, the run store's start and completion). Output bytes: 4 per
 * dimension per chunk (embed) or 64 per row (score); an incremental embed pipeline's chunk
 * index entries in DynamoDB besides, one per document, and its lookups and puts in request
 * units ({@link chunkIndexEstimate}).
 */
export function estimateRunUsage(input: RunEstimateInput): RunEstimate {
  const { config } = input;
  const hosting = endpointHostingOf(config);
  const work = estimatedWork(input);
  const copies = work.capacity ? estimatedCopies(work.amount, work.capacity, work.throughput) : 1;
  // Wall time the work keeps the model busy (copies share it).
  const busySeconds = work.amount / work.throughput / copies;
  const { units } = unitCount(input.estimatedCost, config);
  const unitUsage = averageUnitUsage(config, hosting, work, units, busySeconds);
  const usage = runUsageOf(
    Array.from({ length: units }, () => ({ attempts: 1, usage: unitUsage })),
    hosting,
  );
  const held = endpointHold(input, hosting, work.capacity, copies, busySeconds);
  return {
    usage: { ...usage, endpointSeconds: held.endpointSeconds },
    units,
    work: { amount: work.amount, unit: work.unit },
    throughputPerSecond: work.throughput,
    hosting: hosting?.kind ?? 'none',
    ...(work.chunkIndex && { chunkIndex: work.chunkIndex }),
    ...(held.capacity && { capacity: held.capacity }),
  };
}

/**
 * Rows of an `embeddings` part's row group (EMBEDDING_ROW_GROUP, shared/output/parquet-tables.ts):
 * a reused vector is read with the rest of its row group's rows asked for.
 */
export const EMBEDDING_ROWS_PER_GROUP = 2048;

/**
 * S3 requests to open an earlier run's part for its vectors (PartVectors,
 * shared/jobs/embed/part-vectors.ts): its size (a HEAD) and one 64 KiB read of its tail,
 * which holds an `embeddings` part's whole footer. A unit opens each part once (it keeps
 * the footers of the last 8 parts it read).
 */
export const PART_FOOTER_REQUESTS = 2;

/**
 * Ranged GETs per row group read for vectors, at most: its `chunk_id`, `text_sha256` and
 * `embedding` column chunks (hyparquet joins chunks within 8 KB of each other up to 2 MB,
 * and a group's vectors are ~3 MB: two reads), and the offset index when under half the
 * group is asked for. Measured on a part of 8,192 rows of random 384-float vectors through
 * PartVectors: a window of 2,048 rows on one group 2 GETs, across two groups 3.
 */
export const ROW_GROUP_REQUESTS = 3;

/** The chunk index's share of a run, for an estimate (`incremental.enabled`, embed). */
export interface ChunkIndexEstimate {
  readonly chunks: number;
  /** Entries: one per document. */
  readonly documents: number;
  /** Whether the documents were counted; if not, one per chunk (an upper bound). */
  readonly documentsCounted: boolean;
  /** A document's item as DynamoDB sizes it ({@link typicalDocIndexItem}), without the storage overhead. */
  readonly itemBytes: number;
  /** BatchGetItem: 0.5 a document not found, or 0.5 per 4 KB of one found. */
  readonly readUnits: number;
  /**
   * Documents whose entry the run writes: every one on a first embedding; on an unchanged
   * re-run the ones whose entry's run has turned ENTRY_REFRESH_DAYS old, one in
   * ENTRY_REFRESH_DAYS on average for a run a day (shared/incremental/entry-refresh.ts).
   */
  readonly rewrittenDocuments: number;
  /** One put per document rewritten, ceil(item bytes / 1 KB) write units each. */
  readonly writeUnits: number;
  /** Billed bytes the entries add: each new document's item and 100 bytes of overhead. */
  readonly storageBytes: number;
  /** S3 requests reading unchanged chunks' vectors from the parts that hold them. */
  readonly s3Gets: number;
  /**
   * Bytes of a run's `embeddings` parts gc keeps up to EMBEDDINGS_HOLD_DAYS after the run
   * started, superseded or not, as entries may still point at them ({@link embeddingPartBytes};
   * 0 when the row size is not given).
   */
  readonly heldPartBytes: number;
  /** Days gc holds them (EMBEDDINGS_HOLD_DAYS): what a price of the held bytes multiplies. */
  readonly heldPartDays: number;
}

/**
 * What a {@link ChunkIndexEstimate} costs at `prices` (unrounded): its DynamoDB reads and
 * writes, the S3 GETs reading vectors back, and the parts gc holds for `heldPartDays` as
 * that share of a month of S3 Standard. The storage its entries add (`storageBytes`) is
 * priced with the run's storage, not here.
 */
export function chunkIndexUsd(index: ChunkIndexEstimate, prices: RegionPrices) {
  const readUsd = index.readUnits * prices.dynamoReadRequestUnit.usd;
  const writeUsd = index.writeUnits * prices.dynamoWriteRequestUnit.usd;
  const s3GetsUsd = (index.s3Gets / 1000) * prices.s3GetPer1000.usd;
  const heldPartsUsd =
    (index.heldPartBytes / 1024 ** 3) * prices.s3StandardGbMonth.usd * (index.heldPartDays / DAYS_PER_MONTH);
  return {
    readUsd,
    writeUsd,
    s3GetsUsd,
    heldPartsUsd,
    indexUsd: readUsd + writeUsd + s3GetsUsd + heldPartsUsd,
  };
}

/**
 * Bytes a chunk's row takes in an `embeddings` part, at most: its float32 vector, its text
 * (about 4 bytes a token, at `maxTokens`, before Parquet's compression) and ~200 bytes of
 * ids, offsets, the 64-hex fingerprint, model and source key. 384 floats at 256 tokens:
 * 2,760 bytes.
 */
export function embeddingPartBytes(dimension: number, maxTokens: number): number {
  return dimension * 4 + maxTokens * 4 + 200;
}

/**
 * The chunk index's requests and storage for a run over `chunks` chunks of `documents`
 * documents (one per chunk when not given: the most there can be, and each item is billed
 * at least 1 write unit, so an upper bound). Every document the run reads is looked up.
 * - `unchanged: false` (a first embedding, as the estimate prices every run): each lookup
 *   misses, each item is new and put, no vector is read back;
 * - `unchanged: true` (a re-run of the same text, a run a day): each lookup finds its item;
 *   a document carried whole keeps its entry until the entry's run is ENTRY_REFRESH_DAYS
 *   old, so one in ENTRY_REFRESH_DAYS is put again, replacing an item of the same size (no
 *   storage added); the vectors are read back from
 *   the parts that hold them (the same text in the same order: one earlier part a unit):
 *   each of the `units` opens it ({@link PART_FOOTER_REQUESTS}), and each sort window of
 *   `sortWindow` chunks reads the row groups its rows touch (at most one more than its
 *   rows fill), up to {@link ROW_GROUP_REQUESTS} GETs each: an upper bound.
 */
export function chunkIndexEstimate(input: {
  readonly pipeline: string;
  readonly chunks: number;
  readonly documents?: number | undefined;
  readonly sortWindow: number;
  readonly units: number;
  readonly unchanged: boolean;
  /** A chunk's row in the `embeddings` part ({@link embeddingPartBytes}), to size the held parts. */
  readonly rowBytes?: number;
}): ChunkIndexEstimate {
  const { chunks } = input;
  const counted = input.documents !== undefined && input.documents > 0;
  const documents = counted ? Math.min(input.documents as number, chunks) : chunks;
  const itemBytes = dynamoItemBytes(
    typicalDocIndexItem(input.pipeline, documents > 0 ? chunks / documents : 1),
  );
  const windows = Math.ceil(chunks / Math.max(1, input.sortWindow));
  const rewrittenDocuments = input.unchanged ? Math.ceil(documents / ENTRY_REFRESH_DAYS) : documents;
  const groupsPerWindow = Math.ceil(Math.min(chunks, input.sortWindow) / EMBEDDING_ROWS_PER_GROUP) + 1;
  return {
    chunks,
    documents,
    documentsCounted: counted,
    itemBytes,
    readUnits: documents * (input.unchanged ? readRequestUnits(itemBytes) : MISSING_KEY_READ_UNITS),
    rewrittenDocuments,
    writeUnits: rewrittenDocuments * writeRequestUnits(itemBytes),
    storageBytes: input.unchanged ? 0 : documents * (itemBytes + DYNAMO_ITEM_STORAGE_OVERHEAD_BYTES),
    s3Gets:
      input.unchanged && chunks > 0
        ? Math.max(1, input.units) * PART_FOOTER_REQUESTS + windows * groupsPerWindow * ROW_GROUP_REQUESTS
        : 0,
    heldPartBytes: chunks * (input.rowBytes ?? 0),
    heldPartDays: EMBEDDINGS_HOLD_DAYS,
  };
}

/** A run's work by kind: tokens to embed, or rows to score (whose planned cost counts rows x features). */
export interface EstimatedWork {
  readonly amount: number;
  readonly unit: 'tokens' | 'rows';
  /** Work per second one copy (or the workers) gets through. */
  readonly throughput: number;
  /** Bytes sent to the model: ~4 per token, or ~8 per CSV feature value. */
  readonly sentBytes: number;
  /** Bytes written: 4 per dimension per chunk (embed), 64 per row (score). */
  readonly outputBytes: number;
  /** Bytes of billed DynamoDB storage the run adds: the chunk index's new entries. */
  readonly dynamoBytes: number;
  /**
   * The chunk index (`incremental.enabled`, embed), every chunk new as the estimate embeds
   * every chunk ({@link chunkIndexEstimate}, `unchanged: false`).
   */
  readonly chunkIndex?: ChunkIndexEstimate;
  /** The capacity config when instance copies are leased for the run. */
  readonly capacity: CapacityConfig | undefined;
}

export function estimatedWork(input: RunEstimateInput): EstimatedWork {
  const { config, estimatedCost } = input;
  if (config.kind === 'embed') {
    const chunks = Math.ceil(estimatedCost / config.chunking.maxTokens);
    const index = config.incremental.enabled
      ? chunkIndexEstimate({
          pipeline: config.name,
          chunks,
          documents: input.estimatedDocuments,
          sortWindow: config.batching.sortWindow,
          units: unitCount(estimatedCost, config).units,
          unchanged: false,
          rowBytes: embeddingPartBytes(config.endpoint.dimension, config.chunking.maxTokens),
        })
      : undefined;
    return {
      amount: estimatedCost,
      unit: 'tokens',
      throughput: input.tokensPerSecond ?? THROUGHPUT_ASSUMPTIONS.tokensPerSecond,
      sentBytes: estimatedCost * 4,
      outputBytes: chunks * config.endpoint.dimension * 4,
      dynamoBytes: index?.storageBytes ?? 0,
      ...(index && { chunkIndex: index }),
      capacity: config.endpoint.capacity,
    };
  }
  const features = config.kind === 'score' ? Math.max(1, config.featureSpec.features.length) : 1;
  const rows = config.kind === 'score' ? estimatedCost / features : 0;
  return {
    amount: rows,
    unit: 'rows',
    throughput: input.rowsPerSecond ?? THROUGHPUT_ASSUMPTIONS.rowsPerSecond,
    sentBytes: rows * features * 8,
    outputBytes: rows * 64,
    dynamoBytes: 0,
    capacity:
      config.kind === 'score' && config.model.hosting === 'instance' ? config.model.capacity : undefined,
  };
}

/**
 * One unit's share of the run: workers spread over `workers.maxConcurrency` that wait on
 * the endpoint while it is busy (in-worker scoring: their own CPU time instead), and the
 * requests a unit makes.
 */
function averageUnitUsage(
  config: PipelineConfig,
  hosting: EndpointHosting | undefined,
  work: EstimatedWork,
  units: number,
  busySeconds: number,
): UnitUsage {
  const inWorker = hosting?.kind === 'in-worker';
  // The calls' summed time, whatever the copies.
  const callSeconds = work.amount / work.throughput;
  const workers = Math.min(units, config.workers.maxConcurrency);
  const workerSeconds = inWorker ? callSeconds : busySeconds * workers;
  const perUnit = (total: number) => total / units;
  return {
    workerMs: perUnit(workerSeconds * 1000),
    memoryMiB: config.workers.memoryMiB,
    endpointFirstAt: 0,
    endpointLastAt: 0,
    endpointCallMs: inWorker ? 0 : perUnit(callSeconds * 1000),
    endpointBytes: inWorker ? 0 : perUnit(work.sentBytes),
    s3Gets: 1 + perUnit(work.chunkIndex?.s3Gets ?? 0),
    s3Puts: 3,
    bytesPut: perUnit(work.outputBytes),
    queueSends: 0,
    runStoreReads: 0,
    runStoreWrites: 2,
    ...(work.dynamoBytes > 0 ? { dynamoBytesAdded: perUnit(work.dynamoBytes) } : {}),
    ...(work.chunkIndex
      ? {
          chunkIndexReadUnits: perUnit(work.chunkIndex.readUnits),
          chunkIndexWriteUnits: perUnit(work.chunkIndex.writeUnits),
        }
      : {}),
  };
}

/**
 * Endpoint seconds billed: run-scoped copies from the lease (a cold start) through the
 * work to the end of the cooldown; always-on, the busy window only; none off `instance`.
 */
function endpointHold(
  input: RunEstimateInput,
  hosting: EndpointHosting | undefined,
  capacity: CapacityConfig | undefined,
  copies: number,
  busySeconds: number,
): { readonly endpointSeconds: number; readonly capacity?: RunEstimate['capacity'] } {
  const coldStartSeconds =
    input.coldStartSeconds ?? (hosting?.kind === 'instance' ? coldStartFor(hosting.instanceType).seconds : 0);
  const runScoped = capacity !== undefined && capacity.mode === 'run-scoped';
  const cooldownSeconds = runScoped
    ? estimatedCooldownSeconds(input.config, capacity, coldStartSeconds + busySeconds)
    : 0;
  if (hosting?.kind !== 'instance') return { endpointSeconds: 0 };
  const endpointSeconds = runScoped
    ? copies * (coldStartSeconds + busySeconds + cooldownSeconds)
    : busySeconds * copies;
  if (!capacity) return { endpointSeconds };
  const startSeconds = runScoped ? coldStartSeconds : 0;
  const made = { mode: capacity.mode, copies, busySeconds, coldStartSeconds: startSeconds, cooldownSeconds };
  return { endpointSeconds, capacity: made };
}

/** Scheduled runs are looked for this far ahead of a reference time (a weekly schedule ticks within it). */
const SCHEDULE_LOOKAHEAD_SECONDS = 8 * 86_400;

/**
 * The cooldown a run would be charged, by the rule finalize applies
 * (`cooldownAfterRelease`, shared/capacity/cooldown.ts), with no back-to-back history (an
 * estimate has none): `always` keeps it; `auto` keeps it only when the pipeline's own
 * schedule ticks again within `cooldownSeconds` of a run's release (the release taken as
 * its first tick after a fixed reference time plus the run's duration). A pipeline without
 * a schedule is charged none: its first back-to-back run pays a second cold start instead,
 * and the ones after it find the copies kept.
 */
export function estimatedCooldownSeconds(
  config: PipelineConfig,
  capacity: CapacityConfig,
  runSeconds: number,
): number {
  const schedules = config.schedule
    ? [{ expression: config.schedule.expression, timezone: config.schedule.timezone }]
    : [];
  let releasedAt = COOLDOWN_REFERENCE_MS + runSeconds * 1000;
  const [schedule] = schedules;
  if (schedule && capacity.cooldown === 'auto') {
    try {
      const tick = nextCronTick(schedule, new Date(COOLDOWN_REFERENCE_MS), SCHEDULE_LOOKAHEAD_SECONDS);
      if (tick) releasedAt = tick.getTime() + runSeconds * 1000;
    } catch (error) {
      // A rate, or an expression nextCronTick cannot read: cooldownAfterRelease decides on it.
      if (!(error instanceof ScheduleUnsupported)) throw error;
    }
  }
  const decision = cooldownAfterRelease({ capacity, schedules, state: {}, releasedAt });
  return decision.keep ? capacity.cooldownSeconds : 0;
}

/** A fixed Monday 00:00 UTC, so an estimate does not change with the day it is made. */
const COOLDOWN_REFERENCE_MS = Date.UTC(2026, 0, 5);
