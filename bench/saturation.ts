import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { SageMakerEmbeddingEndpoint } from '../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { sageMakerClientSettings } from '../shared/adapters/aws/sagemaker-invoker.ts';
import { chunkText } from '../shared/embedding/chunker.ts';
import { cutTokenBudgetBatches } from '../shared/embedding/token-budget-batcher.ts';
import { EstimatingTokenCounter } from '../shared/embedding/token-counter.ts';
import { AdaptiveLimiter, type AdaptiveLimiterStats } from '../shared/endpoint/adaptive-limiter.ts';
import type { CallStats } from '../shared/ports/embedding-endpoint.ts';
import { logNormalDocuments } from './log-normal-documents.ts';

/**
 * The simulated GPU every client is measured against (`sluice serve-model` flags): it
 * throttles at once beyond 8 batches, as SageMaker does in front of a container that does
 * not queue. The second scenario gives it a queue of 32 (a container that queues, as TEI
 * does), where overload shows as latency first.
 */
const GPU = { capacity: 8, latencyMsFixed: 20, latencyMsPerToken: 0.02, queue: 0 };
const QUEUED_GPU = { ...GPU, queue: 32 };
type GpuSettings = typeof GPU;
/** The pipeline defaults: chunks of 256 tokens, TEI's batch budget and client batch size. */
export const BATCHING = {
  maxTokens: 256,
  overlapTokens: 32,
  maxBatchTokens: 16384,
  maxBatchSize: 32,
  sortWindow: 2048,
};
/** The endpoint client's defaults from the pipeline config. */
const ENDPOINT = { maxRetries: 6, timeoutMs: 60_000 };
const TARGET = { fractionOfCapacity: 0.9, throttledShare: 0.02 };

interface ClientRun {
  readonly client: string;
  readonly description: string;
  readonly seconds: number;
  readonly paddedTokensPerSecond: number;
  /** Achieved padded tokens/s (of batches that succeeded) over the GPU's capacity in padded tokens/s. */
  readonly fractionOfCapacity: number;
  readonly calls: number;
  readonly throttledCalls: number;
  readonly throttledShare: number;
  readonly retries: number;
  /** Batches that still failed after every retry (a worker would fail the unit). */
  readonly failedBatches: number;
  /** From handing a batch to the endpoint client to its vectors: waiting for a slot, retries and all. */
  readonly batchSecondsP50: number;
  readonly batchSecondsP95: number;
  /** GPU slot-seconds busy over capacity x elapsed, as the server measured it. */
  readonly serverUtilisation: number;
  /** Mean time a batch waited in the GPU's queue before a slot (0 without a queue). */
  readonly meanQueuedSeconds: number;
  readonly limiter?: Pick<
    AdaptiveLimiterStats,
    'limit' | 'peakLimit' | 'lowestLimit' | 'backoffs' | 'latencyBackoffs' | 'increases'
  >;
}

export interface SaturationResult {
  readonly name: 'saturation';
  readonly gpu: GpuSettings;
  readonly workload: {
    readonly documents: number;
    readonly batches: number;
    readonly paddedTokens: number;
    /** Wall time of the workload on a GPU kept full: sum of batch latencies / capacity. */
    readonly idealSeconds: number;
    /** capacity x padded tokens per batch / latency of a batch, over the workload's mix. */
    readonly capacityTokensPerSecond: number;
  };
  readonly clients: ClientRun[];
  /** The same clients against the same GPU with a queue of 32: throughput is easy, latency is not. */
  readonly queued: { readonly gpu: GpuSettings; readonly clients: ClientRun[] };
  readonly target: typeof TARGET;
  readonly adaptiveMeetsTarget: boolean;
  readonly rerun: string;
}

export interface Batch {
  readonly inputs: string[];
  readonly paddedTokens: number;
}

