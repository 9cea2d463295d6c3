import type {
  EmbedPipelineConfig,
  GeneratePipelineConfig,
  PipelineConfig,
  RecommendPipelineConfig,
} from '../../shared/config/pipeline-config.ts';
import { coldStartFor } from '../../shared/cost/cold-start.ts';
import {
  anchorUsd,
  estimateGenerateUsage,
  type GenerateWork,
  LLM_BATCH_ANCHORS,
  LLM_THROUGHPUT_ASSUMPTION,
  promptCacheStorageBytesPerRecord,
} from '../../shared/cost/estimate-generate.ts';
import {
  estimateRecommendUsage,
  RECOMMEND_THROUGHPUT_ASSUMPTION,
  type RecommendWork,
} from '../../shared/cost/estimate-recommend.ts';
import {
  batchTransformUsdPerMillionTokens,
  type ChunkIndexEstimate,
  chunkIndexEstimate,
  chunkIndexUsd,
  embeddingPartBytes,
  estimateRunUsage,
  PER_TOKEN_ANCHORS,
  type RunEstimate,
  THROUGHPUT_ASSUMPTIONS,
} from '../../shared/cost/estimate-run.ts';
import { instanceHourPrice, pricesFor } from '../../shared/cost/pricing.ts';
import { type RunCost, type RunUsage, runCost } from '../../shared/cost/run-cost.ts';
import type { CommandIo } from './io.ts';

/** What `sluice cost` is asked to price, once its flags are checked. */
export interface CostInputs {
  readonly region: string;
  readonly tokensPerSecond: number | undefined;
  readonly rowsPerSecond: number | undefined;
}

/** The runs of a month and where the number came from. */
export interface MonthSchedule {
  readonly runs: number;
  readonly expression: string;
}

/** The work the planner's sampling estimated over the inputs. */
export interface SampledWork {
  readonly files: number;
  readonly estimatedCost: number;
  /**
   * The records the inputs hold (an embed run's documents): `counted` when every file's
   * were (read whole, a Parquet footer's rows), else scaled from the sample's records per
   * byte. Absent when a file's sample found none to scale.
   */
  readonly documents?: { readonly count: number; readonly counted: boolean };
}

export type CostReport = ReturnType<typeof costReport>;

/** The region's prices and the endpoint instance's hourly rate; throws for a region without sourced prices. */
export interface RegionPricing {
  readonly prices: ReturnType<typeof pricesFor>;
  readonly hourly: number;
}

export function regionPricing(region: string, config: PipelineConfig): RegionPricing {
  const prices = pricesFor(region);
  const instanceType = instanceTypeOf(config);
  // A kind that calls no model (recommend) has no instance to price.
  return { prices, hourly: instanceType === undefined ? 0 : instanceHourPrice(region, instanceType).usd };
}

const instanceTypeOf = (config: PipelineConfig): string | undefined =>
  config.kind === 'embed' || config.kind === 'generate'
    ? config.endpoint.instanceType
    : config.kind === 'score'
      ? config.model.instanceType
      : undefined;

/** The estimate priced: per run, per month when scheduled, per token anchors, and the always-on day. */
export function costReport(
  request: CostInputs,
  config: PipelineConfig,
  schedule: MonthSchedule | undefined,
  work: SampledWork,
  { prices, hourly }: RegionPricing,
) {
  const { region, tokensPerSecond, rowsPerSecond } = request;
  const estimate = estimateRunUsage({
    config,
    estimatedCost: work.estimatedCost,
    ...(work.documents === undefined ? {} : { estimatedDocuments: work.documents.count }),
    ...(tokensPerSecond === undefined ? {} : { tokensPerSecond }),
    ...(rowsPerSecond === undefined ? {} : { rowsPerSecond }),
  });
  const perRun = runCost(estimate.usage, prices, { region, estimate: true });
  const tokens = estimate.work.unit === 'tokens' ? estimate.work.amount : 0;
  const monthly = schedule === undefined ? undefined : { ...schedule, ...perMonthOf(perRun, schedule.runs) };
  return {
    pipeline: config.name,
    region,
    files: work.files,
    work: estimate.work,
    units: estimate.units,
    hosting: estimate.hosting,
    ...(estimate.capacity ? { capacity: estimate.capacity } : {}),
    throughputPerSecond: estimate.throughputPerSecond,
    throughputSource: throughputSourceOf(request, config),
    perRun,
    ...(estimate.chunkIndex && config.kind === 'embed'
      ? {
          chunkIndex: chunkIndexShare(estimate.chunkIndex, work.documents, prices),
          unchangedRerun: unchangedRerunOf(config, estimate.chunkIndex, estimate.units, prices),
        }
      : {}),
    ...(monthly ? { runsPerMonth: monthly.runs, perMonth: monthly } : {}),
    perMillionTokens: tokens > 0 ? round6(perRun.total / (tokens / 1_000_000)) : undefined,
    anchors: estimate.work.unit === 'tokens' ? anchorsOf(config, estimate, hourly, monthly?.runs) : [],
    // Today's endpoints are always on: what one costs a day whatever runs, beside the run's share.
    alwaysOnPerDay: Math.round(hourly * 24 * 1e6) / 1e6,
  };
}

