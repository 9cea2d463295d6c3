/**
 * The pipeline's own share (issue 14): what the work Lambda costs per 1M tokens embedded,
 * as a share of what the endpoint costs for them.
 *
 * CPU: the real worker path (processUnit: range read, parse, chunk, hash, batch, Parquet
 * part, run store) over generated documents, against an in-process endpoint that answers
 * at once with vectors of the configured dimension, so the process's CPU time is Sluice's
 * own. The SageMaker SDK's CPU per call is added from bench/results/overhead.json's
 * perCallCpu (measured on this machine, echo server included: an upper bound).
 *
 * Wall: a deployed worker bills while it waits on the endpoint too. With W workers keeping
 * C copies busy at their throughput T each, the workers bill W x memory for the 1M tokens'
 * 1e6 / (C x T) s. Side by side: the old sizing (one event source at workers.maxConcurrency
 * whatever the copies: 8 x 2,048 MiB on one copy) and the new one, where the event source's
 * limit follows the copies (decideWorkers: max(2, copies x capacity.workersPerCopy)), at the
 * configured memory and at the largest memory that keeps the floor of 2 workers on one copy
 * within the target.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleDocuments } from '../events/generate-samples.ts';
import { CONTEXT_KEYS, DEFAULT_PIPELINES } from '../infra/context.ts';
import { deploymentSettings } from '../infra/deployment-settings.ts';
import { LocalRunStore } from '../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../shared/adapters/local/memory-object-store.ts';
import { workPoolsOf } from '../shared/capacity/work-pools.ts';
import { DEFAULT_WORKERS_PER_COPY, decideWorkers, MIN_WORKERS } from '../shared/capacity/workers.ts';
import { loadPipelineConfig } from '../shared/config/load-pipeline.ts';
import type { EmbedPipelineConfig, PipelineConfig } from '../shared/config/pipeline-config.ts';
import { THROUGHPUT_ASSUMPTIONS } from '../shared/cost/estimate-run.ts';
import { instanceHourPrice, pricesFor } from '../shared/cost/pricing.ts';
import type { WorkUnit } from '../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';
import { planRun } from '../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../shared/ports/work-queue.ts';
import { processUnit } from '../shared/work/process-unit.ts';

const REGION = 'us-east-1';
/** Lambda gives one vCPU at 1,769 MB (AWS Lambda docs, "Configuring memory"). */
const MB_PER_VCPU = 1769;

class NullQueue implements WorkQueue {
  async sendUnits(_units: readonly WorkUnit[]) {}
  async requestFinalize(_runId: string) {}
}

/** Answers every batch at once: one vector of `dimension` floats per input. */
class InstantEndpoint implements EmbeddingEndpoint {
  calls = 0;
  constructor(private readonly dimension: number) {}
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    this.calls += 1;
    stats.endpointCalls += 1;
    return inputs.map((_, i) => Array.from({ length: this.dimension }, (_, d) => ((i + d) % 7) / 7));
  }
}

const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

