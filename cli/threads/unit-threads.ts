import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { type ErrorData, errorOf, serveRpc } from '../../shared/adapters/local/thread-rpc.ts';
import type { PipelineConfig } from '../../shared/config/pipeline-config.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import type { ChunkIndex } from '../../shared/ports/chunk-index.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import type { ProcessUnitOptions, UnitOutcome } from '../../shared/work/process-unit.ts';

/** What the main thread tells a unit thread about a delivery (structured-cloned). */
export type UnitRunOptions = Pick<ProcessUnitOptions, 'isLastAttempt' | 'warming'>;

/** What a unit thread starts with (structured-cloned into it). */
export interface UnitThreadData {
  readonly kind: 'sluice-unit-worker';
  readonly bucketDir: string;
  readonly config: PipelineConfig;
  /** The model server; absent for in-worker scoring. */
  readonly endpointUrl: string | undefined;
  /** Where the thread calls the shared state (run store, chunk index, queue). */
  readonly rpc: MessagePort;
}

export interface UnitRequest {
  readonly id: number;
  readonly unit: WorkUnit;
  readonly options: UnitRunOptions;
}

export type UnitThreadReply =
  | { readonly id: number; readonly ok: true; readonly outcome: UnitOutcome }
  | { readonly id: number; readonly ok: false; readonly error: ErrorData };

export interface UnitThreadsOptions {
  readonly threads: number;
  readonly bucketDir: string;
  readonly config: PipelineConfig;
  /** The model server; absent for in-worker scoring. */
  readonly endpointUrl: string | undefined;
  readonly shared: { readonly runs: RunStore; readonly queue: WorkQueue; readonly chunkIndex: ChunkIndex };
  /** V8 old-generation limit of each thread. @default heapMiBFor(config) */
  readonly heapMiB?: number;
}

/** Young generation of each thread: small, so short-lived garbage is collected before it adds up. */
const YOUNG_GENERATION_MIB = 8;

/**
 * The heap a unit thread gets: a base for the code and one record, plus a window of
 * chunks with their vectors (as JSON-parsed numbers and Float32Array) for each unit it
 * runs at once. A unit that needs more fails its delivery with "out of memory" and is
 * retried, then dead-lettered, like a Lambda worker past its memory size.
 *
 * V8 gives process-wide heap flags precedence over a Worker's `resourceLimits`: under
 * `bin/sluice.js`, which starts `run` with `--max-old-space-size=192
 * --max-semi-space-size=4`, every thread has those limits instead, and these apply when
 * the runtime is used without them (tests, the library API).
 */
export function heapMiBFor(config: PipelineConfig, unitsPerThread: number): number {
  const base = 96;
  if (config.kind !== 'embed') return base + 32 * unitsPerThread;
  const window = config.batching.sortWindow;
  const perChunk = config.endpoint.dimension * 16 + config.chunking.maxTokens * 16;
  return base + Math.ceil((unitsPerThread * window * perChunk) / 2 ** 20);
}

interface Thread {
  readonly worker: Worker;
  readonly rpc: MessagePort;
  busy: number;
  /** Set by the thread's first message: a thread that dies before it is ready is not replaced. */
  ready: boolean;
}

/**
 * `sluice run`'s workers: each thread runs units the way one Lambda worker does, with a
 * bounded heap, while the run store, chunk index and queue stay on the main
 * thread and are called over {@link serveRpc}.
 */
export class UnitThreads {
  private readonly threads: Thread[];
  private readonly waiting = new Map<
    number,
    { resolve: (o: UnitOutcome) => void; reject: (e: Error) => void; thread: Thread }
  >();
  private next = 0;
  private closed = false;
  /** Why threads cannot start (a thread died before it was ready): every unit fails with it. */
  private broken: Error | undefined;

  private readonly spawn: () => Thread;

  constructor(options: UnitThreadsOptions, unitsAtOnce: number) {
    const count = Math.max(1, options.threads);
    const heapMiB = options.heapMiB ?? heapMiBFor(options.config, Math.ceil(unitsAtOnce / count));
    // From source (this file is .ts) a thread starts through an entry that registers tsx.
    const url = import.meta.url.endsWith('.ts')
      ? new URL('./unit-worker-entry.mjs', import.meta.url)
      : new URL('./unit-worker.js', import.meta.url);
    this.spawn = () => {
      const channel = new MessageChannel();
      serveRpc(channel.port1, options.shared);
      const data: UnitThreadData = {
        kind: 'sluice-unit-worker',
        bucketDir: options.bucketDir,
        config: options.config,
        endpointUrl: options.endpointUrl,
        rpc: channel.port2,
      };
      const worker = new Worker(url, {
        workerData: data,
        transferList: [channel.port2],
        resourceLimits: { maxOldGenerationSizeMb: heapMiB, maxYoungGenerationSizeMb: YOUNG_GENERATION_MIB },
      });
      const thread: Thread = { worker, rpc: channel.port1, busy: 0, ready: false };
      worker.on('message', (reply: UnitThreadReply | 'ready') => {
        if (reply === 'ready') thread.ready = true;
        else this.settle(reply);
      });
      worker.on('error', (error) => this.replace(thread, error));
      worker.on('exit', (code) => this.replace(thread, new Error(`exited with code ${code}`)));
      return thread;
    };
    this.threads = Array.from({ length: count }, this.spawn);
  }

  /** Runs a unit on the least busy thread. */
  run(unit: WorkUnit, options: UnitRunOptions): Promise<UnitOutcome> {
    if (this.broken) return Promise.reject(this.broken);
    const thread = this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.next++;
    thread.busy += 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, thread });
      thread.worker.postMessage({ id, unit, options } satisfies UnitRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const thread of this.threads) thread.rpc.close();
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  private settle(reply: UnitThreadReply): void {
    const call = this.waiting.get(reply.id);
    if (!call) return;
    this.waiting.delete(reply.id);
    call.thread.busy -= 1;
    if (reply.ok) call.resolve(reply.outcome);
    else call.reject(errorOf(reply.error));
  }

  /**
   * A thread that died (out of memory, a crash) fails the units it held, so their
   * deliveries are retried as a dead Lambda's are, and a fresh thread takes its place.
   */
  private replace(thread: Thread, error: Error): void {
    const index = this.threads.indexOf(thread);
    if (index < 0 || this.closed) return;
    for (const [id, call] of this.waiting) {
      if (call.thread !== thread) continue;
      this.waiting.delete(id);
      call.reject(
        new Error(
          `unit thread stopped: ${thread.ready ? error.message : `it could not start: ${error.message}`}`,
        ),
      );
    }
    thread.rpc.close();
    void thread.worker.terminate();
    if (!thread.ready) {
      this.broken ??= new Error(`unit threads cannot start: ${error.message}`);
      return;
    }
    this.threads[index] = this.spawn();
  }
}
