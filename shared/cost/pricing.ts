import { ConfigError } from '../errors/errors.ts';

/**
 * On-demand AWS prices Sluice's cost model uses, each with where it was read and when.
 *
 * Only figures found in published pages are here. What is left out, and why:
 * - Regions other than us-east-1: no stored page gave a per-region figure for any of
 *   these services, so {@link pricesFor} fails with one line for them instead of
 *   guessing. They are listed in {@link LISTED_REGIONS} so the failure names them.
 * - SageMaker Serverless Inference bills the memory size times the inference time
 *   (per second, by memory size: the per-second figure for 1 GB times the GB) and the
 *   bytes in and out of the endpoint; it has no per-request fee, so none is listed.
 * - ml.g4dn.xlarge, ml.c5.*: no figure found; no shipped pipeline uses them.
 * - The AWS pricing pages themselves render prices with scripts; where the stored copy
 *   had no figure, the source is the third-party page that quotes the us-east-1 price
 *   (its URL is the source). Check them against https://aws.amazon.com/<service>/pricing/
 *   before relying on a bill.
 * Prices are the first (lowest-volume) tier; free tiers are ignored (a run's cost is
 * its share of the bill, not what a new account pays).
 */
export interface Price {
  /** US dollars per {@link Price.unit}. */
  readonly usd: number;
  readonly unit: string;
  /** The page the figure was read from. */
  readonly source: string;
  /** When it was read (YYYY-MM-DD). */
  readonly readOn: string;
}

/** One region's prices; a service without a known figure is absent, never zero. */
export interface RegionPrices {
  /** SageMaker real-time inference, per instance-hour, by instance type. */
  readonly sagemakerInstanceHour: Readonly<Record<string, Price>>;
  /**
   * SageMaker Serverless Inference, per GB-second of inference time (the memory size in GB
   * times the seconds each request runs; 1024 MB costs this per second, 6144 MB six times it).
   */
  readonly serverlessInferenceGbSecond?: Price;
  /** SageMaker data processed in and out of an endpoint (serverless included), per GB. */
  readonly sagemakerDataProcessedGb?: Price;
  /** Lambda duration on arm64, per GB-second. */
  readonly lambdaArmGbSecond: Price;
  /** Lambda, per request. */
  readonly lambdaRequest: Price;
  /** SQS standard queue, per request. */
  readonly sqsRequest: Price;
  /** S3 Standard PUT, COPY, POST, LIST, per 1,000 requests. */
  readonly s3PutPer1000: Price;
  /** S3 Standard GET, SELECT and all other requests, per 1,000 requests. */
  readonly s3GetPer1000: Price;
  /** S3 Standard storage, per GB-month (first 50 TB). */
  readonly s3StandardGbMonth: Price;
  /** DynamoDB on-demand, per write request unit. */
  readonly dynamoWriteRequestUnit: Price;
  /** DynamoDB on-demand, per read request unit. */
  readonly dynamoReadRequestUnit: Price;
  /** DynamoDB Standard table class storage, per GB-month (1 GB = 1,024^3 bytes, items with their 100 bytes of overhead). */
  readonly dynamoStandardGbMonth: Price;
  /** Athena SQL queries, per TB scanned. */
  readonly athenaTbScanned: Price;
}

const READ_ON = '2026-12-07';

const price = (usd: number, unit: string, source: string): Price => ({ usd, unit, source, readOn: READ_ON });

/** AWS's foundation-model benchmarking tool's SageMaker hourly prices (us-east-1, real-time hosting). */
const FMBENCH_PRICING =
  'https://github.com/aws-samples/foundation-model-benchmarking-tool/blob/main/src/fmbench/configs/pricing.yml';