export async function runPipelineShareBench(
  documents = Number(process.env.PIPELINE_SHARE_DOCUMENTS ?? 20_000),
) {
  const pipelinesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'pipelines');
  const config = (await loadPipelineConfig(pipelinesDir, 'docs')) as EmbedPipelineConfig;
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-share-'));
  try {
    const store = new MemoryObjectStore();
    const runs = new LocalRunStore(dir);
    const queue = new NullQueue();
    const counter = new EstimatingTokenCounter();
    const key = 'incoming/docs/share.jsonl';
    const docs = sampleDocuments(documents, 7).map((d, i) => ({ ...d, id: `s${i}` }));
    await store.put(key, `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: 'r-20261207T030000Z-share0',
      trigger: 's3',
      keys: [key],
      now: new Date('2026-12-07T03:00:00Z'),
    });
    const endpoint = new InstantEndpoint(config.endpoint.dimension);
    let tokens = 0;
    let paddedTokens = 0;
    const startedCpu = cpuSeconds();
    const startedWall = performance.now();
    for (const unit of units) {
      const outcome = await processUnit(
        { store, runs, queue, endpoint, tokenCounter: counter },
        config,
        unit,
        {
          isLastAttempt: false,
        },
      );
      if (outcome.status !== 'succeeded') throw new Error(`unit ${unit.unitId}: ${outcome.status}`);
      tokens += outcome.counts.realTokens;
      paddedTokens += outcome.counts.paddedTokens;
    }
    const cpu = cpuSeconds() - startedCpu;
    const wall = (performance.now() - startedWall) / 1000;

    const overhead = JSON.parse(
      readFileSync(
        path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'overhead.json'),
        'utf8',
      ),
    ) as { perCallCpu?: { sdkMs?: number } };
    const sdkMsPerCall = overhead.perCallCpu?.sdkMs ?? 0;
    const sdkCpu = (endpoint.calls * sdkMsPerCall) / 1000;
    const perMillion = (seconds: number) => seconds / (tokens / 1e6);
    const cpuPerMillion = perMillion(cpu);
    const cpuWithSdkPerMillion = perMillion(cpu + sdkCpu);

    const prices = pricesFor(REGION);
    const gbSecond = prices.lambdaArmGbSecond.usd;
    const hourly = instanceHourPrice(REGION, config.endpoint.instanceType).usd;
    const tokensPerSecond = THROUGHPUT_ASSUMPTIONS.tokensPerSecond;
    // The endpoint's cost per 1M tokens while busy (no warm-up or cooldown: the smallest
    // denominator, so the largest share); the simulated day's figure is larger.
    const endpointPerMillion = ((1e6 / tokensPerSecond) * hourly) / 3600;
    const memoryGb = config.workers.memoryMiB / 1024;
    const workers = config.workers.maxConcurrency;
    // Tokens count by what the endpoint bills: padded tokens reach it, real tokens are the work.
    const cpuShare = (cpuWithSdkPerMillion * memoryGb * gbSecond) / endpointPerMillion;
    const cpuShareWithoutSdk = (cpuPerMillion * memoryGb * gbSecond) / endpointPerMillion;
    const wallShare = (w: number, gb: number) =>
      (w * gb * (1e6 / tokensPerSecond) * gbSecond) / endpointPerMillion;
    // vCPUs the workers need together to keep one copy fed: T tokens/s x CPU s per token.
    const vcpusNeeded = (tokensPerSecond * cpuWithSdkPerMillion) / 1e6;
    const sizing = [512, 1024, 1769, 2048].map((memoryMiB) => {
      const vcpu = memoryMiB / MB_PER_VCPU;
      const needed = Math.max(1, Math.ceil(vcpusNeeded / Math.min(1, vcpu)));
      return {
        memoryMiB,
        workersToFeedOneCopy: needed,
        wallShare: round4(wallShare(needed, memoryMiB / 1024)),
      };
    });
    const target = 0.05;
    const newSizing = followTheCopies({ config, target, gbSecond, hourly });
    const shipped = await stackMemory(pipelinesDir, cdkJsonPipelines(pipelinesDir));
    const rowsAt = (memoryMiB: number) =>
      newSizing.byCopies.map((row) => ({
        copies: row.copies,
        workers: row.workers,
        share: round4((row.workers * (memoryMiB / 1024) * gbSecond * 3600) / (row.copies * hourly)),
      }));
    const worstOf = (rows: readonly { share: number }[]) => Math.max(...rows.map((row) => row.share));
    const shippedRows = rowsAt(shipped.workMemoryMiB);
    const shippedWorst = worstOf(shippedRows);
    // Every shipped pipeline in one stack: recommend (2,048 MiB) is in the compute pool.
    const all = await stackMemory(pipelinesDir, allShippedPipelines(pipelinesDir));
    const allRows = rowsAt(all.workMemoryMiB);
    const allWorst = worstOf(allRows);
    const allOneFunctionWorst = worstOf(rowsAt(all.oneFunctionMemoryMiB));
    return {
      name: 'pipeline-share' as const,
      workload: `${documents.toLocaleString('en-US')} generated documents (events/generate-samples.ts), pipelines/docs.json (${config.endpoint.dimension} floats, chunks of ${config.chunking.maxTokens} tokens), ${units.length} unit(s) through processUnit`,
      tokens,
      paddedTokens,
      endpointCalls: endpoint.calls,
      measured: {
        cpuSeconds: round4(cpu),
        wallSeconds: round4(wall),
        cpuSecondsPerMillionTokens: round4(cpuPerMillion),
        sdkCpuMsPerCall: sdkMsPerCall,
        sdkCpuSecondsPerMillionTokens: round4(perMillion(sdkCpu)),
        note: 'CPU time of this process (process.cpuUsage) on this machine, not Graviton; the SDK per-call CPU is bench/results/overhead.json perCallCpu.sdkMs',
      },
      prices: {
        lambdaArmGbSecond: gbSecond,
        endpointHourly: hourly,
        endpointTokensPerSecond: tokensPerSecond,
        endpointTokensPerSecondSource: THROUGHPUT_ASSUMPTIONS.tokensPerSecondSource,
        endpointUsdPerMillionTokens: round6(endpointPerMillion),
      },
      cpuOnly: {
        memoryMiB: config.workers.memoryMiB,
        lambdaUsdPerMillionTokens: round6(cpuWithSdkPerMillion * memoryGb * gbSecond),
        share: round4(cpuShare),
        shareWithoutSdk: round4(cpuShareWithoutSdk),
        met: cpuShare <= target,
      },
      wallTime: {
        old: {
          sizing:
            'one work event source at the largest workers.maxConcurrency, whatever the copies (before issue 14 was fixed)',
          workers,
          copies: 1,
          memoryMiB: config.workers.memoryMiB,
          lambdaUsdPerMillionTokens: round6(workers * memoryGb * (1e6 / tokensPerSecond) * gbSecond),
          share: round4(wallShare(workers, memoryGb)),
          met: wallShare(workers, memoryGb) <= target,
          why: `${workers} workers x ${config.workers.memoryMiB} MiB bill for the whole time the copy works on the 1M tokens (${round4(1e6 / tokensPerSecond)} s), mostly waiting on it`,
        },
        new: newSizing,
        shippedStack: {
          sizing:
            'the stack as cdk.json deploys it: its pipelines loaded from pipelines/, the work function at the largest workers.memoryMiB of its endpoint pool (workPoolsOf), the event source following the copies',
          pipelines: shipped.names,
          workMemoryMiB: shipped.workMemoryMiB,
          byCopies: shippedRows,
          worstShare: shippedWorst,
          met: shippedWorst <= target,
          // Baseline: the same stack with the work function at the 2,048 MiB the samples set before.
          before: {
            workMemoryMiB: 2048,
            worstShare: round4(
              Math.max(...shippedRows.map((row) => row.share)) * (2048 / shipped.workMemoryMiB),
            ),
          },
        },
        allShippedPipelines: {
          sizing:
            'one stack serving every pipeline in pipelines/: the embedding workers run in the work function sized by the endpoint pool (workPoolsOf: embed, generate, score on serverless/instance); in-worker scoring and recommend get the WorkCompute function. Baseline in the same run: one work function for all at the largest workers.memoryMiB (before the split)',
          pipelines: all.names,
          split: all.split,
          workMemoryMiB: all.workMemoryMiB,
          ...(all.computeMemoryMiB === undefined ? {} : { workComputeMemoryMiB: all.computeMemoryMiB }),
          byCopies: allRows,
          worstShare: allWorst,
          met: allWorst <= target,
          oneWorkFunction: {
            workMemoryMiB: all.oneFunctionMemoryMiB,
            worstShare: allOneFunctionWorst,
            met: allOneFunctionWorst <= target,
          },
        },
      },
      sizing: {
        vcpusToFeedOneCopy: round4(vcpusNeeded),
        options: sizing,
        maxWorkerGbPerCopyForTarget: round4(
          (target * endpointPerMillion) / ((1e6 / tokensPerSecond) * gbSecond),
        ),
        recommendation: `The wall-time share is workers x GB x ${gbSecond} x 3600 / $${hourly} per copy, whatever the copy's throughput: at most ${round4((target * endpointPerMillion) / ((1e6 / tokensPerSecond) * gbSecond))} GB of workers per busy copy keeps it within 5%. One copy at ${tokensPerSecond.toLocaleString('en-US')} tokens/s needs ${round4(vcpusNeeded)} vCPU of workers to stay fed (Lambda: 1 vCPU per 1,769 MB), so 1 worker per copy (capacity.workersPerCopy 1, endpoint.concurrency high enough to fill the copy), 2 on one copy (Lambda's least MaximumConcurrency): see wallTime.new; ${workers} workers of ${config.workers.memoryMiB} MiB per copy is ${round4(wallShare(workers, memoryGb))}`,
      },
      target: `Lambda <= ${target * 100}% of the endpoint per 1M tokens`,
      met: {
        cpuOnly: cpuShare <= target,
        wallTimeOld: wallShare(workers, memoryGb) <= target,
        wallTimeNewAtConfiguredMemory: newSizing.met.atConfiguredMemory,
        wallTimeNewAtEndpointBoundMemory: newSizing.met.atEndpointBoundMemory,
        shippedStack: shippedWorst <= target,
        allShippedPipelines: allWorst <= target,
      },
      rerun: 'npm run bench -- pipeline-share',
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A stack's work function memory for the embedding workers: the work queue's pipelines'
 * largest `workers.memoryMiB` (`workPoolsOf`: a stack with compute pipelines as well gives
 * them a second work function), and, as the baseline, what one work function for every
 * pipeline gets (the largest of all, as before the split).
 */
interface StackMemory {
  readonly names: string[];
  readonly split: boolean;
  readonly workMemoryMiB: number;
  readonly computeMemoryMiB?: number;
  readonly oneFunctionMemoryMiB: number;
}

async function stackMemory(pipelinesDir: string, names: readonly string[]): Promise<StackMemory> {
  const configs: PipelineConfig[] = await Promise.all(
    names.map((name) => loadPipelineConfig(pipelinesDir, name)),
  );
  const pools = workPoolsOf(configs);
  const largest = (pool: readonly PipelineConfig[]) => Math.max(...pool.map((p) => p.workers.memoryMiB));
  const settings = deploymentSettings(configs);
  // The stack's own sizing must be the pool's largest (infra/deployment-settings.ts).
  if (settings.workMemoryMiB !== largest(pools.work))
    throw new Error(`deploymentSettings gives Work ${settings.workMemoryMiB} MiB, not its pool's largest`);
  return {
    names: [...names],
    split: pools.split,
    workMemoryMiB: settings.workMemoryMiB,
    ...(pools.split ? { computeMemoryMiB: largest(pools.compute) } : {}),
    oneFunctionMemoryMiB: largest(configs),
  };
}

