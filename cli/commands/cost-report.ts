import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import {
  batchTransformUsdPerMillionTokens,
  COLD_START_ASSUMPTION,
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
  config.kind === 'embed'
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
    ...(monthly ? { runsPerMonth: monthly.runs, perMonth: monthly } : {}),
    perMillionTokens: tokens > 0 ? round6(perRun.total / (tokens / 1_000_000)) : undefined,
    anchors: estimate.work.unit === 'tokens' ? anchorsOf(config, estimate, hourly, monthly?.runs) : [],
    // Today's endpoints are always on: what one costs a day whatever runs, beside the run's share.
    alwaysOnPerDay: Math.round(hourly * 24 * 1e6) / 1e6,
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
  return [
    ...PER_TOKEN_ANCHORS.map((a) => ({
      name: a.name,
      usdPerMillionTokens: a.usdPerMillionTokens,
      source: a.source,
    })),
    {
      name: `SageMaker Batch Transform, one ${instanceType} started for the job (${COLD_START_ASSUMPTION.seconds} s to start)`,
      usdPerMillionTokens: round6(
        batchTransformUsdPerMillionTokens(tokens, estimate.throughputPerSecond, hourly),
      ),
      source: `${instanceType} at $${hourly}/h (its real-time rate), start-up ${COLD_START_ASSUMPTION.source}`,
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
  io.out(`  storage   ${usd(perRun.storage)}  (one month of the outputs)`);
  io.out(
    `  total     ${usd(perRun.total)} per run${report.perMillionTokens === undefined ? '' : ` (${usd(report.perMillionTokens)} per 1M tokens)`}`,
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
  if (estimate.hosting === 'in-worker') return 'in-worker: no endpoint, the workers evaluate the model';
  if (estimate.hosting === 'serverless')
    return `serverless: ${(usage.serverlessGbSeconds ?? 0).toFixed(1)} GB-s of inference, ${((usage.endpointBytes ?? 0) / 1e6).toFixed(1)} MB processed`;
  const c = estimate.capacity;
  if (c && c.mode === 'run-scoped')
    return `${c.copies} cop${c.copies === 1 ? 'y' : 'ies'} of ${usage.instanceType}, run-scoped: ${c.coldStartSeconds} s cold start + ${c.busySeconds.toFixed(1)} s busy + ${c.cooldownSeconds} s cooldown`;
  return `${usage.endpointSeconds.toFixed(1)} s of ${usage.instanceType}`;
}