/**
 * The chunk index's share of an incremental embed run: its entries (one per document; one
 * per chunk when the documents are not counted, an upper bound), how the documents were
 * known (`documentsFrom`: `exact`, `sampled`, or `upper bound`), its request units and what
 * they cost within `requests`, and its entries' storage within `storage`.
 */
function chunkIndexShare(
  index: ChunkIndexEstimate,
  documents: SampledWork['documents'],
  prices: RegionPricing['prices'],
) {
  const documentsFrom: 'exact' | 'sampled' | 'upper bound' = !index.documentsCounted
    ? 'upper bound'
    : documents?.counted
      ? 'exact'
      : 'sampled';
  return {
    ...index,
    documentsFrom,
    requestsUsd: round6(
      index.readUnits * prices.dynamoReadRequestUnit.usd +
        index.writeUnits * prices.dynamoWriteRequestUnit.usd,
    ),
    storageUsd: round6((index.storageBytes / 1024 ** 3) * prices.dynamoStandardGbMonth.usd),
  };
}

/**
 * What the index costs when the same text comes again (a run a day): every document looked
 * up and found, one entry in ENTRY_REFRESH_DAYS put again, the vectors read back from the
 * parts that hold them, and those parts kept by gc for EMBEDDINGS_HOLD_DAYS
 * (`chunkIndexEstimate` with `unchanged`). Deployed, such a run raises no GPU: an
 * incremental run's copies come up only for a unit with chunks to embed (docs/capacity.md,
 * "Copies on demand"), so its endpoint part is $0.
 */
function unchangedRerunOf(
  config: EmbedPipelineConfig,
  first: ChunkIndexEstimate,
  units: number,
  prices: RegionPricing['prices'],
) {
  const index = chunkIndexEstimate({
    pipeline: config.name,
    chunks: first.chunks,
    documents: first.documentsCounted ? first.documents : undefined,
    sortWindow: config.batching.sortWindow,
    units,
    unchanged: true,
    rowBytes: embeddingPartBytes(config.endpoint.dimension, config.chunking.maxTokens),
  });
  const { readUsd, writeUsd, s3GetsUsd, heldPartsUsd, indexUsd } = chunkIndexUsd(index, prices);
  return {
    endpointUsd: 0,
    readUnits: index.readUnits,
    rewrittenDocuments: index.rewrittenDocuments,
    writeUnits: index.writeUnits,
    s3Gets: index.s3Gets,
    heldPartBytes: index.heldPartBytes,
    heldPartDays: index.heldPartDays,
    requestsUsd: round6(readUsd + writeUsd + s3GetsUsd),
    heldPartsUsd: round6(heldPartsUsd),
    indexUsd: round6(indexUsd),
  };
}

function throughputSourceOf(request: CostInputs, config: PipelineConfig): string {
  if (request.tokensPerSecond ?? request.rowsPerSecond) return 'given';
  return config.kind === 'embed'
    ? `assumed: ${THROUGHPUT_ASSUMPTIONS.tokensPerSecond} padded tokens/s per copy (${THROUGHPUT_ASSUMPTIONS.tokensPerSecondSource})`
    : `assumed: ${THROUGHPUT_ASSUMPTIONS.rowsPerSecond} rows/s (${THROUGHPUT_ASSUMPTIONS.rowsPerSecondSource})`;
}

