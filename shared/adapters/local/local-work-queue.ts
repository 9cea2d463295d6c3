import type { WorkUnit } from '../../domain/types.ts';
import { describeError } from '../../errors/errors.ts';
import { MAX_SEND_DELAY_SECONDS, type WorkQueue } from '../../ports/work-queue.ts';

export interface Delivery {
  /** 1 for the first delivery, as SQS's ApproximateReceiveCount. */
  readonly receiveCount: number;
  readonly isLastAttempt: boolean;
}

/** What the deployed queues derive their visibility timeout from: 6x the worker timeout (AWS's advice for Lambda). */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

/** The visibility timeout of the deployed work queue for a pipeline's workers, in ms. */
export function visibilityTimeoutMsFor(workers: { readonly timeoutSeconds: number }): number {
  return workers.timeoutSeconds * VISIBILITY_TIMEOUT_FACTOR * 1000;
}

export interface LocalWorkQueueOptions {
  /** Deliveries before a message is dead-lettered (the deployed queues' maxReceiveCount). */
  readonly maxReceiveCount: number;
  /** Messages delivered at once (the deployed event source's maxConcurrency). */
  readonly concurrency: number;
  readonly onUnit: (unit: WorkUnit, delivery: Delivery) => Promise<void>;
  readonly onFinalize: (runId: string, delivery: Delivery) => Promise<void>;
  /** Wait before a failed message is visible again. @default 0 */
  readonly retryDelayMs?: number;
  /**
   * A delivery still running after this long makes its message visible again, and the
   * message is delivered a second time while the first delivery goes on (that is how a
   * slow endpoint causes duplicate deliveries on SQS). Pass
   * `visibilityTimeoutMsFor(config.workers)` for the deployed value.
   * @default 3_600_000 (6 x the default worker timeout of 600 s)
   */
  readonly visibilityTimeoutMs?: number;
  /**
   * Starts one delivery's visibility timeout in place of the wall-clock timer of
   * `visibilityTimeoutMs`: called as the delivery starts, with the `Delivery` its handler
   * receives; calls `expire` when the timeout passes and returns what stops it (called
   * once the delivery ends, or after `expire`). For tests that decide when a message is
   * visible again instead of racing real milliseconds against a loaded machine.
   * @default a timer of `visibilityTimeoutMs`
   */
  readonly visibilityTimer?: VisibilityTimer;
  /**
   * The dead-letter queue's consumer: called once for every message moved to the
   * dead-letter list, before `drain` returns (deployed: the dead-letter function).
   * @default none: dead letters are only listed
   */
  readonly onDeadLetter?: (letter: DeadLetter) => Promise<void>;
}

/** Starts a delivery's visibility timeout; returns what stops it. See {@link LocalWorkQueueOptions.visibilityTimer}. */
export type VisibilityTimer = (delivery: Delivery, expire: () => void) => () => void;

export interface DeadLetter {
  readonly body: WorkUnit | { kind: 'finalize'; runId: string };
  /** Why the last delivery ended: its error, or that it outlived the visibility timeout. */
  readonly error: string;
  readonly receiveCount: number;
}

interface Message {
  readonly body: { kind: 'unit'; unit: WorkUnit } | { kind: 'finalize'; runId: string };
  receives: number;
  /** Deleted by a successful delivery, or moved to the dead-letter list: never delivered again. */
  gone: boolean;
  /** The delivery that currently holds the message invisible; older deliveries are only waited for. */
  holder: number;
}

const DEFAULT_VISIBILITY_TIMEOUT_MS = visibilityTimeoutMsFor({ timeoutSeconds: 600 });

/** The deployed queues' clock: the timeout passes `ms` after the delivery starts. */
function wallClockTimer(ms: number): VisibilityTimer {
  return (_delivery, expire) => {
    const timer = setTimeout(expire, ms);
    return () => clearTimeout(timer);
  };
}

/**
 * The in-process stand-in for the work and finalize queues, with the deployed SQS
 * rules: a delivered message is invisible for `visibilityTimeoutMs`; a delivery that
 * fails makes it visible again (after `retryDelayMs`), and so does one that outlives the
 * timeout, which then keeps running beside the next delivery; the delivery numbered
 * `maxReceiveCount` that fails or times out moves the message to the dead-letter list
 * (and to `onDeadLetter`). A successful delivery, even a late one, deletes the message.
 *
 * Deliveries that outlived their timeout no longer hold one of the `concurrency` slots
 * (on AWS they hold their own Lambda), so more than `concurrency` may run at once.
 */
export class LocalWorkQueue implements WorkQueue {
  private readonly ready: Message[] = [];
  /** Deliveries a worker waits for. */
  private inFlight = 0;
  /** Deliveries that outlived their visibility timeout and still run, and dead-letter consumers. */
  private readonly background = new Set<Promise<void>>();
  private deliveries = 0;
  private wake: (() => void) | undefined;
  readonly deadLetters: DeadLetter[] = [];
  /** Errors of the dead-letter consumer (`onDeadLetter`), one line each. */
  readonly deadLetterErrors: string[] = [];
  private readonly visibilityTimeoutMs: number;
  private readonly startVisibilityTimer: VisibilityTimer;
  /** What a delivery that outlived its timeout reports as its error, before ` (delivery N)`. */
  private readonly timedOut: string;