/** The pipelines cdk.json deploys (`sluice:pipelines`). */
function cdkJsonPipelines(pipelinesDir: string): string[] {
  const cdkJson = JSON.parse(readFileSync(path.join(pipelinesDir, '..', 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  return (cdkJson.context?.[CONTEXT_KEYS.pipelines] as string[] | undefined) ?? [...DEFAULT_PIPELINES];
}

/** Every pipeline shipped in pipelines/ (one stack serving them all). */
function allShippedPipelines(pipelinesDir: string): string[] {
  return readdirSync(pipelinesDir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => file.slice(0, -'.json'.length))
    .sort();
}

const round4 = (n: number) => Math.round(n * 1e4) / 1e4;
const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

/**
 * The new sizing: while runs hold copies, the work event source runs decideWorkers of them
 * (the code plan and the capacity sweeper run), for 1 to maxCopies copies, at the
 * configured memory and at the endpoint-bound memory: the largest multiple of 64 MiB whose
 * floor of 2 workers on one busy copy stays within the target.
 */
function followTheCopies(args: {
  config: EmbedPipelineConfig;
  target: number;
  gbSecond: number;
  hourly: number;
}) {
  const { config, target, gbSecond, hourly } = args;
  const capacity = config.endpoint.capacity;
  // Per busy copy-hour: W workers of M GB bill W x M x 3600 GB-s against C copies' hourly price.
  const share = (workers: number, copies: number, memoryMiB: number) =>
    (workers * (memoryMiB / 1024) * gbSecond * 3600) / (copies * hourly);
  const floorMaxMiB = Math.floor(((target * hourly) / (MIN_WORKERS * gbSecond * 3600)) * 1024);
  const endpointBoundMiB = Math.floor(floorMaxMiB / 64) * 64;
  const byCopies = Array.from({ length: capacity.maxCopies }, (_, i) => {
    const copies = i + 1;
    const workers = decideWorkers({
      components: [{ capacity, liveCopies: [copies] }],
      workerLeases: [],
      ceiling: config.workers.maxConcurrency,
    });
    return {
      copies,
      workers,
      shareAtConfiguredMemory: round4(share(workers, copies, config.workers.memoryMiB)),
      shareAtEndpointBoundMemory: round4(share(workers, copies, endpointBoundMiB)),
    };
  });
  const worst = (pick: (row: (typeof byCopies)[number]) => number) => Math.max(...byCopies.map(pick));
  const worstConfigured = worst((row) => row.shareAtConfiguredMemory);
  const worstEndpointBound = worst((row) => row.shareAtEndpointBoundMemory);
  return {
    sizing:
      'the work event source follows the copies: MaximumConcurrency = max(2, copies x capacity.workersPerCopy) while a lease is live, 2 (Lambda least) when none is (plan raises, the capacity sweeper sets)',
    workersPerCopy: capacity.workersPerCopy ?? DEFAULT_WORKERS_PER_COPY,
    configuredMemoryMiB: config.workers.memoryMiB,
    endpointBoundMemoryMiB: endpointBoundMiB,
    maxMemoryMiBAtFloor: floorMaxMiB,
    endpointBoundVcpuPerWorker: round4(Math.min(1, endpointBoundMiB / MB_PER_VCPU)),
    byCopies,
    worstShare: { atConfiguredMemory: worstConfigured, atEndpointBoundMemory: worstEndpointBound },
    met: {
      atConfiguredMemory: worstConfigured <= target,
      atEndpointBoundMemory: worstEndpointBound <= target,
    },
    why: `Lambda memory is a function setting and MaximumConcurrency is at least 2, so one busy copy carries 2 workers: ${MIN_WORKERS} x ${config.workers.memoryMiB} MiB is ${round4(share(MIN_WORKERS, 1, config.workers.memoryMiB))} of it; within ${target * 100}% needs workers.memoryMiB <= ${floorMaxMiB} (${endpointBoundMiB} MiB gives ${round4(Math.min(1, endpointBoundMiB / MB_PER_VCPU))} vCPU a worker, above the vCPU one copy needs to stay fed)`,
  };
}