/** The per-token services to compare with, and Batch Transform on the same instance, priced for this run. */
function anchorsOf(config: PipelineConfig, estimate: RunEstimate, hourly: number, runs: number | undefined) {
  const instanceType = instanceTypeOf(config);
  const tokens = estimate.work.amount;
  // The same start-up as a run-scoped copy of the type: container caching is documented for
  // endpoints, so a job may start slower; the comparison is left in Batch Transform's favour.
  const coldStart = coldStartFor(instanceType ?? '');
  return [
    ...PER_TOKEN_ANCHORS.map((a) => ({
      name: a.name,
      usdPerMillionTokens: a.usdPerMillionTokens,
      source: a.source,
    })),
    {
      name: `SageMaker Batch Transform, one ${instanceType} started for the job (${coldStart.seconds} s to start)`,
      usdPerMillionTokens: round6(
        batchTransformUsdPerMillionTokens(tokens, estimate.throughputPerSecond, hourly, coldStart.seconds),
      ),
      source: `${instanceType} at $${hourly}/h (its real-time rate), start-up ${coldStart.source}`,
    },
  ].map((a) => ({
    ...a,
    perRun: round6((tokens / 1_000_000) * a.usdPerMillionTokens),
    ...(runs !== undefined ? { perMonth: round6((tokens / 1_000_000) * a.usdPerMillionTokens * runs) } : {}),
  }));
}

/** The report in words, one line a component. */
export function printCostReport(io: CommandIo, config: PipelineConfig, report: CostReport): void {
  const { perRun, perMonth: monthly, work } = report;
  io.out(
    `${config.name}: ${report.files} file(s), about ${Math.round(work.amount).toLocaleString('en-US')} ${work.unit} in ${report.units} unit(s), priced in ${report.region} (estimate)`,
  );
  io.out(
    `  throughput ${report.throughputPerSecond.toLocaleString('en-US')}/s per copy (${report.throughputSource === 'given' ? 'given' : `assumed, not measured: ${config.kind === 'embed' ? '--tokens-per-second' : '--rows-per-second'} to replace it; its source is in --json`})`,
  );
  io.out(`  endpoint  ${usd(perRun.endpoint)}  (${endpointLine(report, perRun.usage)})`);
  io.out(`  lambda    ${usd(perRun.lambda)}  (${perRun.usage.lambdaGbSeconds.toFixed(1)} GB-s)`);
  io.out(`  requests  ${usd(perRun.requests)}`);
  const index = report.chunkIndex;
  if (index)
    io.out(
      `  index     ${usd(index.requestsUsd)} of the requests: ${count(index.documents)} document entries (${DOCUMENTS_FROM[index.documentsFrom]}), ${index.readUnits.toLocaleString('en-US')} read + ${count(index.writeUnits)} write units`,
    );
  io.out(
    `  storage   ${usd(perRun.storage)}  (${storageLine(perRun.usage, config.kind === 'embed' ? 'the chunk index entries' : 'items')})`,
  );
  io.out(
    `  total     ${usd(perRun.total)} per run${report.perMillionTokens === undefined ? '' : ` (${usd(report.perMillionTokens)} per 1M tokens)`}`,
  );
  const rerun = report.unchangedRerun;
  if (rerun)
    io.out(
      `  re-run    ${usd(rerun.indexUsd)} for the index when the same text comes again, and no GPU deployed (copies on demand): ${rerun.readUnits.toLocaleString('en-US')} read + ${count(rerun.writeUnits)} write units (1 entry in 7 refreshed), ${count(rerun.s3Gets)} S3 GETs for the vectors, parts held ${rerun.heldPartDays} days; plus the workers and queues`,
    );
  if (monthly) {
    io.out(
      `  a month   ${usd(monthly.total)} for ${monthly.runs.toFixed(1)} runs (${monthly.expression}): endpoint ${usd(monthly.endpoint)}, lambda ${usd(monthly.lambda)}, requests ${usd(monthly.requests)}, storage ${usd(monthly.storage)}`,
    );
  }
  io.out(
    `  always-on ${usd(report.alwaysOnPerDay)} a day: one ${instanceTypeOf(config)} endpoint kept up around the clock, whatever runs`,
  );
  for (const anchor of report.anchors)
    io.out(
      `  compare   ${usd(anchor.perRun)} per run${'perMonth' in anchor ? `, ${usd(anchor.perMonth ?? 0)} a month` : ''} at ${anchor.name} (${rate(anchor.usdPerMillionTokens)} per 1M tokens)`,
    );
}

