import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import {
  estimateRunUsage,
  PER_TOKEN_ANCHORS,
  THROUGHPUT_ASSUMPTIONS,
} from '../../shared/cost/estimate-run.ts';
import { instanceHourPrice, pricesFor } from '../../shared/cost/pricing.ts';
import { runCost } from '../../shared/cost/run-cost.ts';
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

/**
 * `sluice cost PATH... --pipeline NAME`: what a run over these inputs would cost deployed,
 * before deploying. The planner's own sampling estimates the work (tokens or rows); the
 * cost model (shared/cost) prices it with the region's sourced prices. `--runs-per-month`
 * prices a schedule.
 */
export async function costCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    pipeline: { type: 'string' },
    pipelines: { type: 'string' },
    region: { type: 'string', default: 'us-east-1' },
    'runs-per-month': { type: 'string' },
    'tokens-per-second': { type: 'string' },
    'rows-per-second': { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  if (!values.pipeline) throw new UsageError('--pipeline NAME is required (a config in pipelines/NAME.json)');
  const runsPerMonth = positiveNumber('runs-per-month', values['runs-per-month']) ?? 1;
  const tokensPerSecond = positiveNumber('tokens-per-second', values['tokens-per-second']);
  const rowsPerSecond = positiveNumber('rows-per-second', values['rows-per-second']);
  const config = await loadPipelineConfig(values.pipelines ?? defaultPipelinesDir(), values.pipeline);
  const region = values.region;
  const prices = pricesFor(region);
  const instanceType = config.kind === 'embed' ? config.endpoint.instanceType : config.model.instanceType;
  // Today's endpoints are always on: what one costs a day whatever runs, beside the run's share.
  const alwaysOnPerDay = Math.round(instanceHourPrice(region, instanceType).usd * 24 * 1e6) / 1e6;

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
  const anchors =
    estimate.work.unit === 'tokens'
      ? PER_TOKEN_ANCHORS.map((a) => ({
          name: a.name,
          perRun: (estimate.work.amount / 1_000_000) * a.usdPerMillionTokens,
        }))
      : [];
  const report = {
    pipeline: config.name,
    region,
    files: files.length,
    work: estimate.work,
    units: estimate.units,
    throughputPerSecond: estimate.throughputPerSecond,
    throughputSource:
      (tokensPerSecond ?? rowsPerSecond)
        ? 'given'
        : config.kind === 'embed'
          ? `assumed: ${THROUGHPUT_ASSUMPTIONS.tokensPerSecond} padded tokens/s, the simulated GPU of docs/sizing.md`
          : `assumed: ${THROUGHPUT_ASSUMPTIONS.rowsPerSecond} rows/s, the XGBoost evaluator of docs/scoring.md`,
    runsPerMonth,
    perRun,
    perMonth: runsPerMonth === 1 ? undefined : { total: Math.round(perRun.total * runsPerMonth * 1e6) / 1e6 },
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
    `  throughput ${estimate.throughputPerSecond.toLocaleString('en-US')}/s per instance (${report.throughputSource})`,
  );
  io.out(
    `  endpoint  ${usd(perRun.endpoint)}  (${perRun.usage.endpointSeconds.toFixed(1)} s of ${perRun.usage.instanceType})`,
  );
  io.out(`  lambda    ${usd(perRun.lambda)}  (${perRun.usage.lambdaGbSeconds.toFixed(1)} GB-s)`);
  io.out(`  requests  ${usd(perRun.requests)}`);
  io.out(`  storage   ${usd(perRun.storage)}  (one month of the outputs)`);
  io.out(
    `  total     ${usd(perRun.total)} per run${report.perMonth ? `, ${usd(report.perMonth.total)} for ${runsPerMonth} runs a month` : ''}`,
  );
  io.out(
    `  always-on ${usd(alwaysOnPerDay)} a day: the ${instanceType} endpoint as deployed today, whatever runs`,
  );
  for (const anchor of anchors)
    io.out(`  compare   ${usd(anchor.perRun)} per run at ${anchor.name} ($0.01 per 1M tokens)`);
  return 0;
}
