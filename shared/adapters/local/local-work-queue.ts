import type { WorkUnit } from '../../domain/types.ts';
import { describeError } from '../../errors/errors.ts';
import type { WorkQueue } from '../../ports/work-queue.ts';

export interface Delivery {
  /** 1 for the first delivery, as SQS's ApproximateReceiveCount. */
  readonly receiveCount: number;
  readonly isLastAttempt: boolean;
}

export interface LocalWorkQueueOptions {
  /** Deliveries before a message is dead-lettered (the deployed queues' maxReceiveCount). */
  readonly maxReceiveCount: number;
  /** Units processed at once (the deployed event source's maxConcurrency). */
  readonly concurrency: number;
  readonly onUnit: (unit: WorkUnit, delivery: Delivery) => Promise<void>;
  readonly onFinalize: (runId: string, delivery: Delivery) => Promise<void>;
  /** Wait before a failed message is visible again. @default 0 */
  readonly retryDelayMs?: number;
}

type Message =
  | { kind: 'unit'; unit: WorkUnit; receives: number }
  | { kind: 'finalize'; runId: string; receives: number };

export interface DeadLetter {
  readonly body: WorkUnit | { kind: 'finalize'; runId: string };
  readonly error: string;
}

/**
 * The in-process stand-in for the work and finalize queues: the same delivery rules as
 * the deployed SQS queues (a failed message is delivered again, up to
 * `maxReceiveCount` deliveries, then moved to a dead-letter list), so local runs and
 * deployed runs fail and retry the same way.
 */
export class LocalWorkQueue implements WorkQueue {
  private readonly ready: Message[] = [];
  private inFlight = 0;
  private wake: (() => void) | undefined;
  readonly deadLetters: DeadLetter[] = [];

  constructor(private readonly options: LocalWorkQueueOptions) {}

  async sendUnits(units: readonly WorkUnit[]): Promise<void> {
    for (const unit of units) this.ready.push({ kind: 'unit', unit, receives: 0 });
    this.notify();
  }

  async requestFinalize(runId: string): Promise<void> {
    this.ready.push({ kind: 'finalize', runId, receives: 0 });
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Delivers messages until both queues are empty and nothing is in flight. */
  async drain(): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        const message = this.ready.shift();
        if (!message) {
          if (this.inFlight === 0) {
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
        this.inFlight += 1;
        await this.deliver(message);
        this.inFlight -= 1;
        this.notify();
      }
    };
    await Promise.all(Array.from({ length: this.options.concurrency }, worker));
  }

  private async deliver(message: Message): Promise<void> {
    message.receives += 1;
    const delivery = {
      receiveCount: message.receives,
      isLastAttempt: message.receives >= this.options.maxReceiveCount,
    };
    try {
      if (message.kind === 'unit') await this.options.onUnit(message.unit, delivery);
      else await this.options.onFinalize(message.runId, delivery);
    } catch (error) {
      if (delivery.isLastAttempt) {
        this.deadLetters.push({
          body: message.kind === 'unit' ? message.unit : { kind: 'finalize', runId: message.runId },
          error: describeError(error),
        });
        return;
      }
      const delay = this.options.retryDelayMs ?? 0;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      this.ready.push(message);
    }
  }
}
