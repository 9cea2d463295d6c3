import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FsObjectStore } from '../../shared/adapters/local/fs-object-store.ts';
import { loadPipelineConfig } from '../../shared/config/load-pipeline.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import { runsPerMonth, ScheduleUnsupported } from '../../shared/cost/schedule-runs.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { tokenCounterFor } from '../../shared/embedding/token-counter-for.ts';
import { classifySource } from '../../shared/plan/plan-units.ts';
import { type ClassifiedFile, estimateCosts } from '../../shared/plan/sample-cost.ts';
import { scoreConfigOfRun } from '../../shared/scoring/run-feature-spec.ts';
import { resolveInputs } from '../stage-inputs.ts';
import { parseCommandArgs, UsageError } from '../usage.ts';
import {
  type CostInputs,
  costReport,
  type MonthSchedule,
  printCostReport,
  regionPricing,
  type SampledWork,
} from './cost-report.ts';
import type { CommandIo } from './io.ts';
import { defaultPipelinesDir } from './run.ts';

const positiveNumber = (flag: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${flag} must be a positive number, got "${value}"`);
  return n;
};

/**
 * `sluice cost PATH... --pipeline NAME`: what a run over these inputs would cost deployed,
 * before deploying. The planner's own sampling estimates the work (tokens or rows); the
 * cost model (shared/cost) prices it with the region's sourced prices, by where the model
 * runs (run-scoped copies, serverless, in-worker). `--schedule "cron(...)"|"rate(...)"`
 * (or the pipeline's own `schedule`, or `--runs-per-month N`) gives a month's bill by
 * component; the per-token anchors are printed beside it.
 */
export async function costCommand(args: string[], io: CommandIo): Promise<number> {
  const request = parseCostArgs(args);
  const pipelinesDir = request.pipelinesDir ?? defaultPipelinesDir();
  const loaded = await loadPipelineConfig(pipelinesDir, request.pipeline);
  if (loaded.kind === 'recommend')
    throw new UsageError(
      `pipeline ${loaded.name} is a recommend pipeline, which this estimate does not price yet (its work follows similarity, not rows): run it locally and read the summary's cost`,
    );
  if (loaded.kind === 'generate')
    throw new UsageError(
      `pipeline ${loaded.name} is a generate pipeline, which this estimate does not price yet (its work follows the answers' lengths and the LLM endpoint's instance): run it locally on a sample and read the summary's tokens`,
    );
  // A score pipeline's inferred spec (rows are priced by its columns), from the model beside the config.
  const config =
    loaded.kind === 'score' ? await scoreConfigOfRun(new FsObjectStore(pipelinesDir), loaded) : loaded;
  const pricing = regionPricing(request.region, config);
  const schedule = scheduleOf(request, config);
  const work = await sampleWork(request.paths, config);
  const report = costReport(request, config, schedule, work, pricing);
  if (request.json) io.out(JSON.stringify(report));
  else printCostReport(io, config, report);
  return 0;
}

/** The command line, checked: every number positive, the pipeline named. */
interface CostRequest extends CostInputs {
  readonly pipeline: string;
  readonly pipelinesDir: string | undefined;
  readonly paths: string[];
  readonly givenRuns: number | undefined;
  readonly schedule: string | undefined;
  readonly json: boolean;
}

function parseCostArgs(args: string[]): CostRequest {
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
  return {
    pipeline: values.pipeline,
    pipelinesDir: values.pipelines,
    region: values.region,
    paths: positionals,
    givenRuns: positiveNumber('runs-per-month', values['runs-per-month']),
    schedule: values.schedule,
    tokensPerSecond: positiveNumber('tokens-per-second', values['tokens-per-second']),
    rowsPerSecond: positiveNumber('rows-per-second', values['rows-per-second']),
    json: values.json,
  };
}

/** A month's runs: --runs-per-month, else --schedule, else the pipeline's own schedule; none without any. */
function scheduleOf(request: CostRequest, config: PipelineConfig): MonthSchedule | undefined {
  const expression = request.schedule ?? config.schedule?.expression;
  try {
    if (request.givenRuns !== undefined)
      return { runs: request.givenRuns, expression: `${request.givenRuns} runs a month` };
    if (expression !== undefined) return { runs: runsPerMonth(expression), expression };
    return undefined;
  } catch (error) {
    if (error instanceof ScheduleUnsupported) throw new UsageError(`--schedule: ${error.message}`);
    throw error;
  }
}

/** The planner's own sampling over the inputs where they are: how many files, and their estimated work. */
async function sampleWork(paths: string[], config: PipelineConfig): Promise<SampledWork> {
  // A store rooted at / whose keys are the absolute paths.
  const inputs = await resolveInputs(paths, config.name);
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
  return { files: files.length, estimatedCost: estimates.reduce((sum, e) => sum + e.estCost, 0) };
}