/** How the index line says its documents were known. */
const DOCUMENTS_FROM = {
  exact: 'exact: every record counted',
  sampled: 'sampled: records per byte of the planning sample',
  'upper bound': 'one per chunk, an upper bound: documents not counted',
} as const;

const usd = (n: number) => `$${n.toFixed(n >= 1 ? 2 : 6)}`;
/** A price per unit, to four significant digits ($0.01, $0.002805). */
const rate = (n: number) => `$${Number(n.toPrecision(4))}`;

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

/** A month's bill by component: each part times the runs, rounded to the micro-dollar. */
function perMonthOf(perRun: RunCost, runs: number) {
  const endpoint = round6(perRun.endpoint * runs);
  const lambda = round6(perRun.lambda * runs);
  const requests = round6(perRun.requests * runs);
  const storage = round6(perRun.storage * runs);
  return { endpoint, lambda, requests, storage, total: round6(endpoint + lambda + requests + storage) };
}

/** What the endpoint part is made of, in words. */
function endpointLine(estimate: Pick<RunEstimate, 'hosting' | 'capacity'>, usage: RunUsage): string {
  if (estimate.hosting === 'none') return 'none: no model is called';
  if (estimate.hosting === 'in-worker') return 'in-worker: no endpoint, the workers evaluate the model';
  if (estimate.hosting === 'serverless')
    return `serverless: ${(usage.serverlessGbSeconds ?? 0).toFixed(1)} GB-s of inference, ${((usage.endpointBytes ?? 0) / 1e6).toFixed(1)} MB processed`;
  const c = estimate.capacity;
  if (c && c.mode === 'run-scoped')
    return `${c.copies} cop${c.copies === 1 ? 'y' : 'ies'} of ${usage.instanceType}, run-scoped: ${c.coldStartSeconds} s cold start + ${c.busySeconds.toFixed(1)} s busy + ${c.cooldownSeconds} s cooldown`;
  return `${usage.endpointSeconds.toFixed(1)} s of ${usage.instanceType}`;
}

/** What `sluice cost` is asked for a generate pipeline besides the common flags. */
export interface GenerateCostInputs {
  readonly region: string;
  readonly completionTokensPerSecond: number | undefined;
  /** Mean completion tokens per record, when given (else `generation.maxTokens`, the bound). */
  readonly completionTokensPerRecord: number | undefined;
}

export type GenerateCostReport = ReturnType<typeof generateCostReport>;

/**
 * A generate run priced: the LLM endpoint's copies (cold start, completions at the per-copy
 * rate, cooldown), the workers, requests and storage; per 1M tokens; and the batch LLM APIs
 * (OpenAI Batch, Bedrock batch) for the same prompt and completion tokens.
 */
