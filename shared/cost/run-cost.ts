import { PriceUnknown, type RegionPrices } from './pricing.ts';

/**
 * Where a run's model runs, as the cost model prices it (issue 14): `instance` bills
 * instance-seconds (run-scoped copies of an inference component, or today's always-on
 * endpoint), `serverless` bills GB-seconds of inference time and the bytes processed,
 * `in-worker` has no endpoint at all (the work Lambda evaluates the model).
 */
export type EndpointHosting =
  | { readonly kind: 'instance'; readonly instanceType: string }
  | { readonly kind: 'serverless'; readonly memoryMiB: number }
  | { readonly kind: 'in-worker' };

/**
 * What a run used, in the units AWS bills, as measured (or, for a local run, as it would
 * be deployed). Built by {@link runUsageOf} from the units' usage records.
 */
export interface RunUsage {
  /** Where the model ran. @default 'instance' (summaries stored before issue 14 have none) */
  readonly hosting?: EndpointHosting['kind'];
  /** SageMaker instance type of the run's endpoint; absent for a run that calls none. */
  readonly instanceType?: string;
  /** Instance-seconds charged to the run, all copies together (see {@link RunCost.basis}). */
  readonly endpointSeconds: number;
  /**
   * A local run priced as if deployed: the instance-seconds `endpointSeconds` includes for
   * the cold start its copies would pay deployed (copies x the type's published start,
   * shared/cost/cold-start.ts, less the warm-up the local server simulated). Absent
   * deployed, where the lease measures the warm-up itself.
   */
  readonly assumedColdStartSeconds?: number;
  /** Serverless hosting: GB-seconds of inference time (call durations x the memory size). */
  readonly serverlessGbSeconds?: number;
  /** Serverless hosting: bytes sent to and received from the endpoint. */
  readonly endpointBytes?: number;
  /** Endpoint calls the run made (every hosting that has an endpoint). */
  readonly endpointCalls?: number;
  readonly lambdaGbSeconds: number;
  readonly lambdaRequests: number;
  readonly sqsRequests: number;
  /** S3 PUT, COPY, POST and LIST requests (one price tier). */
  readonly s3Puts: number;
  /** S3 GET, HEAD and other requests (the other tier). */
  readonly s3Gets: number;
  readonly dynamoWrites: number;
  readonly dynamoReads: number;
  /** Bytes the run wrote to S3, priced as one month of S3 Standard. */
  readonly bytesStored: number;
  /**
   * Bytes the run's items added to the runs table's billed DynamoDB storage (generate
   * prompt-cache answers, embed chunk-index entries: each new item as DynamoDB sizes it plus
   * 100 bytes of per-item overhead), priced as one month of DynamoDB Standard storage. The
   * items are kept, so every further month bills the same again. Absent when none.
   */
  readonly dynamoBytesStored?: number;
  /**
   * Generate runs: prompt and completion tokens from the endpoint's `usage`, summed over the
   * units (repairs included); with them the cost has a per-1M-tokens figure.
   */
  readonly promptTokens?: number;
  readonly completionTokens?: number;
  /**
   * Recommend runs: write request units of the per-user lists put to the DynamoDB serving
   * table (one item per user written, by its size; shared/cost/serving-writes.ts). Already
   * in `dynamoWrites`; kept apart so the summary shows them.
   */
  readonly servingWrites?: number;
  /** Recommend runs: users whose list was written (the similarity stage's records). */
  readonly usersWritten?: number;
}

