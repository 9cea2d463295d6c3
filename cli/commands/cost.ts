import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
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
import { runsPerMonth, ScheduleUnsupported } from '../../shared/cost/schedule-runs.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { tokenCounterFor } from '../../shared/embedding/token-counter-for.ts';
import { classifySource } from '../../shared/plan/plan-units.ts';
import { type ClassifiedFile, estimateCosts } from '../../shared/plan/sample-cost.ts';
import { resolveInputs } from '../stage-inputs.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import type { CommandIo } from './io.ts';
import { defaultPipelinesDir } from './run.ts';

const positiveNumber = (flag: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${flag} must be a positive number, got "${value}"`);
  return n;
};

const usd = (n: number) => `$${n.toFixed(n >= 1 ? 2 : 6)}`;
/** A price per unit, to four significant digits ($0.01, $0.002805). */
const rate = (n: number) => `$${Number(n.toPrecision(4))}`;

/**
 * `sluice cost PATH... --pipeline NAME`: what a run over these inputs would cost deployed,
 * before deploying. The planner's own sampling estimates the work (tokens or rows); the
 * cost model (shared/cost) prices it with the region's sourced prices, by where the model
 * runs (run-scoped copies, serverless, in-worker). `--schedule "cron(...)"|"rate(...)"`
 * (or the pipeline's own `schedule`, or `--runs-per-month N`) gives a month's bill by
 * component; the per-token anchors are printed beside it.
 */
export async function costCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    pipeline: { type: 'string' },
    pipelines: { type: 'string' },
    region: { type: 'string', default: 'us-east-1' },
    'runs-per-month': { type: 'string' },
    schedule: { type: 'string' },
    'tokens-per-second': { type: 'string' },
    'rows-per-second': { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required (a config in pipelines/NAME.json)');
  const givenRuns = positiveNumber('runs-per-month', values['runs-per-month']);
  const tokensPerSecond = positiveNumber('tokens-per-second', values['tokens-per-second']);
  const rowsPerSecond = positiveNumber('rows-per-second', values['rows-per-second']);
  const config = await loadPipelineConfig(values.pipelines ?? defaultPipelinesDir(), values.pipeline);
  const region = values.region;
  const prices = pricesFor(region);
  const instanceType = config.kind === 'embed' ? config.endpoint.instanceType : config.model.instanceType;
  // Today's endpoints are always on: what one costs a day whatever runs, beside the run's share.
  const hourly = instanceHourPrice(region, instanceType).usd;
  const alwaysOnPerDay = Math.round(hourly * 24 * 1e6) / 1e6;
  // A month's bill: --runs-per-month, else --schedule, else the pipeline's own schedule.
  const expression = values.schedule ?? config.schedule?.expression;
  let schedule: { runs: number; expression: string } | undefined;
  try {
    if (givenRuns !== undefined) schedule = { runs: givenRuns, expression: `${givenRuns} runs a month` };
    else if (expression !== undefined) schedule = { runs: runsPerMonth(expression), expression };
  } catch (error) {
    if (error instanceof ScheduleUnsupported) throw new UsageError(`--schedule: ${error.message}`);
    throw error;
  }

  // The inputs are read where they are: a store rooted at / whose keys are the absolute paths.
  const inputs = await resolveInputs(positionals, config.name);
  const store = new FsObjectStore(path.parse(process.cwd()).root);
  const files: ClassifiedFile[] = [];
  for (const input of inputs) {
    const absolute = path.resolve(input.file);
    files.push({
      key: absolute.slice(path.parse(absolute).root.length).split(path.sep).join('/'),
      size: (await stat(absolute)).size,
      ...classifySource(input.key, config.input.format),
    });
  }
  const estimator = new EstimatingTokenCounter();
  const counter = config.kind === 'embed' ? await tokenCounterFor(store, config, estimator) : estimator;
  const estimates = await estimateCosts(store, files, config, { counter });
  const estimatedCost = estimates.reduce((sum, e) => sum + e.estCost, 0);

  const estimate = estimateRunUsage({
    config,
    estimatedCost,
    ...(tokensPerSecond === undefined ? {} : { tokensPerSecond }),
    ...(rowsPerSecond === undefined ? {} : { rowsPerSecond }),
  });
  const perRun = runCost(estimate.usage, prices, { region, estimate: true });
  const tokens = estimate.work.unit === 'tokens' ? estimate.work.amount : 0;
  const monthly = schedule === undefined ? undefined : { ...schedule, ...perMonthOf(perRun, schedule.runs) };
  const anchors =
    estimate.work.unit === 'tokens'
      ? [
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
          ...(monthly
            ? { perMonth: round6((tokens / 1_000_000) * a.usdPerMillionTokens * monthly.runs) }
            : {}),
        }))
      : [];
  const report = {
    pipeline: config.name,
    region,
    files: files.length,
    work: estimate.work,
    units: estimate.units,
    hosting: estimate.hosting,
    ...(estimate.capacity ? { capacity: estimate.capacity } : {}),
    throughputPerSecond: estimate.throughputPerSecond,
    throughputSource:
      (tokensPerSecond ?? rowsPerSecond)
        ? 'given'
        : config.kind === 'embed'
          ? `assumed: ${THROUGHPUT_ASSUMPTIONS.tokensPerSecond} padded tokens/s per copy (${THROUGHPUT_ASSUMPTIONS.tokensPerSecondSource})`
          : `assumed: ${THROUGHPUT_ASSUMPTIONS.rowsPerSecond} rows/s (${THROUGHPUT_ASSUMPTIONS.rowsPerSecondSource})`,
    perRun,
    ...(monthly ? { runsPerMonth: monthly.runs, perMonth: monthly } : {}),
    perMillionTokens: tokens > 0 ? round6(perRun.total / (tokens / 1_000_000)) : undefined,
    anchors,
    alwaysOnPerDay,
  };
  if (values.json) {
    io.out(JSON.stringify(report));
    return 0;
  }
  io.out(
    `${config.name}: ${files.length} file(s), about ${Math.round(estimate.work.amount).toLocaleString('en-US')} ${estimate.work.unit} in ${estimate.units} unit(s), priced in ${region} (estimate)`,
  );
  io.out(
    `  throughput ${estimate.throughputPerSecond.toLocaleString('en-US')}/s per copy (${report.throughputSource === 'given' ? 'given' : `assumed, not measured: ${config.kind === 'embed' ? '--tokens-per-second' : '--rows-per-second'} to replace it; its source is in --json`})`,
  );
  io.out(`  endpoint  ${usd(perRun.endpoint)}  (${endpointLine(estimate, perRun.usage)})`);
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
    `  always-on ${usd(alwaysOnPerDay)} a day: one ${instanceType} endpoint kept up around the clock, whatever runs`,
  );
  for (const anchor of anchors)
    io.out(
      `  compare   ${usd(anchor.perRun)} per run${'perMonth' in anchor ? `, ${usd(anchor.perMonth ?? 0)} a month` : ''} at ${anchor.name} (${rate(anchor.usdPerMillionTokens)} per 1M tokens)`,
    );
  return 0;
}

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
function endpointLine(estimate: RunEstimate, usage: RunUsage): string {
  if (estimate.hosting === 'in-worker') return 'in-worker: no endpoint, the workers evaluate the model';
  if (estimate.hosting === 'serverless')
    return `serverless: ${(usage.serverlessGbSeconds ?? 0).toFixed(1)} GB-s of inference, ${((usage.endpointBytes ?? 0) / 1e6).toFixed(1)} MB processed`;
  const c = estimate.capacity;
  if (c && c.mode === 'run-scoped')
    return `${c.copies} cop${c.copies === 1 ? 'y' : 'ies'} of ${usage.instanceType}, run-scoped: ${c.coldStartSeconds} s cold start + ${c.busySeconds.toFixed(1)} s busy + ${c.cooldownSeconds} s cooldown`;
  return `${usage.endpointSeconds.toFixed(1)} s of ${usage.instanceType}`;
}