  constructor(private readonly options: LocalWorkQueueOptions) {
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? DEFAULT_VISIBILITY_TIMEOUT_MS;
    if (!(this.visibilityTimeoutMs > 0))
      throw new RangeError(`visibilityTimeoutMs must be positive, got ${this.visibilityTimeoutMs}`);
    this.startVisibilityTimer = options.visibilityTimer ?? wallClockTimer(this.visibilityTimeoutMs);
    this.timedOut = options.visibilityTimer
      ? 'still running after its visibility timeout'
      : `still running after the visibility timeout of ${this.visibilityTimeoutMs} ms`;
    if (!Number.isInteger(options.maxReceiveCount) || options.maxReceiveCount < 1)
      throw new RangeError(`maxReceiveCount must be a positive integer, got ${options.maxReceiveCount}`);
  }

  async sendUnits(units: readonly WorkUnit[]): Promise<void> {
    for (const unit of units) this.enqueue({ kind: 'unit', unit });
  }

  async requestFinalize(runId: string): Promise<void> {
    this.enqueue({ kind: 'finalize', runId });
  }

  /**
   * A new message for the unit, visible after `delaySeconds` (SQS's `DelaySeconds`, 0 to
   * 900) by a timer; `drain` waits for it as it waits for running deliveries.
   */
  async sendUnitLater(unit: WorkUnit, delaySeconds: number): Promise<void> {
    const delayMs = Math.min(MAX_SEND_DELAY_SECONDS, Math.max(0, delaySeconds)) * 1000;
    this.track(
      new Promise<void>((resolve) => {
        setTimeout(() => {
          this.enqueue({ kind: 'unit', unit });
          resolve();
        }, delayMs);
      }),
    );
  }

  private enqueue(body: Message['body']): void {
    this.ready.push({ body, receives: 0, gone: false, holder: 0 });
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private idle(): boolean {
    return this.ready.length === 0 && this.inFlight === 0 && this.background.size === 0;
  }

  /** Delivers messages until both queues are empty and no delivery or dead-letter consumer is running. */
  async drain(): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        const message = this.ready.shift();
        if (!message) {
          if (this.idle()) {
            this.notify();
            return;
          }
          await new Promise<void>((resolve) => {
            const previous = this.wake;
            this.wake = () => {
              previous?.();
              resolve();
            };
          });
          continue;
        }
        if (message.gone) continue;
        this.inFlight += 1;
        await this.deliver(message);
        this.inFlight -= 1;
        this.notify();
      }
    };
    await Promise.all(Array.from({ length: this.options.concurrency }, worker));
  }

  /** Waits for the delivery or its visibility timeout, whichever comes first. */
  private async deliver(message: Message): Promise<void> {
    message.receives += 1;
    const id = ++this.deliveries;
    message.holder = id;
    const delivery: Delivery = {
      receiveCount: message.receives,
      isLastAttempt: message.receives >= this.options.maxReceiveCount,
    };
    const outcome = this.run(message, delivery).then(
      () => ({ ok: true as const }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    let stopTimer: (() => void) | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      stopTimer = this.startVisibilityTimer(delivery, () => resolve('expired'));
    });
    const first = await Promise.race([outcome, expired]);
    stopTimer?.();

    if (first === 'expired') {
      // The delivery goes on; its message is visible again (or dead-lettered after the last receive).
      const late = outcome.then((result) => {
        if (result.ok) message.gone = true;
      });
      this.track(late);
      if (!message.gone && message.holder === id) {
        this.afterFailure(message, delivery, `${this.timedOut} (delivery ${delivery.receiveCount})`);
      }
      return;
    }
    if (first.ok) {
      message.gone = true;
      return;
    }
    if (message.gone || message.holder !== id) return;
    const delay = this.options.retryDelayMs ?? 0;
    if (delay > 0 && !delivery.isLastAttempt) await new Promise((resolve) => setTimeout(resolve, delay));
    this.afterFailure(message, delivery, describeError(first.error));
  }

  private run(message: Message, delivery: Delivery): Promise<void> {
    const { body } = message;
    return body.kind === 'unit'
      ? this.options.onUnit(body.unit, delivery)
      : this.options.onFinalize(body.runId, delivery);
  }

  /** A delivery failed or timed out: visible again, or dead-lettered after the last allowed receive. */
  private afterFailure(message: Message, delivery: Delivery, error: string): void {
    if (!delivery.isLastAttempt) {
      this.ready.push(message);
      this.notify();
      return;
    }
    message.gone = true;
    const { body } = message;
    const letter: DeadLetter = {
      body: body.kind === 'unit' ? body.unit : { kind: 'finalize', runId: body.runId },
      error,
      receiveCount: delivery.receiveCount,
    };
    this.deadLetters.push(letter);
    const consumer = this.options.onDeadLetter;
    if (consumer) {
      this.track(
        consumer(letter).catch((caught: unknown) => {
          this.deadLetterErrors.push(describeError(caught));
        }),
      );
    }
  }

  /** Work that outlives a worker's wait; `drain` returns only once it has settled. */
  private track(work: Promise<void>): void {
    const tracked = work.finally(() => {
      this.background.delete(tracked);
      this.notify();
    });
    this.background.add(tracked);
  }
}
