import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CUSTOMER_COLUMNS, customerCsvLines, customers } from '../scripts/credit-risk-sample.ts';
import { LocalRunStore } from '../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../shared/adapters/local/memory-object-store.ts';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';
import type { ScorePipelineConfig } from '../shared/config/pipeline-config.ts';
import { coldStartFor } from '../shared/cost/cold-start.ts';
import { instanceHourPrice, pricesFor } from '../shared/cost/pricing.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';
import { planRun } from '../shared/plan/plan-run.ts';
import type { CallStats } from '../shared/ports/embedding-endpoint.ts';
import type { ScoringEndpoint } from '../shared/ports/scoring-endpoint.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { InWorkerScoringEndpoint } from '../shared/scoring/in-worker/in-worker-scoring-endpoint.ts';
import { maxModelBytesFor, XgboostModelCache } from '../shared/scoring/in-worker/model-cache.ts';
import { processUnit } from '../shared/work/process-unit.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const REGION = 'us-east-1';
const MIB = 1024 * 1024;

export interface HostingBenchOptions {
  /** Customers scored per timed pass (generated, pipelines/credit-risk.json). @default 100000 */
  readonly rows?: number;
  /** Timed passes of each path; the best counts. @default 3 */
  readonly repeats?: number;
  /** Rows an hourly run scores. @default 1000000 */
  readonly rowsPerRun?: number;
}

/** Answers every request at once with one constant probability per row: the work path with no model time. */
class InstantEndpoint implements ScoringEndpoint {
  readonly requests: string[] = [];
  async score(csvRows: string, stats: CallStats): Promise<string> {
    stats.endpointCalls += 1;
    this.requests.push(csvRows);
    let rows = 0;
    for (let at = csvRows.indexOf('\n'); at >= 0; at = csvRows.indexOf('\n', at + 1)) rows += 1;
    return '0.5\n'.repeat(rows);
  }
}

class NullQueue implements WorkQueue {
  async sendUnits(_units: readonly WorkUnit[]) {}
  async requestFinalize(_runId: string) {}
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * The hosting choice for scoring (`model.hosting`, issue 14): what an hourly run of
 * 1,000,000 rows of pipelines/credit-risk.json costs a day in the worker, on SageMaker
 * Serverless Inference and on a run-scoped ml.m5.large, from the worker's speed measured
 * here and the prices in shared/cost/pricing.ts.
 *
 * Measured (one thread, this machine, best of `repeats`):
 * - `unit`: processUnit over generated customers (read, parse, features, Parquet part,
 *   run store) with an endpoint that answers at once: the worker time every hosting pays;
 * - `inWorker`: the same units scored in the worker (InWorkerScoringEndpoint): the extra
 *   time is what in-worker hosting adds to the work Lambda;
 * - `scoreCalls`: InWorkerScoringEndpoint.score alone on the requests the units sent
 *   (CSV parsed, trees walked, the answer written), for the evaluator's own rate.
 */
export async function runHostingBench(options: HostingBenchOptions = {}) {
  const { rows = 100_000, repeats = 3, rowsPerRun = 1_000_000 } = options;
  const base = await loadPipelineConfig(path.join(root, 'pipelines'), 'credit-risk');
  if (base.kind !== 'score') throw new Error('credit-risk is not a score pipeline');
  const config: ScorePipelineConfig = { ...base, model: { ...base.model, hosting: 'in-worker' } };
  const store = new MemoryObjectStore();
  for (const name of ['feature-stats.json', 'occupation-embedding.json', 'model.json'])
    await store.put(
      `models/credit-risk/${name}`,
      await readFile(path.join(root, 'pipelines/models/credit-risk', name)),
    );
  const source = 'incoming/credit-risk/customers.csv';
  await store.put(source, `${CUSTOMER_COLUMNS.join(',')}\n${customerCsvLines(customers(rows, 7))}\n`);

  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-bench-hosting-'));
  try {
    const queue = new NullQueue();
    let pass = 0;
    /** One run over the source, its units processed one after another on this thread; seconds. */
    const timeRun = async (endpoint: ScoringEndpoint): Promise<number> => {
      pass += 1;
      const runs = new LocalRunStore(path.join(dir, `runs-${pass}`));
      const { units } = await planRun({ store, runs, queue }, config, {
        runId: `r-20261207T030000Z-${pass.toString(16).padStart(6, '0')}`,
        trigger: 'local',
        keys: [source],
        now: new Date('2026-12-07T03:00:00Z'),
      });
      const deps = {
        store,
        runs,
        queue,
        tokenCounter: new EstimatingTokenCounter(),
        scoringEndpoint: endpoint,
      };
      const started = process.hrtime.bigint();
      for (const unit of units) {
        const outcome = await processUnit(deps, config, unit, { isLastAttempt: true });
        if (outcome.status !== 'succeeded') throw new Error(`unit ${unit.unitId}: ${outcome.status}`);
      }
      return Number(process.hrtime.bigint() - started) / 1e9;
    };
    const cache = new XgboostModelCache();
    const inWorker = new InWorkerScoringEndpoint({
      store,
      modelKey: config.model.modelKey,
      cache,
      limits: { maxModelBytes: maxModelBytesFor(config.workers.memoryMiB) },
    });
    const model = await inWorker.model();

    const instant = new InstantEndpoint();
    await timeRun(instant); // warm-up (JIT, transformer, model)
    await timeRun(inWorker);
    let unitBest = Number.POSITIVE_INFINITY;
    let inWorkerBest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < repeats; i += 1) {
      unitBest = Math.min(unitBest, await timeRun(new InstantEndpoint()));
      inWorkerBest = Math.min(inWorkerBest, await timeRun(inWorker));
    }
    const requests = instant.requests;
    const scoredRows = requests.reduce((n, body) => n + body.split('\n').length - 1, 0);
    let callsBest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < repeats; i += 1) {
      const stats = { endpointCalls: 0, throttled: 0, retries: 0 };
      const started = process.hrtime.bigint();
      for (const body of requests) await inWorker.score(body, stats);
      callsBest = Math.min(callsBest, Number(process.hrtime.bigint() - started) / 1e9);
    }
    const requestBytes = requests.reduce((n, body) => n + Buffer.byteLength(body), 0);
    const answerBytes = Buffer.byteLength(
      await inWorker.score(requests[0]!, { endpointCalls: 0, throttled: 0, retries: 0 }),
    );

