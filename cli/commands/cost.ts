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
import { measureGenerateInputs, measureRecommendInputs } from './cost-inputs.ts';
import {
  type CostInputs,
  costReport,
  generateCostReport,
  type MonthSchedule,
  printCostReport,
  printGenerateCostReport,
  printRecommendCostReport,
  recommendCostReport,
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
 * before deploying. The planner's own sampling estimates the work (tokens or rows; for
 * generate, the rendered prompts' tokens and `generation.maxTokens` per record; for
 * recommend, the interactions and users); the cost model (shared/cost) prices it with the
 * region's sourced prices, by where the model runs (run-scoped copies, serverless,
 * in-worker, none). `--schedule "cron(...)"|"rate(...)"`
 * (or the pipeline's own `schedule`, or `--runs-per-month N`) gives a month's bill by
 * component; the per-token anchors are printed beside it.
 */
export async function costCommand(args: string[], io: CommandIo): Promise<number> {
  const request = parseCostArgs(args);
  const pipelinesDir = request.pipelinesDir ?? defaultPipelinesDir();
  const loaded = await loadPipelineConfig(pipelinesDir, request.pipeline);
  // A score pipeline's inferred spec (rows are priced by its columns), from the model beside the config.
  const config =
    loaded.kind === 'score' ? await scoreConfigOfRun(new FsObjectStore(pipelinesDir), loaded) : loaded;
  const pricing = regionPricing(request.region, config);
  const schedule = scheduleOf(request, config);
  const inputs = await classifiedInputs(request.paths, config);
  const work = await sampleWork(inputs, config);
  if (config.kind === 'generate') {
    const measured = await measureGenerateInputs(
      inputs.store,
      inputs.files,
      config,
      request.completionTokensPerRecord,
    );
    const report = generateCostReport(request, config, schedule, work, measured, pricing);
    if (request.json) io.out(JSON.stringify(report));
    else printGenerateCostReport(io, config, report);
    return 0;
  }
  if (config.kind === 'recommend') {
    const measured = await measureRecommendInputs(inputs.store, inputs.files, config);
    const users = request.users ?? measured.users;
    const given = { ...measured, users, usersCounted: request.users !== undefined || measured.usersCounted };
    const report = recommendCostReport(request.region, config, schedule, work, given, pricing);
    if (request.json) io.out(JSON.stringify(report));
    else printRecommendCostReport(io, config, report);
    return 0;
  }
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
  /** Generate: completion tokens/s of one LLM copy, replacing the assumption. */
  readonly completionTokensPerSecond: number | undefined;
  /** Generate: mean completion tokens of an answer, instead of `generation.maxTokens`. */
  readonly completionTokensPerRecord: number | undefined;
  /** Recommend: the users who will get a list, instead of the count read from the inputs. */
  readonly users: number | undefined;
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
    'completion-tokens-per-second': { type: 'string' },
    'completion-tokens': { type: 'string' },
    users: { type: 'string' },
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
    completionTokensPerSecond: positiveNumber(
      'completion-tokens-per-second',
      values['completion-tokens-per-second'],
    ),
    completionTokensPerRecord: positiveNumber('completion-tokens', values['completion-tokens']),
    users: positiveNumber('users', values.users),
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

/** The inputs where they are: a store rooted at / whose keys are the absolute paths, and each file classified. */
interface ClassifiedInputs {
  readonly store: FsObjectStore;
  readonly files: ClassifiedFile[];
}

async function classifiedInputs(paths: string[], config: PipelineConfig): Promise<ClassifiedInputs> {
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
  return { store, files };
}

/**
 * The planner's own sampling over the inputs: how many files, their estimated work, and the
 * records they hold (an embed run's documents, one chunk index entry each): counted when
 * every file's count is (read whole, Parquet footers, text files), sampled when any was
 * extrapolated, none when any file's sample found no record (the index then takes one
 * document per chunk, its upper bound).
 */
async function sampleWork({ store, files }: ClassifiedInputs, config: PipelineConfig): Promise<SampledWork> {
  const estimator = new EstimatingTokenCounter();
  const counter = config.kind === 'embed' ? await tokenCounterFor(store, config, estimator) : estimator;
  const estimates = await estimateCosts(store, files, config, { counter });
  const estimatedCost = estimates.reduce((sum, e) => sum + e.estCost, 0);
  if (estimates.some((e) => e.estRecords === undefined)) return { files: files.length, estimatedCost };
  const documents = {
    count: Math.round(estimates.reduce((sum, e) => sum + (e.estRecords ?? 0), 0)),
    counted: estimates.every((e) => e.recordsCounted === true),
  };
  return { files: files.length, estimatedCost, documents };
}