const US_EAST_1: RegionPrices = {
  sagemakerInstanceHour: {
    // AWS's own benchmarking tool prices it at $1.4084 (the figure usually quoted as
    // $1.408); wring.co quotes $1.21, an older rate: the higher, AWS-published one is kept.
    'ml.g5.xlarge': price(1.4084, 'instance-hour', FMBENCH_PRICING),
    'ml.m5.xlarge': price(
      0.269,
      'instance-hour',
      'https://zircon.tech/blog/the-real-cost-of-running-ai-models-on-aws-sagemaker-inference-deep-dive',
    ),
    'ml.m5.large': price(
      0.115,
      'instance-hour',
      'https://randeepbhatia.com/courses/aws-serverless-ml/sagemaker-serverless',
    ),
    // wring.co quotes $1.52; AWS's own benchmarking tool lists $1.515, which is kept (as for ml.g5.xlarge).
    'ml.g5.2xlarge': price(1.515, 'instance-hour', FMBENCH_PRICING),
    // GPU instances an LLM endpoint of a generate pipeline runs on (issue 18): one A10G
    // (g5.xlarge/2xlarge) or L4 (g6.xlarge/2xlarge) for a 7-8B model, four of them
    // (g5/g6.12xlarge) for tensor parallelism, eight A100s (p4d.24xlarge) for 70B-class models.
    'ml.g5.12xlarge': price(7.09, 'instance-hour', FMBENCH_PRICING),
    'ml.g6.xlarge': price(
      1.1267,
      'instance-hour',
      'https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/us-east-1/index.csv (row USE1-Host:ml.g6.xlarge, price list version 20261005212151, as quoted in a public model-selection report; its ml.g6.2xlarge and ml.g5.2xlarge rows agree with FMBench: $1.222, $1.515)',
    ),
    'ml.g6.2xlarge': price(1.222, 'instance-hour', FMBENCH_PRICING),
    'ml.g6.12xlarge': price(5.752, 'instance-hour', FMBENCH_PRICING),
    'ml.g5.24xlarge': price(10.18, 'instance-hour', FMBENCH_PRICING),
    'ml.g5.48xlarge': price(20.36, 'instance-hour', FMBENCH_PRICING),
    'ml.g6.16xlarge': price(4.246, 'instance-hour', FMBENCH_PRICING),
    'ml.g6.24xlarge': price(8.344, 'instance-hour', FMBENCH_PRICING),
    'ml.g6.48xlarge': price(16.688, 'instance-hour', FMBENCH_PRICING),
    'ml.g6e.2xlarge': price(
      2.8026,
      'instance-hour',
      'https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/us-east-1/index.csv (row USE1-Host:ml.g6e.2xlarge, price list version 20261005212151, as quoted in the report cited for ml.g6.xlarge)',
    ),
    'ml.g6e.12xlarge': price(
      13.1158,
      'instance-hour',
      'https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/us-east-1/index.csv (row USE1-Host:ml.g6e.12xlarge, price list version 20261005212151, as quoted in the report cited for ml.g6.xlarge)',
    ),
    'ml.p5.48xlarge': price(113.068, 'instance-hour', FMBENCH_PRICING),
    'ml.p4d.24xlarge': price(
      37.688,
      'instance-hour',
      `${FMBENCH_PRICING} (wring.co quotes $37.69: https://www.wring.co/blog/aws-sagemaker-inference-guide)`,
    ),
  },
  // $0.0000200 per second at 1024 MB, $0.0000400 at 2048 MB ... $0.0001200 at 6144 MB:
  // linear in the memory size, so one per-GB-second figure prices every size.
  serverlessInferenceGbSecond: price(
    0.00002,
    'GB-second of inference time',
    'https://aws.amazon.com/sagemaker/pricing/ (as quoted in public cost tables: "$0.0000200 per second per GB memory", 1024 MB to 6144 MB = $0.00002 to $0.00012 per second)',
  ),
  sagemakerDataProcessedGb: price(
    0.016,
    'GB in or out',
    'https://github.com/aws-samples/sagemaker-ssh-helper/blob/main/Sample_Costs.md ("$0.016 per GB for Endpoint Data IN" / "OUT", an eu-west-1 bill; no stored page gave the us-east-1 line, assumed the same)',
  ),
  lambdaArmGbSecond: price(0.0000133334, 'GB-second', 'https://cloudchipr.com/blog/aws-lambda-pricing'),
  lambdaRequest: price(
    0.2 / 1_000_000,
    'request',
    'https://git.mcrn.ar/mariano/lambda_local_runner/src/commit/957e45b8adae23ce50b966346229585b5df18b4d/docs/lambdas-md/lambda-13-cost.md?display=rendered',
  ),
  sqsRequest: price(0.4 / 1_000_000, 'request', 'https://cloudburn.io/blog/amazon-sqs-pricing'),
  s3PutPer1000: price(0.005, '1,000 requests', 'https://athena.guide/articles/athena-basics-pricing-model'),
  s3GetPer1000: price(0.0004, '1,000 requests', 'https://athena.guide/articles/athena-basics-pricing-model'),
  s3StandardGbMonth: price(0.023, 'GB-month', 'https://cloudburn.io/blog/amazon-s3-pricing'),
  dynamoWriteRequestUnit: price(
    0.625 / 1_000_000,
    'write request unit',
    'https://airbyte.com/data-engineering-resources/dynamodb-pricing (us-east-1 on demand after the November 2024 cut: $0.625 per million write request units; checked 2026-12-07)',
  ),
  dynamoReadRequestUnit: price(
    0.125 / 1_000_000,
    'read request unit',
    'https://airbyte.com/data-engineering-resources/dynamodb-pricing (us-east-1 on demand after the November 2024 cut: $0.125 per million read request units; checked 2026-12-07)',
  ),
  // The page also says the first 25 GB a month are free (per account and region): ignored,
  // as every free tier here is (see the header).
  dynamoStandardGbMonth: price(
    0.25,
    'GB-month',
    'https://aws.amazon.com/dynamodb/pricing/ (data storage, Standard table class: $0.25 per GB-month of the disk space the table consumes, after the first 25 GB a month)',
  ),
  athenaTbScanned: price(5, 'TB scanned', 'https://athena.guide/articles/athena-basics-pricing-model'),
};

/** Regions Sluice is deployed to and that a price is looked up for. */
export const LISTED_REGIONS = [
  'us-east-1',
  'us-west-2',
  'eu-west-1',
  'eu-central-1',
  'ap-northeast-1',
] as const;

/** Prices by region: a listed region without a sourced figure is absent (see the header). */
export const PRICING: Readonly<Record<string, RegionPrices>> = { 'us-east-1': US_EAST_1 };

/** A price Sluice has no sourced figure for: the cost of a run cannot be told. */
export class PriceUnknown extends ConfigError {}

/** The region's prices, or one line saying the region has none (and which regions do). */
export function pricesFor(
  region: string,
  pricing: Readonly<Record<string, RegionPrices>> = PRICING,
): RegionPrices {
  const prices = pricing[region];
  if (!prices) {
    throw new PriceUnknown(
      `no sourced prices for region ${region} (priced: ${Object.keys(pricing).join(', ')}); add them to shared/cost/pricing.ts`,
    );
  }
  return prices;
}

/** The hourly price of a SageMaker instance type in a region, or one line naming both. */
export function instanceHourPrice(
  region: string,
  instanceType: string,
  pricing: Readonly<Record<string, RegionPrices>> = PRICING,
): Price {
  const found = pricesFor(region, pricing).sagemakerInstanceHour[instanceType];
  if (!found) {
    throw new PriceUnknown(
      `no sourced price for SageMaker instance type ${instanceType} in ${region}; add it to shared/cost/pricing.ts`,
    );
  }
  return found;
}