    // Per row, as measured.
    const unitSecondsPerRow = unitBest / scoredRows;
    const extraSecondsPerRow = Math.max(0, inWorkerBest - unitBest) / scoredRows;
    const callSecondsPerRow = callsBest / scoredRows;
    const bytesPerRow = requestBytes / scoredRows;
    const answerBytesPerRow = answerBytes / (requests[0]!.split('\n').length - 1);

    // Prices (us-east-1, shared/cost/pricing.ts).
    const prices = pricesFor(REGION);
    const lambdaGbSecond = prices.lambdaArmGbSecond.usd;
    const serverlessGbSecond = prices.serverlessInferenceGbSecond?.usd;
    const dataPerGb = prices.sagemakerDataProcessedGb?.usd;
    if (serverlessGbSecond === undefined || dataPerGb === undefined)
      throw new Error(`no serverless inference prices for ${REGION} in shared/cost/pricing.ts`);
    const instanceHour = instanceHourPrice(REGION, config.model.instanceType).usd;
    const workerGb = config.workers.memoryMiB / 1024;
    const serverlessGb = config.model.serverless.memoryMiB / 1024;
    const runsPerDay = 24;

    // One hourly run of `rowsPerRun` rows, by hosting: what each adds beyond the worker
    // time every hosting pays (read, features, Parquet: `unit`).
    const evaluationSeconds = rowsPerRun * callSecondsPerRow;
    // The larger of the score calls' own time and what they added to whole units (the two
    // differ by noise and by the answer's writing and reading, which endpoints need too).
    const inWorkerExtraSeconds = rowsPerRun * Math.max(callSecondsPerRow, extraSecondsPerRow);
    const inWorkerRun = inWorkerExtraSeconds * workerGb * lambdaGbSecond;
    // The container is assumed to evaluate as fast as the worker does (XGBoost's own
    // predictor is faster per row, its CSV and HTTP handling slower); the workers wait on
    // its calls meanwhile, which bills them about what in-worker evaluation does (left out
    // here, in the endpoints' favour).
    const dataGb = (rowsPerRun * (bytesPerRow + answerBytesPerRow)) / 1e9;
    const serverlessRun = evaluationSeconds * serverlessGb * serverlessGbSecond + dataGb * dataPerGb;
    const coldStartFigure = coldStartFor(config.model.instanceType);
    const coldStart = coldStartFigure.seconds;
    const cooldown = config.model.capacity.cooldownSeconds;
    // Runs an hour apart with a cooldown under an hour: every run pays a cold start.
    const instanceSeconds = coldStart + evaluationSeconds + cooldown;
    const instanceRun = (instanceSeconds / 3600) * instanceHour;
    const perDay = (usd: number) => round(usd * runsPerDay, 6);
    // Sensitivity: a Lambda core at a quarter of this machine's speed.
    const slowLambda = perDay(inWorkerRun * 4);
    const daily = {
      'in-worker': perDay(inWorkerRun),
      serverless: perDay(serverlessRun),
      instance: perDay(instanceRun),
      alwaysOnInstance: round(24 * instanceHour, 6),
    };
    return {
      name: 'hosting' as const,
      pipeline: 'credit-risk',
      model: model.predictor.describe(),
      measured: {
        rows: scoredRows,
        repeats,
        unit: {
          what: 'processUnit with an endpoint that answers at once: read, parse, features, Parquet, run store',
          bestSeconds: round(unitBest, 4),
          rowsPerSecond: Math.round(1 / unitSecondsPerRow),
        },
        inWorker: {
          what: 'the same units scored in the worker (InWorkerScoringEndpoint)',
          bestSeconds: round(inWorkerBest, 4),
          rowsPerSecond: Math.round(scoredRows / inWorkerBest),
          /** inWorker - unit, per row: what scoring in the worker added to whole units. */
          extraMicrosecondsPerRow: round(extraSecondsPerRow * 1e6, 3),
        },
        scoreCalls: {
          what: `InWorkerScoringEndpoint.score on the ${requests.length} requests of ${config.model.maxRowsPerRequest} rows: CSV parsed, trees walked, answer written`,
          bestSeconds: round(callsBest, 4),
          rowsPerSecond: Math.round(1 / callSecondsPerRow),
        },
        requestBytesPerRow: round(bytesPerRow, 1),
        answerBytesPerRow: round(answerBytesPerRow, 1),
      },
      hourlyRun: {
        rows: rowsPerRun,
        runsPerDay,
        workerMemoryMiB: config.workers.memoryMiB,
        commonWorkerSeconds: round(rowsPerRun * unitSecondsPerRow, 2),
        commonLambdaPerDay: perDay(rowsPerRun * unitSecondsPerRow * workerGb * lambdaGbSecond),
        inWorker: {
          basis:
            'the larger of the score calls timed alone (scoreCalls) and inWorker - unit, charged whole to the work Lambda',
          extraLambdaSeconds: round(inWorkerExtraSeconds, 2),
          extraLambdaGbSeconds: round(inWorkerExtraSeconds * workerGb, 2),
        },
        serverless: {
          memoryMiB: config.model.serverless.memoryMiB,
          inferenceSeconds: round(evaluationSeconds, 2),
          gbSeconds: round(evaluationSeconds * serverlessGb, 2),
          dataProcessedGb: round(dataGb, 4),
        },
        instance: {
          instanceType: config.model.instanceType,
          coldStartSeconds: coldStart,
          busySeconds: round(evaluationSeconds, 2),
          cooldownSeconds: cooldown,
          billedSeconds: round(instanceSeconds, 1),
        },
      },
      dailyUsd: daily,
      inWorkerAtAQuarterOfThisSpeed: slowLambda,
      cheapest: Object.entries({
        'in-worker': daily['in-worker'],
        serverless: daily.serverless,
        instance: daily.instance,
      }).sort((a, b) => a[1] - b[1])[0]![0],
      prices: {
        region: REGION,
        lambdaArmGbSecond: lambdaGbSecond,
        serverlessInferenceGbSecond: serverlessGbSecond,
        sagemakerDataProcessedGb: dataPerGb,
        [`${config.model.instanceType}Hour`]: instanceHour,
        coldStartSource: coldStartFigure.source,
      },
      // Deployed: Lambda's heap is not the bound, its memory is.
      largestInWorkerModelMiB: Math.round(
        maxModelBytesFor(config.workers.memoryMiB, Number.POSITIVE_INFINITY) / MIB,
      ),
      rerun: 'npm run bench -- hosting',
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
