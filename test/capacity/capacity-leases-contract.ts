import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CapacityLeases } from '../../shared/ports/capacity-leases.ts';

export interface LeasesUnderTest {
  readonly leases: CapacityLeases;
  cleanup(): Promise<void>;
}

const COMPONENT = 'sluice-embed-model';
const T0 = '2026-03-01T10:00:00.000Z';
const T1 = '2026-03-01T10:05:00.000Z';
const T2 = '2026-03-01T10:09:00.000Z';
const T3 = '2026-03-01T10:12:00.000Z';

/**
 * What every CapacityLeases must do: plans, finalizes and sweepers race on the same leases,
 * and none of them may lose or double one. `make` runs before each test and returns an
 * empty store.
 */
export function capacityLeasesContract(name: string, make: () => Promise<LeasesUnderTest>): void {
  describe(`CapacityLeases contract: ${name}`, () => {
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

    const take = (runId: string, copies = 2, takenAt = T0) =>
      leases.take({ runId, component: COMPONENT, copies, takenAt });

    it('stores a taken lease and lists it with the component', async () => {
      expect(await take('r-1')).toEqual({ runId: 'r-1', component: COMPONENT, copies: 2, takenAt: T0 });
      await take('r-2', 1, T1);
      expect(await leases.get(COMPONENT, 'r-1')).toEqual({
        runId: 'r-1',
        component: COMPONENT,
        copies: 2,
        takenAt: T0,
      });
      expect((await leases.list(COMPONENT)).map((l) => [l.runId, l.copies])).toEqual([
        ['r-1', 2],
        ['r-2', 1],
      ]);
      expect(await leases.list('another-model')).toEqual([]);
      expect(await leases.get(COMPONENT, 'r-3')).toBeUndefined();
    });

    it('keeps the first lease when a retried plan takes it again, however many race', async () => {
      const taken = await Promise.all([take('r-1', 3, T0), take('r-1', 1, T1), take('r-1', 4, T2)]);
      const stored = await leases.get(COMPONENT, 'r-1');
      expect(stored).toBeDefined();
      for (const lease of taken) expect(lease).toEqual(stored);
      expect(await leases.list(COMPONENT)).toHaveLength(1);
    });

    it('releases a lease once: a second release (a redelivered finalize, a racing sweeper) gets the first back', async () => {
      await take('r-1');
      const releases = await Promise.all([
        leases.release(COMPONENT, 'r-1', T1, 'finalize'),
        leases.release(COMPONENT, 'r-1', T2, 'sweeper'),
        leases.release(COMPONENT, 'r-1', T2, 'finalize'),
      ]);
      const stored = await leases.get(COMPONENT, 'r-1');
      expect(stored?.releasedAt === T1 || stored?.releasedAt === T2).toBe(true);
      for (const released of releases) expect(released).toEqual(stored);
      expect((await leases.state(COMPONENT)).lastReleasedAt).toBe(stored?.releasedAt);
      expect(await leases.release(COMPONENT, 'r-1', '2026-03-02T00:00:00.000Z', 'sweeper')).toEqual(stored);
    });

    it('records the first lease taken after the latest release (back-to-back runs), once per release', async () => {
      // No release yet: nothing to follow.
      await take('r-1', 1, T0);
      expect(await leases.state(COMPONENT)).toEqual({ component: COMPONENT });
      await leases.release(COMPONENT, 'r-1', T1, 'finalize');
      await take('r-2', 1, '2026-03-01T10:06:00.000Z');
      // A later take, and a retried plan of the first, leave the record as it is.
      await take('r-3', 1, T2);
      await take('r-2', 1, T2);
      expect(await leases.state(COMPONENT)).toEqual({
        component: COMPONENT,
        lastReleasedAt: T1,
        followedRelease: T1,
        followedAt: '2026-03-01T10:06:00.000Z',
      });
      // The next release is followed a day later: the record moves on.
      await leases.release(COMPONENT, 'r-2', T2, 'finalize');
      await take('r-4', 1, '2026-03-02T10:00:00.000Z');
      expect(await leases.state(COMPONENT)).toMatchObject({
        followedRelease: T2,
        followedAt: '2026-03-02T10:00:00.000Z',
      });
    });

    it('says a run without a lease has nothing to release', async () => {
      expect(await leases.release(COMPONENT, 'r-9', T1, 'finalize')).toBeUndefined();
      expect(await leases.state(COMPONENT)).toEqual({ component: COMPONENT });
    });

    it('moves lastReleasedAt only forward', async () => {
      await take('r-1');
      await take('r-2');
      await leases.release(COMPONENT, 'r-2', T2, 'finalize');
      await leases.release(COMPONENT, 'r-1', T1, 'sweeper');
      expect(await leases.state(COMPONENT)).toEqual({ component: COMPONENT, lastReleasedAt: T2 });
    });

    it('sets readyAt once', async () => {
      await take('r-1');
      await Promise.all([leases.markReady(COMPONENT, 'r-1', T1), leases.markReady(COMPONENT, 'r-1', T1)]);
      await leases.markReady(COMPONENT, 'r-1', T2);
      expect((await leases.get(COMPONENT, 'r-1'))?.readyAt).toBe(T1);
      await leases.markReady(COMPONENT, 'r-none', T1);
      expect(await leases.get(COMPONENT, 'r-none')).toBeUndefined();
    });

    it('records progress forward only, and not on a released lease', async () => {
      await take('r-1');
      await leases.markProgress(COMPONENT, 'r-1', 3, T2);
      await leases.markProgress(COMPONENT, 'r-1', 1, T1);
      expect(await leases.get(COMPONENT, 'r-1')).toMatchObject({ seenTerminalUnits: 3, progressAt: T2 });
      await take('r-2');
      await leases.release(COMPONENT, 'r-2', T1, 'finalize');
      await leases.markProgress(COMPONENT, 'r-2', 5, T2);
      const released = await leases.get(COMPONENT, 'r-2');
      expect(released?.seenTerminalUnits).toBeUndefined();
      expect(released?.progressAt).toBeUndefined();
    });

    it('renews a released lease once for a reopened run, keeping the earlier hold in priorSeconds', async () => {
      await take('r-1', 2, T0);
      await leases.markReady(COMPONENT, 'r-1', T0);
      const released = (await leases.release(COMPONENT, 'r-1', T1, 'finalize'))!;
      const renewals = await Promise.all([
        leases.renew(released, T2, 600),
        leases.renew(released, '2026-03-01T10:10:00.000Z', 600),
      ]);
      const stored = await leases.get(COMPONENT, 'r-1');
      expect(stored).toMatchObject({ runId: 'r-1', copies: 2, priorSeconds: 600 });
      expect(stored?.releasedAt).toBeUndefined();
      expect(stored?.readyAt).toBeUndefined();
      for (const renewal of renewals) expect(renewal).toEqual(stored);
      // A second release ends the new hold.
      expect(await leases.release(COMPONENT, 'r-1', '2026-03-01T11:00:00.000Z', 'finalize')).toMatchObject({
        takenAt: stored?.takenAt,
        releasedAt: '2026-03-01T11:00:00.000Z',
        priorSeconds: 600,
      });
      expect(await leases.renew({ ...released, runId: 'r-none' }, T2, 1)).toBeUndefined();
    });

    it('forgets released leases only, and keeps the component state', async () => {
      await take('r-1');
      await take('r-2');
      await leases.release(COMPONENT, 'r-1', T1, 'finalize');
      await leases.forget(COMPONENT, 'r-1');
      await leases.forget(COMPONENT, 'r-2');
      expect((await leases.list(COMPONENT)).map((l) => l.runId)).toEqual(['r-2']);
      expect((await leases.state(COMPONENT)).lastReleasedAt).toBe(T1);
    });

    // Leases taken on demand (docs/capacity.md, "Copies on demand"): the flag survives, and of
    // workers marking one at once exactly one wins.
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

    it('records when copies were asked for once (one of many racing sweeps wins), only on an unreleased lease needed at the mark read', async () => {
      await leases.take({ runId: 'r-1', component: COMPONENT, copies: 2, takenAt: T0, onDemand: true });
      // Not needed yet: nothing to record.
      expect(await leases.markRaised(COMPONENT, 'r-1', T1, T1)).toBe(false);
      await leases.markNeeded(COMPONENT, 'r-1', T1);
      // A caller that read another mark (a lease renewed and marked again since) records nothing.
      expect(await leases.markRaised(COMPONENT, 'r-1', T0, T2)).toBe(false);
      const raisedAt = ['2026-03-01T10:06:00.000Z', '2026-03-01T10:06:01.000Z', '2026-03-01T10:06:02.000Z'];
      const wins = await Promise.all(
        [...raisedAt, ...raisedAt].map((at) => leases.markRaised(COMPONENT, 'r-1', T1, at)),
      );
      expect(wins.filter(Boolean)).toHaveLength(1);
      const stored = await leases.get(COMPONENT, 'r-1');
      expect(raisedAt).toContain(stored?.raisedAt);
      expect(await leases.markRaised(COMPONENT, 'r-1', T1, T3)).toBe(false);
      expect(await leases.list(COMPONENT)).toEqual([stored]);
      expect(stored).toEqual({
        runId: 'r-1',
        component: COMPONENT,
        copies: 2,
        takenAt: T0,
        onDemand: true,
        neededAt: T1,
        raisedAt: stored?.raisedAt,
      });
      // Never on a lease taken at plan, a released one, or one that does not exist.
      await leases.take({ runId: 'r-plan', component: COMPONENT, copies: 1, takenAt: T0 });
      expect(await leases.markRaised(COMPONENT, 'r-plan', T1, T1)).toBe(false);
      expect((await leases.get(COMPONENT, 'r-plan'))?.raisedAt).toBeUndefined();
      await leases.take({ runId: 'r-od', component: COMPONENT, copies: 1, takenAt: T0, onDemand: true });
      await leases.markNeeded(COMPONENT, 'r-od', T1);
      await leases.release(COMPONENT, 'r-od', T2, 'finalize');
      expect(await leases.markRaised(COMPONENT, 'r-od', T1, T2)).toBe(false);
      expect((await leases.get(COMPONENT, 'r-od'))?.raisedAt).toBeUndefined();
      expect(await leases.markRaised(COMPONENT, 'r-none', T1, T2)).toBe(false);
      expect(await leases.get(COMPONENT, 'r-none')).toBeUndefined();
    });

    it('a renewed lease (a redriven run) holds no copies until a worker needs it again', async () => {
      await leases.take({ runId: 'r-1', component: COMPONENT, copies: 2, takenAt: T0, onDemand: true });
      await leases.markNeeded(COMPONENT, 'r-1', T1);
      expect(await leases.markRaised(COMPONENT, 'r-1', T1, '2026-03-01T10:06:00.000Z')).toBe(true);
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
      // The renewal cleared the earlier raise with the mark: a stale sweep that read the
      // earlier mark records nothing; the raise after the new mark records its own time.
      const again = '2026-03-01T10:13:00.000Z';
      expect(await leases.markNeeded(COMPONENT, 'r-1', T3)).toBe(true);
      expect(await leases.markRaised(COMPONENT, 'r-1', T1, T3)).toBe(false);
      expect(await leases.markRaised(COMPONENT, 'r-1', T3, again)).toBe(true);
      expect(await leases.get(COMPONENT, 'r-1')).toMatchObject({ neededAt: T3, raisedAt: again });
    });
  });
}
