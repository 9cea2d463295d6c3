import {
  type BatchResultErrorEntry,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { queueOfPipeline, type WorkPools } from '../../capacity/work-pools.ts';
import type { WorkUnit } from '../../domain/types.ts';
import { SluiceError } from '../../errors/errors.ts';
import { MAX_SEND_DELAY_SECONDS, type WorkQueue } from '../../ports/work-queue.ts';
import { fullJitterDelay, realSleep, type Sleep } from './backoff.ts';

/** SQS limits: 10 entries per SendMessageBatch, 256 KiB per message and per whole batch. */
export const SQS_MAX_BATCH_ENTRIES = 10;
export const SQS_MAX_MESSAGE_BYTES = 256 * 1024;

export interface SqsWorkQueueOptions {
  /** Created once per process and injected, so tests can swap it. */
  readonly client: SQSClient;
  readonly workQueueUrl: string;
  readonly finalizeQueueUrl: string;
  /**
   * The compute queue of a stack whose pipelines split between two work functions (issue 14),
   * and which units go there; without it every unit goes to the work queue.
   */
  readonly computeQueue?: ComputeQueue;
  /**
   * Sends of one batch, counting the first, before entries that keep failing are reported.
   * @default 5
   */
  readonly maxAttempts?: number;
  /** @default 100 */
  readonly baseDelayMs?: number;
  /** @default 5000 */
  readonly maxDelayMs?: number;
  /** @default setTimeout-based sleep */
  readonly sleep?: Sleep;
  /** @default Math.random */
  readonly random?: () => number;
}

/** Which of a split stack's two work queues a unit goes to. */
export type UnitQueue = 'work' | 'compute';

export interface ComputeQueue {
  readonly url: string;
  /** The queue of a unit: every send of it (planned, continued, resent, redriven) goes there. */
  readonly route: (unit: WorkUnit) => UnitQueue;
}

/**
 * The compute queue of a stack serving `pools`: a unit goes where its pipeline's pool works
 * (`queueOfPipeline`), so a continuation or a next stage's unit of a compute pipeline comes
 * back to the compute queue, as its first unit went there.
 */
export function computeQueueOf(url: string, pools: WorkPools): ComputeQueue {
  return { url, route: (unit) => queueOfPipeline(pools, unit.pipeline) };
}

/** Body of a message on the finalize queue. */
export interface FinalizeRequest {
  readonly kind: 'finalize';
  readonly runId: string;
}

/** Units SQS would not take even after retries; `unitIds` names them so planning can be retried. */
export class WorkQueueSendError extends SluiceError {
  constructor(
    message: string,
    readonly unitIds: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A unit descriptor too large for one SQS message: a planning bug (units carry descriptors, never data). */
export class UnitTooLargeError extends SluiceError {}

interface PendingEntry {
  readonly unitId: string;
  readonly queueUrl: string;
  readonly entry: SendMessageBatchRequestEntry;
  readonly bytes: number;
}

/**
 * (secondary adapter) WorkQueue over SQS standard queues: one message per unit descriptor
 * on the work queue (or, in a split stack, on the compute queue for the units it routes
 * there), `{"kind":"finalize","runId"}` on the finalize queue.
 * Whole-request failures are retried by the SDK client; entries that a batch reports as
 * failed are retried here with backoff, because the SDK treats a 200 with failures as success.
 */
export class SqsWorkQueue implements WorkQueue {
  private readonly client: SQSClient;
  private readonly workQueueUrl: string;
  private readonly finalizeQueueUrl: string;
  private readonly computeQueue: ComputeQueue | undefined;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly sleep: Sleep;
  private readonly random: () => number;

  constructor(options: SqsWorkQueueOptions) {
    this.client = options.client;
    this.workQueueUrl = options.workQueueUrl;
    this.finalizeQueueUrl = options.finalizeQueueUrl;
    this.computeQueue = options.computeQueue;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
  }

  async sendUnits(units: readonly WorkUnit[]): Promise<void> {
    // Validate everything before sending anything, so an oversized unit fails planning cleanly.
    const entries = units.map((unit, index): PendingEntry => {
      const body = JSON.stringify(unit);
      const bytes = Buffer.byteLength(body, 'utf8');
      if (bytes > SQS_MAX_MESSAGE_BYTES) {
        throw new UnitTooLargeError(
          `unit ${unit.unitId} of run ${unit.runId} serialises to ${bytes} bytes, over the SQS limit of ` +
            `${SQS_MAX_MESSAGE_BYTES}; a unit must be a descriptor (pack fewer files per unit), never data`,
        );
      }
      return {
        unitId: unit.unitId,
        queueUrl: this.queueUrlOf(unit),
        entry: { Id: String(index), MessageBody: body },
        bytes,
      };
    });

    const failures: { unitId: string; reason: string }[] = [];
    for (const queued of byQueue(entries).values())
      for (const batch of toBatches(queued)) failures.push(...(await this.sendBatch(batch)));
    if (failures.length > 0) {
      const shown = failures
        .slice(0, 10)
        .map((f) => `${f.unitId} (${f.reason})`)
        .join(', ');
      const more = failures.length > 10 ? ` and ${failures.length - 10} more` : '';
      throw new WorkQueueSendError(
        `could not queue ${failures.length} of ${units.length} units: ${shown}${more}`,
        failures.map((f) => f.unitId),
      );
    }
  }

  /**
   * One unit as a new message with `DelaySeconds` (clamped to SQS's 0 to 900): the message
   * starts with a receive count of 0, so waiting never nears the dead-letter threshold.
   */
  async sendUnitLater(unit: WorkUnit, delaySeconds: number): Promise<void> {
    const body = JSON.stringify(unit);
    const bytes = Buffer.byteLength(body, 'utf8');
    if (bytes > SQS_MAX_MESSAGE_BYTES) {
      throw new UnitTooLargeError(
        `unit ${unit.unitId} of run ${unit.runId} serialises to ${bytes} bytes, over the SQS limit of ${SQS_MAX_MESSAGE_BYTES}`,
      );
    }
    const delay = Math.min(MAX_SEND_DELAY_SECONDS, Math.max(0, Math.round(delaySeconds)));
    await this.client.send(
      new SendMessageCommand({ QueueUrl: this.queueUrlOf(unit), MessageBody: body, DelaySeconds: delay }),
    );
  }

  async requestFinalize(runId: string): Promise<void> {
    const request: FinalizeRequest = { kind: 'finalize', runId };
    await this.client.send(
      new SendMessageCommand({ QueueUrl: this.finalizeQueueUrl, MessageBody: JSON.stringify(request) }),
    );
  }

  /** The queue the unit's pool works from. */
  private queueUrlOf(unit: WorkUnit): string {
    return this.computeQueue?.route(unit) === 'compute' ? this.computeQueue.url : this.workQueueUrl;
  }

  /** Sends one batch (all to one queue), resending the entries SQS reports as failed; returns those that never went. */
  private async sendBatch(batch: readonly PendingEntry[]): Promise<{ unitId: string; reason: string }[]> {
    const undeliverable: { unitId: string; reason: string }[] = [];
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1)
        await this.sleep(fullJitterDelay(attempt - 2, this.baseDelayMs, this.maxDelayMs, this.random));
      const out = await this.client.send(
        new SendMessageBatchCommand({ QueueUrl: batch[0]!.queueUrl, Entries: pending.map((p) => p.entry) }),
      );
      const failed = new Map<string, BatchResultErrorEntry>((out.Failed ?? []).map((f) => [f.Id ?? '', f]));
      const retry: PendingEntry[] = [];
      for (const p of pending) {
        const failure = failed.get(p.entry.Id ?? '');
        if (failure === undefined) continue;
        // A sender fault (malformed entry) fails the same way every time.
        if (failure.SenderFault === true || attempt >= this.maxAttempts) {
          undeliverable.push({
            unitId: p.unitId,
            reason: failure.Code ?? failure.Message ?? 'unknown error',
          });
        } else {
          retry.push(p);
        }
      }
      pending = retry;
    }
    return undeliverable;
  }
}

/** Entries by the queue they go to, each queue's in the order given. */
function byQueue(entries: readonly PendingEntry[]): Map<string, PendingEntry[]> {
  const queues = new Map<string, PendingEntry[]>();
  for (const entry of entries) {
    const queued = queues.get(entry.queueUrl);
    if (queued === undefined) queues.set(entry.queueUrl, [entry]);
    else queued.push(entry);
  }
  return queues;
}

/** Groups entries into batches within both SQS batch limits (entry count and total bytes). */
function toBatches(entries: readonly PendingEntry[]): PendingEntry[][] {
  const batches: PendingEntry[][] = [];
  let current: PendingEntry[] = [];
  let currentBytes = 0;
  for (const entry of entries) {
    if (current.length === SQS_MAX_BATCH_ENTRIES || currentBytes + entry.bytes > SQS_MAX_MESSAGE_BYTES) {
      batches.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += entry.bytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