export function generateCostReport(
  request: GenerateCostInputs,
  config: GeneratePipelineConfig,
  schedule: MonthSchedule | undefined,
  sampled: SampledWork,
  work: GenerateWork,
  { prices, hourly }: RegionPricing,
) {
  const { region, completionTokensPerSecond } = request;
  const estimate = estimateGenerateUsage({
    config,
    estimatedCost: sampled.estimatedCost,
    work,
    ...(completionTokensPerSecond === undefined ? {} : { completionTokensPerSecond }),
  });
  const perRun = runCost(estimate.usage, prices, { region, estimate: true });
  const monthly = schedule === undefined ? undefined : { ...schedule, ...perMonthOf(perRun, schedule.runs) };
  const tokens = work.promptTokens + work.completionTokens;
  const runs = monthly?.runs;
  return {
    pipeline: config.name,
    region,
    files: sampled.files,
    records: work.records,
    answerable: work.answerable,
    tokens: {
      prompt: work.promptTokens,
      completion: work.completionTokens,
      completionPerRecord:
        request.completionTokensPerRecord === undefined
          ? `generation.maxTokens (${config.generation.maxTokens}), the bound`
          : `given (${request.completionTokensPerRecord})`,
      estimator: 'estimate-v2 over the rendered messages, plus the chat template markers',
    },
    work: estimate.work,
    units: estimate.units,
    hosting: estimate.hosting,
    instanceType: config.endpoint.instanceType,
    ...(estimate.capacity ? { capacity: estimate.capacity } : {}),
    throughputPerSecond: estimate.throughputPerSecond,
    throughputSource:
      completionTokensPerSecond === undefined
        ? `assumed: ${LLM_THROUGHPUT_ASSUMPTION.completionTokensPerSecond} completion tokens/s per copy (${LLM_THROUGHPUT_ASSUMPTION.source})`
        : 'given',
    perRun,
    // The items the cache keeps in the runs table: a month of them is in `storage`, and each
    // further month bills the same again.
    promptCache: {
      items: work.answerable,
      storageBytesPerItem: promptCacheStorageBytesPerRecord(config, work),
      usdPerMonthKept: round6(
        ((estimate.usage.dynamoBytesStored ?? 0) / 1024 ** 3) * prices.dynamoStandardGbMonth.usd,
      ),
    },
    ...(monthly ? { runsPerMonth: monthly.runs, perMonth: monthly } : {}),
    perMillionTokens: perRun.perMillionTokens,
    anchors: LLM_BATCH_ANCHORS.map((anchor) => {
      const usd = anchorUsd(anchor, work.promptTokens, work.completionTokens);
      return {
        name: anchor.name,
        usdPerMillionPromptTokens: anchor.usdPerMillionPromptTokens,
        usdPerMillionCompletionTokens: anchor.usdPerMillionCompletionTokens,
        // This run's mix of prompt and completion tokens at the anchor's prices.
        usdPerMillionTokens: tokens > 0 ? round6(usd / (tokens / 1_000_000)) : 0,
        perRun: round6(usd),
        ...(runs !== undefined ? { perMonth: round6(usd * runs) } : {}),
        source: anchor.source,
      };
    }),
    alwaysOnPerDay: Math.round(hourly * 24 * 1e6) / 1e6,
  };
}

/** The generate report in words. */
export function printGenerateCostReport(
  io: CommandIo,
  config: PipelineConfig,
  report: GenerateCostReport,
): void {
  const { perRun, perMonth: monthly, tokens } = report;
  io.out(
    `${config.name}: ${report.files} file(s), about ${count(report.records)} records (${count(report.answerable)} to ask) in ${report.units} unit(s), priced in ${report.region} (estimate)`,
  );
  io.out(
    `  tokens    about ${count(tokens.prompt)} prompt + ${count(tokens.completion)} completion (completion per record: ${tokens.completionPerRecord})`,
  );
  io.out(
    `  throughput ${report.throughputPerSecond.toLocaleString('en-US')} completion tokens/s per copy (${report.throughputSource === 'given' ? 'given' : 'assumed, not measured: --completion-tokens-per-second to replace it; its source is in --json'})`,
  );
  const cache = report.promptCache;
  printParts(
    io,
    report,
    perRun,
    storageLine(
      perRun.usage,
      `${count(cache.items)} prompt-cache items of ${count(cache.storageBytesPerItem)} bytes`,
    ),
  );
  io.out(
    `  total     ${usd(perRun.total)} per run${perRun.perMillionTokens === undefined ? '' : ` (${usd(perRun.perMillionTokens)} per 1M tokens, prompt and completion)`}`,
  );
  if (monthly) printMonth(io, monthly);
  io.out(
    `  always-on ${usd(report.alwaysOnPerDay)} a day: one ${report.instanceType} endpoint kept up around the clock, whatever runs`,
  );
  for (const anchor of report.anchors)
    io.out(
      `  compare   ${usd(anchor.perRun)} per run${anchor.perMonth === undefined ? '' : `, ${usd(anchor.perMonth)} a month`} at ${anchor.name} (${rate(anchor.usdPerMillionPromptTokens)} / ${rate(anchor.usdPerMillionCompletionTokens)} per 1M prompt / completion tokens)`,
    );
}

export type RecommendCostReport = ReturnType<typeof recommendCostReport>;

/**
 * A recommend run priced: no endpoint; the two stages' Lambda time, requests (the serving
 * table's writes among them) and storage.
 */
