import type { RegionPrices } from './pricing.ts';

/**
 * What a run used, in the units AWS bills, as measured (or, for a local run, as it would
 * be deployed). Built by {@link runUsageOf} from the units' usage records.
 */
export interface RunUsage {
  /** SageMaker instance type of the run's endpoint; absent for a run that calls none. */
  readonly instanceType?: string;
  /** Instance-seconds charged to the run (see {@link RunCost.basis}). */
  readonly endpointSeconds: number;
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
}

const MICRO = 1_000_000;
const GB = 1024 ** 3;

/** Dollars to the nearest micro-dollar, as an integer count of micro-dollars. */
const micros = (usd: number): number => Math.round(usd * MICRO);

export const COST_BASIS = {
  endpoint:
    'instance-seconds from the run’s first endpoint call to its last, one instance (the endpoint is always on: its idle hours outside runs are charged to no run)',
  lambda:
    'work Lambda GB-seconds from each delivery’s measured duration and memory, one request per delivery plus one each for plan and finalize (their durations are not measured)',
  requests:
    'SQS sends, receives and deletes, S3 requests and run-store reads and writes as counted where the ports are called (one DynamoDB request = one request unit; chunk-index writes not counted)',
  storage: 'bytes the run wrote to S3, priced as one month of S3 Standard',
} as const;

/**
 * The cost of a run from its usage and one region's prices. Each part is rounded to the
 * micro-dollar and the total is the sum of the rounded parts, so the parts always add up.
 * Throws when the run used an endpoint instance type the region has no price for.
 */
export function runCost(
  usage: RunUsage,
  prices: RegionPrices,
  options: { readonly region: string; readonly estimate: boolean },
): RunCost {
  let endpointUsd = 0;
  if (usage.instanceType !== undefined && usage.endpointSeconds > 0) {
    const hourly = prices.sagemakerInstanceHour[usage.instanceType];
    if (!hourly)
      throw new Error(`no price for SageMaker instance type ${usage.instanceType} in ${options.region}`);
    endpointUsd = (usage.endpointSeconds / 3600) * hourly.usd;
  }
  const lambdaUsd =
    usage.lambdaGbSeconds * prices.lambdaArmGbSecond.usd + usage.lambdaRequests * prices.lambdaRequest.usd;
  const requestsUsd =
    usage.sqsRequests * prices.sqsRequest.usd +
    (usage.s3Puts / 1000) * prices.s3PutPer1000.usd +
    (usage.s3Gets / 1000) * prices.s3GetPer1000.usd +
    usage.dynamoWrites * prices.dynamoWriteRequestUnit.usd +
    usage.dynamoReads * prices.dynamoReadRequestUnit.usd;
  const storageUsd = (usage.bytesStored / GB) * prices.s3StandardGbMonth.usd;
  const parts = [endpointUsd, lambdaUsd, requestsUsd, storageUsd].map(micros);
  const [endpoint = 0, lambda = 0, requests = 0, storage = 0] = parts;
  return {
    total: (endpoint + lambda + requests + storage) / MICRO,
    endpoint: endpoint / MICRO,
    lambda: lambda / MICRO,
    requests: requests / MICRO,
    storage: storage / MICRO,
    currency: 'USD',
    estimate: options.estimate,
    region: options.region,
    basis: COST_BASIS,
    usage,
  };
}