/** Chunks and batches log-normal documents exactly as a worker does, so the GPU sees realistic batches. */
export function buildWorkload(documents: number, seed: number): Batch[] {
  const counter = new EstimatingTokenCounter();
  const chunks: { text: string; tokens: number }[] = [];
  for (const text of logNormalDocuments({ documents, seed, mu: 4, sigma: 1.2 })) {
    for (const chunk of chunkText(text, counter, BATCHING))
      chunks.push({ text: chunk.text, tokens: chunk.tokens });
  }
  const batches: Batch[] = [];
  for (let i = 0; i < chunks.length; i += BATCHING.sortWindow) {
    for (const batch of cutTokenBudgetBatches(
      chunks.slice(i, i + BATCHING.sortWindow),
      (c) => c.tokens,
      BATCHING,
    )) {
      const inputs = batch.map((c) => c.text);
      // Priced as the server prices it: its own estimate of the longest input x count.
      const longest = Math.max(...inputs.map((t) => counter.count(t)));
      batches.push({ inputs, paddedTokens: longest * inputs.length });
    }
  }
  return batches;
}

const batchLatencyMs = (padded: number) => GPU.latencyMsFixed + GPU.latencyMsPerToken * padded;

interface ServerProcess {
  readonly url: string;
  readonly gpu: GpuSettings;
  stats(): Promise<{ gpu: { busyMs: number; queuedMs: number; admitted: number } }>;
  stop(): Promise<void>;
}

/** The simulated GPU as users run it: `sluice serve-model` in its own process. */
async function startSimulatedGpu(gpu: GpuSettings): Promise<ServerProcess> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const child = spawn(
    process.execPath,
    [
      path.join(root, 'bin', 'sluice.js'),
      'serve-model',
      '--backend',
      'echo',
      '--capacity',
      String(gpu.capacity),
      '--queue',
      String(gpu.queue),
      '--latency-ms-fixed',
      String(gpu.latencyMsFixed),
      '--latency-ms-per-token',
      String(gpu.latencyMsPerToken),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Its start-up lines (what it simulates) would clutter the bench output; kept for a failure.
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([once(lines, 'line'), once(child, 'exit')])) as [unknown];
  const url = typeof line === 'string' ? /listening on (http:\/\/\S+)/.exec(line)?.[1] : undefined;
  if (url === undefined) throw new Error(`sluice serve-model did not start: ${stderr.join('').trim()}`);
  return {
    url,
    gpu,
    stats: async () => (await fetch(`${url}/stats`)).json() as never,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** Runs every batch with at most `width` in flight; unlike the worker's pool, a failed batch does not stop the rest. */
async function runPool(
  batches: readonly Batch[],
  width: number,
  embed: (batch: Batch) => Promise<void>,
): Promise<{ failed: number; durations: number[] }> {
  let next = 0;
  let failed = 0;
  const durations: number[] = [];
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next]!;
      next += 1;
      const started = performance.now();
      try {
        await embed(batch);
        durations.push((performance.now() - started) / 1000);
      } catch {
        failed += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, batches.length) }, worker));
  return { failed, durations };
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
};
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

async function measureClient(
  server: ServerProcess,
  batches: readonly Batch[],
  capacityTokensPerSecond: number,
  setup: { client: string; description: string; width: number; limiter?: AdaptiveLimiter },
): Promise<ClientRun> {
  const client = new SageMakerRuntimeClient({
    endpoint: server.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    // The workers' settings; fixed 64 must really have 64 requests out (the SDK's pool is 50).
    ...sageMakerClientSettings({ requestTimeoutMs: ENDPOINT.timeoutMs, maxSockets: 256 }),
  });
  const endpoint = new SageMakerEmbeddingEndpoint({
    client,
    endpointName: 'bench',
    ...ENDPOINT,
    ...(setup.limiter === undefined ? {} : { limiter: setup.limiter }),
  });
  const stats: CallStats = { endpointCalls: 0, throttled: 0, retries: 0 };
  let servedTokens = 0;
  const before = await server.stats();
  const started = performance.now();
  const { failed, durations } = await runPool(batches, setup.width, async (batch) => {
    await endpoint.embed(batch.inputs, stats);
    servedTokens += batch.paddedTokens;
  });
  const seconds = (performance.now() - started) / 1000;
  const after = await server.stats();
  client.destroy();
  const limiter = setup.limiter?.stats();
  const paddedTokensPerSecond = servedTokens / seconds;
  return {
    client: setup.client,
    description: setup.description,
    seconds: round(seconds),
    paddedTokensPerSecond: Math.round(paddedTokensPerSecond),
    fractionOfCapacity: round(paddedTokensPerSecond / capacityTokensPerSecond),
    calls: stats.endpointCalls,
    throttledCalls: stats.throttled,
    throttledShare: round(stats.throttled / Math.max(1, stats.endpointCalls), 4),
    retries: stats.retries,
    failedBatches: failed,
    batchSecondsP50: round(percentile(durations, 0.5)),
    batchSecondsP95: round(percentile(durations, 0.95)),
    serverUtilisation: round((after.gpu.busyMs - before.gpu.busyMs) / 1000 / server.gpu.capacity / seconds),
    meanQueuedSeconds: round(
      (after.gpu.queuedMs - before.gpu.queuedMs) /
        1000 /
        Math.max(1, after.gpu.admitted - before.gpu.admitted),
    ),
    ...(limiter === undefined
      ? {}
      : {
          limiter: {
            limit: limiter.limit,
            peakLimit: limiter.peakLimit,
            lowestLimit: limiter.lowestLimit,
            backoffs: limiter.backoffs,
            latencyBackoffs: limiter.latencyBackoffs,
            increases: limiter.increases,
          },
        }),
  };
}