export function recommendCostReport(
  region: string,
  config: RecommendPipelineConfig,
  schedule: MonthSchedule | undefined,
  sampled: SampledWork,
  work: RecommendWork & { readonly usersCounted: boolean },
  { prices }: RegionPricing,
) {
  const estimate = estimateRecommendUsage({ config, estimatedCost: sampled.estimatedCost, work });
  const perRun = runCost(estimate.usage, prices, { region, estimate: true });
  const monthly = schedule === undefined ? undefined : { ...schedule, ...perMonthOf(perRun, schedule.runs) };
  return {
    pipeline: config.name,
    region,
    files: sampled.files,
    work: estimate.work,
    users: work.users,
    usersCounted: work.usersCounted,
    units: estimate.units,
    hosting: estimate.hosting,
    servingWrites: {
      items: work.users,
      writeUnitsPerItem: work.users > 0 ? (estimate.usage.servingWrites ?? 0) / work.users : 0,
      writeUnits: estimate.usage.servingWrites ?? 0,
    },
    throughputSource: `assumed: ${RECOMMEND_THROUGHPUT_ASSUMPTION.ingestRowsPerSecond} rows/s ingest, ${RECOMMEND_THROUGHPUT_ASSUMPTION.similarityRowsPerSecond} interactions/s similarity per worker (${RECOMMEND_THROUGHPUT_ASSUMPTION.source})`,
    perRun,
    ...(monthly ? { runsPerMonth: monthly.runs, perMonth: monthly } : {}),
  };
}

/** The recommend report in words. */
export function printRecommendCostReport(
  io: CommandIo,
  config: PipelineConfig,
  report: RecommendCostReport,
): void {
  const { perRun, perMonth: monthly } = report;
  io.out(
    `${config.name}: ${report.files} file(s), about ${count(report.work.amount)} interactions, ${report.usersCounted ? '' : 'at most '}${count(report.users)} users, in ${report.units} unit(s) over two stages, priced in ${report.region} (estimate)`,
  );
  io.out(
    `  throughput assumed, not measured: ${RECOMMEND_THROUGHPUT_ASSUMPTION.ingestRowsPerSecond.toLocaleString('en-US')} rows/s ingest, ${RECOMMEND_THROUGHPUT_ASSUMPTION.similarityRowsPerSecond.toLocaleString('en-US')} interactions/s similarity per worker (its source is in --json)`,
  );
  printParts(io, { hosting: 'none' }, perRun);
  io.out(
    `  serving   ${count(report.servingWrites.items)} lists written to DynamoDB, ${report.servingWrites.writeUnitsPerItem} write unit(s) each (in requests)`,
  );
  io.out(`  total     ${usd(perRun.total)} per run`);
  if (monthly) printMonth(io, monthly);
  io.out('  no endpoint and no per-token anchor: collaborative filtering runs in the workers');
}

/** The four parts of a run's cost, one line each. */
function printParts(
  io: CommandIo,
  estimate: Pick<RunEstimate, 'hosting' | 'capacity'>,
  perRun: RunCost,
  storage: string = storageLine(perRun.usage, 'items'),
): void {
  io.out(`  endpoint  ${usd(perRun.endpoint)}  (${endpointLine(estimate, perRun.usage)})`);
  io.out(`  lambda    ${usd(perRun.lambda)}  (${perRun.usage.lambdaGbSeconds.toFixed(1)} GB-s)`);
  io.out(`  requests  ${usd(perRun.requests)}`);
  io.out(`  storage   ${usd(perRun.storage)}  (${storage})`);
}

/** What the storage part is a month of: the S3 outputs, and the DynamoDB items the run keeps. */
function storageLine(usage: RunUsage, items: string): string {
  const dynamo = usage.dynamoBytesStored ?? 0;
  if (dynamo <= 0) return 'one month of the outputs';
  return `one month of the outputs, ${mb(usage.bytesStored)} in S3, and of ${items}, ${mb(dynamo)} in DynamoDB`;
}

const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(bytes >= 10 * 1024 ** 2 ? 0 : 2)} MiB`;

function printMonth(io: CommandIo, monthly: MonthSchedule & ReturnType<typeof perMonthOf>): void {
  io.out(
    `  a month   ${usd(monthly.total)} for ${monthly.runs.toFixed(1)} runs (${monthly.expression}): endpoint ${usd(monthly.endpoint)}, lambda ${usd(monthly.lambda)}, requests ${usd(monthly.requests)}, storage ${usd(monthly.storage)}`,
  );
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');
