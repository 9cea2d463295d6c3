import { AsyncLocalStorage } from 'node:async_hooks';
import type { Delivery } from '../../../shared/adapters/local/local-work-queue.ts';
import type { EmbeddingEndpoint } from '../../../shared/ports/embedding-endpoint.ts';
import type { DrivenVisibility } from './driven-visibility.ts';

/**
 * A slow endpoint, slow relative to the queue's visibility timeout by construction rather
 * than by racing milliseconds: the answers of a run's first `calls` embedding calls reach
 * their worker only once the delivery that made the call has outlived its visibility
 * timeout and its message has been received again (see {@link DrivenVisibility.outlive}).
 * Two deliveries of the unit then run side by side, however fast or loaded the machine.
 *
 * The answer is held after the call has left the endpoint's concurrency limiter: a call
 * held inside it could take the last slots, and the deliveries waiting for them all the
 * queue's workers, so the message could never be received again.
 */
export class SlowAnswers {
  /** The delivery each endpoint call is made for. */
  private readonly caller = new AsyncLocalStorage<Delivery>();
  private remaining: number;
  /** Calls held; of those, released because their message was received again or dead-lettered. */
  readonly counts = { held: 0, deliveredAgain: 0, deadLettered: 0 };

  constructor(
    calls: number,
    private readonly visibility: DrivenVisibility,
  ) {
    this.remaining = calls;
  }

  /** Runs a delivery's work, so that its endpoint calls are known as that delivery's. */
  within<T>(delivery: Delivery, work: () => Promise<T>): Promise<T> {
    return this.caller.run(delivery, work);
  }

  /** The endpoint whose first calls' answers (the vectors or the error alike) are held. */
  around(endpoint: EmbeddingEndpoint): EmbeddingEndpoint {
    return {
      embed: async (inputs, stats) => {
        if (this.remaining <= 0) return endpoint.embed(inputs, stats);
        this.remaining -= 1;
        const delivery = this.caller.getStore();
        const answer = await endpoint.embed(inputs, stats).then(
          (vectors) => ({ vectors }),
          (error: unknown) => ({ error }),
        );
        // A call made outside any delivery is not held: `counts` then tells the test.
        if (delivery) {
          this.counts.held += 1;
          const how = await this.visibility.outlive(delivery);
          if (how === 'delivered again') this.counts.deliveredAgain += 1;
          else this.counts.deadLettered += 1;
        }
        if ('error' in answer) throw answer.error;
        return answer.vectors;
      },
    };
  }
}