/**
 * Endpoint saturation: the same batches sent through the same SageMakerEmbeddingEndpoint
 * (real SageMakerRuntimeClient, retries with full jitter) to a simulated GPU that throttles
 * beyond its capacity, by Sluice's adaptive limiter and by fixed pools of 1 and 64.
 * Reports padded tokens/s as a fraction of the GPU's capacity and the share of throttled calls.
 */
export async function runSaturationBench(documents = 7000, seed = 7): Promise<SaturationResult> {
  const batches = buildWorkload(documents, seed);
  const paddedTokens = batches.reduce((sum, b) => sum + b.paddedTokens, 0);
  const busyMs = batches.reduce((sum, b) => sum + batchLatencyMs(b.paddedTokens), 0);
  const idealSeconds = busyMs / 1000 / GPU.capacity;
  const capacityTokensPerSecond = paddedTokens / idealSeconds;

  // One batch at a time needs about `capacity` times as long as the rest together, so it
  // runs meanwhile against its own identical GPU (a separate process) to keep the bench short.
  const servers = await Promise.all([
    startSimulatedGpu(GPU),
    startSimulatedGpu(GPU),
    startSimulatedGpu(QUEUED_GPU),
  ]);
  const [main, forFixed1, queuedServer] = servers;
  const adaptiveClient = () => ({
    client: 'sluice-adaptive',
    description: 'AdaptiveLimiter, initial 4, max 64 (a pool of 64 batches waiting on it)',
    width: 64,
    limiter: new AdaptiveLimiter({ initialLimit: 4, maxLimit: 64 }),
  });
  const fixed64 = { client: 'fixed-64', description: 'a fixed pool of 64 concurrent batches', width: 64 };
  const clients: ClientRun[] = [];
  const queuedClients: ClientRun[] = [];
  try {
    const oneAtATime = measureClient(forFixed1!, batches, capacityTokensPerSecond, {
      client: 'fixed-1',
      description: 'one batch at a time',
      width: 1,
    });
    const measure = (server: ServerProcess, setup: Parameters<typeof measureClient>[3]) =>
      measureClient(server, batches, capacityTokensPerSecond, setup);
    clients.push(
      await measure(main!, adaptiveClient()),
      await measure(main!, {
        client: 'plain-aimd',
        description: 'AdaptiveLimiter without fast recovery (textbook AIMD), initial 4, max 64',
        width: 64,
        limiter: new AdaptiveLimiter({ initialLimit: 4, maxLimit: 64, fastRecovery: false }),
      }),
      await measure(main!, fixed64),
    );
    queuedClients.push(await measure(queuedServer!, adaptiveClient()), await measure(queuedServer!, fixed64));
    clients.push(await oneAtATime);
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
  const adaptive = clients[0]!;
  return {
    name: 'saturation',
    gpu: GPU,
    workload: {
      documents,
      batches: batches.length,
      paddedTokens,
      idealSeconds: round(idealSeconds),
      capacityTokensPerSecond: Math.round(capacityTokensPerSecond),
    },
    clients,
    queued: { gpu: QUEUED_GPU, clients: queuedClients },
    target: TARGET,
    adaptiveMeetsTarget:
      adaptive.failedBatches === 0 &&
      adaptive.fractionOfCapacity >= TARGET.fractionOfCapacity &&
      adaptive.throttledShare <= TARGET.throttledShare,
    rerun: 'npm run bench',
  };
}
