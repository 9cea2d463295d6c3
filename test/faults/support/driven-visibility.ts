import type { Delivery, VisibilityTimer } from '../../../shared/adapters/local/local-work-queue.ts';
import type { WorkUnit } from '../../../shared/domain/types.ts';

/** How a delivery that was made to outlive its visibility timeout saw its message come back. */
export type Outlived = 'delivered again' | 'dead-lettered';

interface Waiter {
  readonly unit: WorkUnit;
  /** The receive count of the delivery that waits: any later receive of the message is its redelivery. */
  readonly after: number;
  readonly resolve: (how: Outlived) => void;
}

/**
 * The local queue's visibility timeouts on a clock the fault harness drives instead of
 * wall time: a delivery's timeout passes only when {@link outlive} is asked for it, never
 * because the machine is slow. So an ordinary delivery is never delivered again however
 * loaded the machine is, and a delivery made to outlive its timeout is, every time.
 *
 * A message is known by its unit object: the local queue hands every delivery of a message,
 * and its dead letter, the object that was sent, so the harness sends every message its own
 * copy (two messages of one unit, a duplicate delivery, are two objects).
 */
export class DrivenVisibility {
  /** Deliveries whose timeout is running, with what makes it pass. */
  private readonly running = new Map<Delivery, () => void>();
  /** The message (unit object) and receive count of each unit delivery. */
  private readonly deliveries = new WeakMap<Delivery, { unit: WorkUnit; receiveCount: number }>();
  /** The latest receive of each message, and the messages dead-lettered. */
  private readonly lastReceive = new WeakMap<WorkUnit, number>();
  private readonly deadLettered = new WeakSet<WorkUnit>();
  private waiters: Waiter[] = [];

  /** For the queue's `visibilityTimer` option: the timeout passes only through {@link outlive}. */
  readonly timer: VisibilityTimer = (delivery, expire) => {
    this.running.set(delivery, expire);
    return () => {
      this.running.delete(delivery);
    };
  };

  /** To be called as each unit delivery starts, with what the queue's `onUnit` was given. */
  delivered(unit: WorkUnit, delivery: Delivery): void {
    this.deliveries.set(delivery, { unit, receiveCount: delivery.receiveCount });
    this.lastReceive.set(unit, Math.max(this.lastReceive.get(unit) ?? 0, delivery.receiveCount));
    this.settle();
  }

  /** To be called as the queue hands a unit message to the dead-letter consumer. */
  letterOf(unit: WorkUnit): void {
    this.deadLettered.add(unit);
    this.settle();
  }

  /**
   * Makes the delivery's visibility timeout pass now (if it has not yet) and resolves once
   * its message has been received again while the delivery still runs, or dead-lettered
   * when that was its last allowed receive. The caller holds the delivery until then, so the
   * delivery outlives its timeout by construction.
   */
  outlive(delivery: Delivery): Promise<Outlived> {
    const known = this.deliveries.get(delivery);
    if (!known) throw new Error('outlive: not a unit delivery of this queue');
    const outlived = new Promise<Outlived>((resolve) => {
      this.waiters.push({ unit: known.unit, after: known.receiveCount, resolve });
    });
    this.running.get(delivery)?.();
    this.settle();
    return outlived;
  }

  private settle(): void {
    this.waiters = this.waiters.filter((waiter) => {
      const how: Outlived | undefined =
        (this.lastReceive.get(waiter.unit) ?? 0) > waiter.after
          ? 'delivered again'
          : this.deadLettered.has(waiter.unit)
            ? 'dead-lettered'
            : undefined;
      if (how) waiter.resolve(how);
      return how === undefined;
    });
  }
}