/** The `cost` block of a run summary. Every amount is in US dollars. */
export interface RunCost {
  /** endpoint + lambda + requests + storage, to the micro-dollar. */
  readonly total: number;
  readonly endpoint: number;
  readonly lambda: number;
  /** SQS, S3 and DynamoDB requests. */
  readonly requests: number;
  readonly storage: number;
  readonly currency: 'USD';
  /** True where usage was not measured on AWS (a local run priced as if deployed). */
  readonly estimate: boolean;
  readonly region: string;
  /** How each part was counted. */
  readonly basis: {
    readonly endpoint: string;
    readonly lambda: string;
    readonly requests: string;
    readonly storage: string;
  };
  readonly usage: RunUsage;
  /**
   * Generate runs: `total` per 1M tokens the endpoint processed (prompt + completion), to
   * compare with per-token prices. Absent without token counts (or with none).
   */
  readonly perMillionTokens?: number;
}

const MICRO = 1_000_000;
const GB = 1024 ** 3;

/** Dollars to the nearest micro-dollar, as an integer count of micro-dollars. */
const micros = (usd: number): number => Math.round(usd * MICRO);

/** How the endpoint part is counted, by hosting (the summary's `basis.endpoint`). */
export const ENDPOINT_BASIS: Readonly<Record<EndpointHosting['kind'], string>> = {
  instance:
    'instance-seconds of every copy the run held: with run-scoped capacity, copies x (release at finalize - lease at plan + cooldownSeconds), so the warm-up (copies bill while they start and load the model) and the cooldown after the run are included (a fit run that hands its copies to its scoring run pays no cooldown); an incremental embed run deployed raises its copies on demand: charged from `raisedAt`, when copies counting it were first asked for: the capacity sweeper’s raise after its first unit with chunks to embed marked it needed (`neededAt`; the wait for that sweep, up to 60 s, which SageMaker does not bill, is not charged), or the mark itself when copies already serving covered it; a lease with no raise recorded (stored before `raisedAt`, or its run over before any raise) from `neededAt`; and nothing, cooldown included, when no unit needed them; without a lease (always-on capacity) the window from the run’s first endpoint call to its last, one instance, the hours outside runs charged to no run. A local run is charged through the local lease plus the cold start it would pay deployed: per copy, the instance type’s published start (shared/cost/cold-start.ts) less the warm-up the local model server simulated (`usage.assumedColdStartSeconds`), taken as raised for the run as sluice cost takes it',
  serverless:
    'SageMaker Serverless Inference: GB-seconds = the sum of the run’s endpoint call durations (measured at the caller, so an upper bound of what SageMaker bills) x model.serverless.memoryMiB / 1024, plus the request and response bytes at the data-processed rate; nothing between requests and no per-request fee',
  'in-worker': 'none: the work Lambda evaluates the model itself, so its time is in the lambda part',
};

/** The endpoint basis of a run that calls no model (recommend). */
export const NO_ENDPOINT_BASIS = 'none: the run calls no model';

export const COST_BASIS = {
  endpoint: ENDPOINT_BASIS.instance,
  lambda:
    'work Lambda GB-seconds from each delivery’s measured duration and memory (a unit’s earlier failed deliveries are counted as requests, their durations are not measured), one request per delivery plus one each for plan and finalize (their durations are not measured yet: withFinalizeCalls adds finalize’s once it reports workerMs and memoryMiB)',
  requests:
    'SQS sends, receives and deletes, S3 requests and run-store reads and writes as counted where the ports are called (one run-store request = one request unit; the generate prompt cache and the embed chunk index in request units as their DynamoDB items bill them on demand, in a local run too (eventually consistent BatchGetItem: 0.5 read unit per key not found and per 4 KB of an item found, finalize’s index lookups consistent at 1; each put: 1 write unit per KB of the item, a document entry of up to a few dozen chunks 1), plus one S3 GET per prompt-cache miss while the old S3 cache is read as a fallback; recommend runs add the serving table’s write request units: one item per user written, ceil(item bytes / 1 KB) each, the item size estimated with 16-character ids)',
  storage:
    'bytes the run wrote to S3, priced as one month of S3 Standard, plus the items it added to the runs table (generate prompt-cache answers, embed chunk-index entries), each as DynamoDB sizes it (attribute names and values) plus 100 bytes of per-item overhead, a replaced item by its change in size, priced as one month of DynamoDB Standard storage (the items are kept: each further month bills the same again)',
} as const;

