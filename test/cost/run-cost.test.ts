import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  instanceHourPrice,
  LISTED_REGIONS,
  PRICING,
  type Price,
  PriceUnknown,
  pricesFor,
} from '../../shared/cost/pricing.ts';
import { type RunUsage, runCost } from '../../shared/cost/run-cost.ts';
import {
  emptyUnitUsage,
  runUsageOf,
  sumUnitUsage,
  type UnitUsage,
  withFinalizeCalls,
} from '../../shared/cost/unit-usage.ts';

const usEast = pricesFor('us-east-1');

const noUsage: RunUsage = {
  endpointSeconds: 0,
  lambdaGbSeconds: 0,
  lambdaRequests: 0,
  sqsRequests: 0,
  s3Puts: 0,
  s3Gets: 0,
  dynamoWrites: 0,
  dynamoReads: 0,
  bytesStored: 0,
};

function allPrices(): { region: string; name: string; price: Price }[] {
  const out: { region: string; name: string; price: Price }[] = [];
  for (const [region, prices] of Object.entries(PRICING)) {
    for (const [name, value] of Object.entries(prices)) {
      if ('usd' in value) out.push({ region, name, price: value as Price });
      else
        for (const [type, p] of Object.entries(value as Record<string, Price>))
          out.push({ region, name: type, price: p });
    }
  }
  return out;
}

const shippedInstanceTypes = ['pipelines/docs.json', 'pipelines/credit-risk.json'].map((file) => {
  const config = JSON.parse(readFileSync(file, 'utf8')) as {
    endpoint?: { instanceType?: string };
    model?: { instanceType?: string };
  };
  const type = config.endpoint?.instanceType ?? config.model?.instanceType;
  if (!type) throw new Error(`${file} names no instance type`);
  return type;
});

