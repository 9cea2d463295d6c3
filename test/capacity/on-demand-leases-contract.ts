import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CapacityLeases } from '../../shared/ports/capacity-leases.ts';
import type { LeasesUnderTest } from './capacity-leases-contract.ts';

const COMPONENT = 'sluice-embed-model';
const T0 = '2026-03-01T10:00:00.000Z';
const T1 = '2026-03-01T10:05:00.000Z';
const T2 = '2026-03-01T10:09:00.000Z';
const T3 = '2026-03-01T10:12:00.000Z';

/**
 * What every CapacityLeases must do for leases taken on demand (docs/capacity.md, "Copies on
 * demand"): the flag survives, and of workers marking one at once exactly one wins.
 */
export function onDemandLeasesContract(name: string, make: () => Promise<LeasesUnderTest>): void {
  describe(`CapacityLeases on demand: ${name}`, () => {
    let leases: CapacityLeases;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      const made = await make();
      leases = made.leases;
      cleanup = () => made.cleanup();
    });
    afterEach(async () => {
      await cleanup?.();
    });

    it('stores the flag, marks once (one of many racing callers wins), and the first time stays', async () => {
      const lease = { runId: 'r-1', component: COMPONENT, copies: 2, takenAt: T0 };
      expect(await leases.take({ ...lease, onDemand: true })).toEqual({ ...lease, onDemand: true });
      // A retried plan keeps the first lease, flag included.
      expect(await leases.take({ ...lease, takenAt: T1 })).toEqual({ ...lease, onDemand: true });
      const wins = await Promise.all(
        Array.from({ length: 6 }, () => leases.markNeeded(COMPONENT, 'r-1', T1)),
      );
      expect(wins.filter(Boolean)).toHaveLength(1);
      expect(await leases.markNeeded(COMPONENT, 'r-1', T2)).toBe(false);
      expect(await leases.get(COMPONENT, 'r-1')).toEqual({ ...lease, onDemand: true, neededAt: T1 });
      expect(await leases.list(COMPONENT)).toEqual([{ ...lease, onDemand: true, neededAt: T1 }]);
    });

    it('never marks a lease taken at plan, a released one, or one that does not exist', async () => {
      await leases.take({ runId: 'r-plan', component: COMPONENT, copies: 1, takenAt: T0 });
      expect(await leases.markNeeded(COMPONENT, 'r-plan', T1)).toBe(false);
      expect((await leases.get(COMPONENT, 'r-plan'))?.neededAt).toBeUndefined();
      await leases.take({ runId: 'r-od', component: COMPONENT, copies: 1, takenAt: T0, onDemand: true });
      await leases.release(COMPONENT, 'r-od', T1, 'finalize');
      expect(await leases.markNeeded(COMPONENT, 'r-od', T2)).toBe(false);
      expect(await leases.markNeeded(COMPONENT, 'r-none', T2)).toBe(false);
      expect(await leases.get(COMPONENT, 'r-none')).toBeUndefined();
    });

    it('a renewed lease (a redriven run) holds no copies until a worker needs it again', async () => {
      await leases.take({ runId: 'r-1', component: COMPONENT, copies: 2, takenAt: T0, onDemand: true });
      await leases.markNeeded(COMPONENT, 'r-1', T1);
      const released = await leases.release(COMPONENT, 'r-1', T2, 'finalize');
      const renewed = await leases.renew(released!, T3, 480);
      expect(renewed).toEqual({
        runId: 'r-1',
        component: COMPONENT,
        copies: 2,
        takenAt: T3,
        onDemand: true,
        priorSeconds: 480,
      });
      expect(await leases.markNeeded(COMPONENT, 'r-1', T3)).toBe(true);
    });
  });
}