/** The basis of a run's cost: {@link COST_BASIS} with the endpoint line of its hosting. */
export const costBasisFor = (hosting: EndpointHosting['kind'] = 'instance') => ({
  ...COST_BASIS,
  endpoint: ENDPOINT_BASIS[hosting],
});

/** The endpoint's dollars for a run's usage (unrounded). */
function endpointUsd(usage: RunUsage, prices: RegionPrices, region: string): number {
  const hosting = usage.hosting ?? 'instance';
  if (hosting === 'in-worker') return 0;
  if (hosting === 'serverless') {
    const gbSeconds = usage.serverlessGbSeconds ?? 0;
    const bytes = usage.endpointBytes ?? 0;
    if (gbSeconds === 0 && bytes === 0) return 0;
    const perGbSecond = prices.serverlessInferenceGbSecond;
    const perGb = prices.sagemakerDataProcessedGb;
    if (!perGbSecond || !perGb)
      throw new PriceUnknown(
        `no sourced price for SageMaker Serverless Inference in ${region}; add it to shared/cost/pricing.ts`,
      );
    return gbSeconds * perGbSecond.usd + (bytes / 1e9) * perGb.usd;
  }
  if (usage.instanceType === undefined || usage.endpointSeconds <= 0) return 0;
  const hourly = prices.sagemakerInstanceHour[usage.instanceType];
  if (!hourly)
    throw new PriceUnknown(
      `no sourced price for SageMaker instance type ${usage.instanceType} in ${region}; add it to shared/cost/pricing.ts`,
    );
  return (usage.endpointSeconds / 3600) * hourly.usd;
}

/**
 * The cost of a run from its usage and one region's prices. Each part is rounded to the
 * micro-dollar and the total is the sum of the rounded parts, so the parts always add up.
 * Throws {@link PriceUnknown} when the run used an endpoint the region has no price for.
 */
export function runCost(
  usage: RunUsage,
  prices: RegionPrices,
  options: { readonly region: string; readonly estimate: boolean },
): RunCost {
  const lambdaUsd =
    usage.lambdaGbSeconds * prices.lambdaArmGbSecond.usd + usage.lambdaRequests * prices.lambdaRequest.usd;
  const requestsUsd =
    usage.sqsRequests * prices.sqsRequest.usd +
    (usage.s3Puts / 1000) * prices.s3PutPer1000.usd +
    (usage.s3Gets / 1000) * prices.s3GetPer1000.usd +
    usage.dynamoWrites * prices.dynamoWriteRequestUnit.usd +
    usage.dynamoReads * prices.dynamoReadRequestUnit.usd;
  const storageUsd =
    (usage.bytesStored / GB) * prices.s3StandardGbMonth.usd +
    (Math.max(0, usage.dynamoBytesStored ?? 0) / GB) * prices.dynamoStandardGbMonth.usd;
  const parts = [endpointUsd(usage, prices, options.region), lambdaUsd, requestsUsd, storageUsd].map(micros);
  const [endpoint = 0, lambda = 0, requests = 0, storage = 0] = parts;
  const tokens = (usage.promptTokens ?? 0) + (usage.completionTokens ?? 0);
  const total = endpoint + lambda + requests + storage;
  return {
    total: total / MICRO,
    endpoint: endpoint / MICRO,
    lambda: lambda / MICRO,
    requests: requests / MICRO,
    storage: storage / MICRO,
    currency: 'USD',
    estimate: options.estimate,
    region: options.region,
    basis:
      usage.hosting === undefined && usage.instanceType === undefined
        ? { ...COST_BASIS, endpoint: NO_ENDPOINT_BASIS }
        : costBasisFor(usage.hosting),
    usage,
    ...(tokens > 0 ? { perMillionTokens: Math.round(total / (tokens / 1_000_000)) / MICRO } : {}),
  };
}