describe('the pricing table', () => {
  it('gives every price a positive amount, a unit, an https source and the date it was read', () => {
    const prices = allPrices();
    expect(prices.length).toBeGreaterThan(10);
    for (const { price } of prices) {
      expect(price.usd).toBeGreaterThan(0);
      expect(price.unit.length).toBeGreaterThan(0);
      expect(price.source).toMatch(/^https:\/\//);
      expect(price.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it('prices every instance type a shipped pipeline uses in every listed region, or fails with one line naming the region', () => {
    expect(shippedInstanceTypes).toEqual(['ml.g5.xlarge', 'ml.m5.large']);
    for (const region of LISTED_REGIONS) {
      for (const type of shippedInstanceTypes) {
        if (PRICING[region]) {
          expect(instanceHourPrice(region, type).usd).toBeGreaterThan(0);
        } else {
          expect(() => instanceHourPrice(region, type)).toThrow(PriceUnknown);
          expect(() => instanceHourPrice(region, type)).toThrow(
            new RegExp(`^no sourced prices for region ${region} [^\\n]*$`),
          );
        }
      }
    }
  });

  it('fails with one line naming the instance type and region for a type it has no price for', () => {
    expect(() => instanceHourPrice('us-east-1', 'ml.g5.16xlarge')).toThrow(
      /^no sourced price for SageMaker instance type ml\.g5\.16xlarge in us-east-1; [^\n]*$/,
    );
  });
});

describe('runCost', () => {
  it('prices one hour of an ml.g5.xlarge at its hourly rate', () => {
    const cost = runCost({ ...noUsage, instanceType: 'ml.g5.xlarge', endpointSeconds: 3600 }, usEast, {
      region: 'us-east-1',
      estimate: false,
    });
    expect(cost).toMatchObject({
      total: 1.4084,
      endpoint: 1.4084,
      lambda: 0,
      requests: 0,
      storage: 0,
      currency: 'USD',
    });
  });

  it('prices Lambda GB-seconds and requests by hand-computed figures', () => {
    // 2 GiB for 90 s = 180 GB-s x $0.0000133334 = $0.002400012; 1,000,000 requests x $0.20/1M = $0.20.
    const cost = runCost({ ...noUsage, lambdaGbSeconds: 180, lambdaRequests: 1_000_000 }, usEast, {
      region: 'us-east-1',
      estimate: true,
    });
    expect(cost.lambda).toBe(0.2024);
    expect(cost.total).toBe(0.2024);
    expect(cost.estimate).toBe(true);
  });

  it('prices SQS, S3 and DynamoDB requests and a month of the bytes written', () => {
    // SQS 2.5M x $0.40/1M = $1.00; S3 PUT 10,000 x $0.005/1k = $0.05; GET 100,000 x $0.0004/1k = $0.04;
    // DynamoDB 1M writes x $0.625/1M = $0.625, 2M reads x $0.125/1M = $0.25 -> requests $1.965.
    // 10 GiB x $0.023 = $0.23 storage.
    const cost = runCost(
      {
        ...noUsage,
        sqsRequests: 2_500_000,
        s3Puts: 10_000,
        s3Gets: 100_000,
        dynamoWrites: 1_000_000,
        dynamoReads: 2_000_000,
        bytesStored: 10 * 1024 ** 3,
      },
      usEast,
      { region: 'us-east-1', estimate: false },
    );
    expect(cost.requests).toBe(1.965);
    expect(cost.storage).toBe(0.23);
    expect(cost.total).toBe(2.195);
  });

  it('rounds each part to the micro-dollar and makes the total their exact sum', () => {
    // 15 minutes of ml.m5.large: 0.25 h x $0.115 = $0.02875; 1 GB-s: $0.0000133334 -> $0.000013.
    const cost = runCost(
      { ...noUsage, instanceType: 'ml.m5.large', endpointSeconds: 900, lambdaGbSeconds: 1, s3Puts: 3 },
      usEast,
      { region: 'us-east-1', estimate: false },
    );
    expect(cost.endpoint).toBe(0.02875);
    expect(cost.lambda).toBe(0.000013);
    expect(cost.requests).toBe(0.000015);
    expect(cost.total).toBe(0.028778);
    expect(cost.total * 1e6).toBeCloseTo(
      (cost.endpoint + cost.lambda + cost.requests + cost.storage) * 1e6,
      6,
    );
  });
  it('always has parts that add up to the total, none negative, for any usage', () => {
    const count = fc.integer({ min: 0, max: 1e9 });
    const amount = fc.double({ min: 0, max: 1e7, noNaN: true });
    fc.assert(
      fc.property(
        fc.record({
          instanceType: fc.constantFrom('ml.g5.xlarge', 'ml.m5.large'),
          endpointSeconds: amount,
          lambdaGbSeconds: amount,
          lambdaRequests: count,
          sqsRequests: count,
          s3Puts: count,
          s3Gets: count,
          dynamoWrites: count,
          dynamoReads: count,
          bytesStored: count,
        }),
        (usage) => {
          const cost = runCost(usage, usEast, { region: 'us-east-1', estimate: true });
          const micros = [cost.endpoint, cost.lambda, cost.requests, cost.storage].map((p) =>
            Math.round(p * 1e6),
          );
          expect(micros.every((m) => m >= 0)).toBe(true);
          expect(Math.round(cost.total * 1e6)).toBe(micros.reduce((a, b) => a + b, 0));
        },
      ),
    );
  });
});

describe('runUsageOf', () => {
  const unit = (over: Partial<UnitUsage>): UnitUsage => ({ ...emptyUnitUsage(), ...over });

  it('adds up every delivery, a unit that stored no usage included, and the span of endpoint calls', () => {
    const totals = sumUnitUsage([
      { attempts: 2, usage: unit({ endpointFirstAt: 5_000, endpointLastAt: 6_000, s3Puts: 3 }) },
      { attempts: 1 },
      { attempts: 1, usage: unit({ endpointFirstAt: 2_000, endpointLastAt: 4_000, s3Puts: 1 }) },
      { attempts: 1, usage: unit({ endpointFirstAt: 0, endpointLastAt: 0 }) },
    ]);
    expect(totals).toMatchObject({ attempts: 5, first: 2_000, last: 6_000, s3Puts: 4 });
  });

  it('charges one instance from the run’s first endpoint call to its last, and GB-seconds per delivery', () => {
    const usage = runUsageOf(
      [
        {
          attempts: 1,
          usage: unit({
            workerMs: 4000,
            memoryMiB: 2048,
            endpointFirstAt: 10_000,
            endpointLastAt: 12_000,
            s3Gets: 3,
            s3Puts: 2,
            bytesPut: 100,
            runStoreWrites: 2,
            runStoreReads: 1,
            queueSends: 1,
          }),
        },
        {
          attempts: 2,
          usage: unit({
            workerMs: 1000,
            memoryMiB: 1024,
            endpointFirstAt: 11_000,
            endpointLastAt: 15_500,
            s3Gets: 1,
            runStoreWrites: 2,
          }),
        },
      ],
      'ml.g5.xlarge',
    );
    expect(usage).toEqual({
      hosting: 'instance',
      instanceType: 'ml.g5.xlarge',
      endpointSeconds: 5.5,
      endpointCalls: 0,
      lambdaGbSeconds: 4 * 2 + 1 * 1,
      lambdaRequests: 3 + 2,
      // plan: ceil(2/10) = 1; 2 per delivery: 6; the units' own sends: 1; finalize: 3.
      sqsRequests: 1 + 6 + 1 + 3,
      s3Puts: 2,
      s3Gets: 4,
      dynamoWrites: 4,
      dynamoReads: 1,
      bytesStored: 100,
    });
  });

  it('charges no endpoint time to a run that made no endpoint call', () => {
    expect(
      runUsageOf([{ attempts: 1, usage: unit({ workerMs: 10, memoryMiB: 1024 }) }], 'ml.m5.large')
        .endpointSeconds,
    ).toBe(0);
  });

  it('prices serverless hosting by GB-seconds of call time and bytes, in-worker hosting not at all', () => {
    const units = [
      {
        attempts: 1,
        usage: unit({
          workerMs: 2000,
          memoryMiB: 2048,
          endpointFirstAt: 1,
          endpointLastAt: 4001,
          endpointCallMs: 3000,
          endpointCalls: 3,
          endpointBytes: 1_000_000,
        }),
      },
    ];
    const serverless = runUsageOf(units, { kind: 'serverless', memoryMiB: 4096 });
    // 3 s of calls at 4 GB = 12 GB-s; 1 MB sent and (at most) 1 MB back.
    expect(serverless).toMatchObject({
      hosting: 'serverless',
      endpointSeconds: 0,
      serverlessGbSeconds: 12,
      endpointBytes: 2_000_000,
      endpointCalls: 3,
    });
    const cost = runCost(serverless, usEast, { region: 'us-east-1', estimate: false });
    // 12 x $0.00002 + 0.002 GB x $0.016 = $0.00024 + $0.000032.
    expect(cost.endpoint).toBe(0.000272);
    expect(cost.basis.endpoint).toMatch(/^SageMaker Serverless Inference: GB-seconds/);
    const inWorker = runUsageOf(units, { kind: 'in-worker' });
    expect(inWorker).toMatchObject({ hosting: 'in-worker', endpointSeconds: 0 });
    expect(runCost(inWorker, usEast, { region: 'us-east-1', estimate: false }).endpoint).toBe(0);
  });

  it('fails with one line where a region has no serverless price', () => {
    const { serverlessInferenceGbSecond: _, ...withoutServerless } = usEast;
    expect(() =>
      runCost({ ...noUsage, hosting: 'serverless', serverlessGbSeconds: 1 }, withoutServerless, {
        region: 'us-east-1',
        estimate: false,
      }),
    ).toThrow(PriceUnknown);
  });

  it('adds finalize’s own calls and the summary writes still to come', () => {
    const calls = {
      ...emptyUnitUsage(),
      s3Gets: 4,
      s3Puts: 1,
      bytesPut: 50,
      runStoreReads: 2,
      runStoreWrites: 0,
    };
    expect(withFinalizeCalls(noUsage, calls)).toEqual({
      ...noUsage,
      s3Gets: 4,
      s3Puts: 1 + 2,
      bytesStored: 50,
      dynamoReads: 2,
      dynamoWrites: 1,
    });
  });
});
