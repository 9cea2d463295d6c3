import { describe, expect, it } from 'vitest';
import {
  type DeadLetter,
  type Delivery,
  LocalWorkQueue,
  visibilityTimeoutMsFor,
} from '../../shared/adapters/local/local-work-queue.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { aUnit } from '../support/run-fixtures.ts';

const RUN_ID = 'r-20260301T100000Z-000001';

/** A promise with its resolve function, to hold a delivery open until the test lets it go. */
function gate<T = void>() {
  let open!: (value: T) => void;
  const opened = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

function queueOf(
  onUnit: (unit: WorkUnit, delivery: Delivery) => Promise<void>,
  options: { maxReceiveCount?: number; visibilityTimeoutMs?: number; concurrency?: number } = {},
) {
  const letters: DeadLetter[] = [];
  const queue = new LocalWorkQueue({
    maxReceiveCount: options.maxReceiveCount ?? 3,
    concurrency: options.concurrency ?? 2,
    visibilityTimeoutMs: options.visibilityTimeoutMs ?? 60_000,
    onUnit,
    onFinalize: async () => {},
    onDeadLetter: async (letter) => {
      letters.push(letter);
    },
  });
  return { queue, letters };
}

describe('LocalWorkQueue', () => {
  it('delivers a failing message maxReceiveCount times, then dead-letters it and hands it to the consumer', async () => {
    const seen: Delivery[] = [];
    const { queue, letters } = queueOf(async (_unit, delivery) => {
      seen.push(delivery);
      throw new Error(`EndpointUnavailable: attempt ${delivery.receiveCount}`);
    });

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    expect(seen).toEqual([
      { receiveCount: 1, isLastAttempt: false },
      { receiveCount: 2, isLastAttempt: false },
      { receiveCount: 3, isLastAttempt: true },
    ]);
    expect(letters).toEqual([
      { body: aUnit(RUN_ID, 0), error: 'EndpointUnavailable: attempt 3', receiveCount: 3 },
    ]);
    expect(queue.deadLetters).toEqual(letters);
  });

  it('delivers a message again while a slow first delivery still runs, once its visibility timeout passes', async () => {
    const secondStarted = gate();
    const finished: number[] = [];
    const { queue, letters } = queueOf(
      async (_unit, delivery) => {
        if (delivery.receiveCount === 1) await secondStarted.opened;
        else secondStarted.open();
        finished.push(delivery.receiveCount);
      },
      { visibilityTimeoutMs: 5 },
    );

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    // The first delivery could only finish because the second one started beside it.
    expect(finished).toEqual([2, 1]);
    expect(letters).toEqual([]);
  });

  it('still delivers a second time when the only worker slot is held by the slow delivery', async () => {
    const secondStarted = gate();
    const receives: number[] = [];
    const { queue } = queueOf(
      async (_unit, delivery) => {
        receives.push(delivery.receiveCount);
        if (delivery.receiveCount === 1) await secondStarted.opened;
        else secondStarted.open();
      },
      { visibilityTimeoutMs: 5, concurrency: 1 },
    );

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    expect(receives).toEqual([1, 2]);
  });

  it('deletes the message when a delivery that outlived its timeout succeeds late', async () => {
    const secondStarted = gate();
    const firstDone = gate();
    const receives: number[] = [];
    const { queue, letters } = queueOf(
      async (_unit, delivery) => {
        receives.push(delivery.receiveCount);
        if (delivery.receiveCount === 1) {
          await secondStarted.opened;
          firstDone.open();
          return;
        }
        secondStarted.open();
        await firstDone.opened;
        throw new Error('the second delivery fails after the first one succeeded');
      },
      { visibilityTimeoutMs: 5, maxReceiveCount: 5 },
    );

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    // Without the late success deleting it, the failed second delivery would bring a third.
    expect(receives).toEqual([1, 2]);
    expect(letters).toEqual([]);
  });

  it('dead-letters a message whose last delivery outlives its timeout, and returns only once that delivery ends', async () => {
    const letterSeen = gate();
    let lastDeliveryEnded = false;
    const letters: DeadLetter[] = [];
    const queue = new LocalWorkQueue({
      maxReceiveCount: 1,
      concurrency: 1,
      visibilityTimeoutMs: 5,
      onUnit: async () => {
        await letterSeen.opened;
        lastDeliveryEnded = true;
      },
      onFinalize: async () => {},
      onDeadLetter: async (letter) => {
        letters.push(letter);
        letterSeen.open();
      },
    });

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    expect(letters).toHaveLength(1);
    expect(letters[0]!.error).toBe('still running after the visibility timeout of 5 ms (delivery 1)');
    expect(lastDeliveryEnded).toBe(true);
  });

  it('delivers what a late delivery sends (a finalize request) before drain returns', async () => {
    const secondStarted = gate();
    const finalized: string[] = [];
    const queue: LocalWorkQueue = new LocalWorkQueue({
      maxReceiveCount: 2,
      concurrency: 1,
      visibilityTimeoutMs: 5,
      onUnit: async (unit, delivery) => {
        if (delivery.receiveCount > 1) {
          secondStarted.open();
          throw new Error('a later delivery fails');
        }
        await secondStarted.opened;
        await queue.requestFinalize(unit.runId);
      },
      onFinalize: async (runId) => {
        finalized.push(runId);
      },
    });

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    expect(finalized).toEqual([RUN_ID]);
  });

  it('applies the same rules to finalize requests and keeps what the dead-letter consumer failed with', async () => {
    const queue = new LocalWorkQueue({
      maxReceiveCount: 2,
      concurrency: 2,
      onUnit: async () => {},
      onFinalize: async () => {
        throw new Error('RunNotReady: run still has 1 unfinished units');
      },
      onDeadLetter: async () => {
        throw new Error('runs table unavailable');
      },
    });

    await queue.requestFinalize(RUN_ID);
    await queue.drain();

    expect(queue.deadLetters).toEqual([
      {
        body: { kind: 'finalize', runId: RUN_ID },
        error: 'RunNotReady: run still has 1 unfinished units',
        receiveCount: 2,
      },
    ]);
    expect(queue.deadLetterErrors).toEqual(['runs table unavailable']);
  });

  it('makes a message visible again only when its visibility timer expires, however long the delivery runs', async () => {
    const expiries = new Map<number, () => void>();
    const stopped: number[] = [];
    const firstMayEnd = gate();
    const receives: number[] = [];
    let receivesBeforeExpiry: number[] = [];
    const letters: DeadLetter[] = [];
    const queue = new LocalWorkQueue({
      maxReceiveCount: 2,
      concurrency: 1,
      visibilityTimeoutMs: 1,
      visibilityTimer: (delivery, expire) => {
        expiries.set(delivery.receiveCount, expire);
        return () => stopped.push(delivery.receiveCount);
      },
      onUnit: async (_unit, delivery) => {
        receives.push(delivery.receiveCount);
        // The timer starts once the handler has been called.
        await new Promise((resolve) => setImmediate(resolve));
        if (delivery.receiveCount === 1) {
          // Long past the 1 ms of visibilityTimeoutMs, which the timer replaces.
          for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setTimeout(resolve, 1));
          receivesBeforeExpiry = [...receives];
          expiries.get(1)?.();
          await firstMayEnd.opened;
          return;
        }
        expiries.get(2)?.();
        firstMayEnd.open();
      },
      onFinalize: async () => {},
      onDeadLetter: async (letter) => {
        letters.push(letter);
      },
    });

    await queue.sendUnits([aUnit(RUN_ID, 0)]);
    await queue.drain();

    expect(receivesBeforeExpiry).toEqual([1]);
    expect(receives).toEqual([1, 2]);
    expect(stopped).toEqual([1, 2]);
    // The second delivery expired on its last receive: dead-lettered, with why.
    expect(letters).toEqual([
      {
        body: aUnit(RUN_ID, 0),
        error: 'still running after its visibility timeout (delivery 2)',
        receiveCount: 2,
      },
    ]);
  });

  it('takes the deployed visibility timeout (6 x the worker timeout) and refuses nonsense', () => {
    expect(visibilityTimeoutMsFor({ timeoutSeconds: 600 })).toBe(3_600_000);
    expect(visibilityTimeoutMsFor({ timeoutSeconds: 30 })).toBe(180_000);
    const base = { concurrency: 1, onUnit: async () => {}, onFinalize: async () => {} };
    expect(() => new LocalWorkQueue({ ...base, maxReceiveCount: 0 })).toThrow(/maxReceiveCount/);
    expect(() => new LocalWorkQueue({ ...base, maxReceiveCount: 1, visibilityTimeoutMs: 0 })).toThrow(
      /visibilityTimeoutMs/,
    );
  });
});
