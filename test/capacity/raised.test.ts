import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { copiesHeldFrom } from '../../shared/capacity/copies.ts';
import { coveredBy, noteCopiesRaised } from '../../shared/capacity/raised.ts';

const T0 = Date.parse('2026-12-07T03:00:00.000Z');
const iso = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const COMPONENT = 'docs-embed-model';

describe('noteCopiesRaised: when an on-demand lease is charged from', () => {
  let dir: string;
  let leases: LocalCapacityLeases;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-raised-'));
    leases = new LocalCapacityLeases(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function needed(runId: string, neededAt?: number, onDemand = true) {
    await leases.take({ runId, component: COMPONENT, copies: 1, takenAt: iso(0), onDemand });
    if (neededAt !== undefined) await leases.markNeeded(COMPONENT, runId, iso(neededAt));
    return (await leases.get(COMPONENT, runId))!;
  }

  it('records only needed on-demand leases without a raise: a raise at its time, never before the mark', async () => {
    const listed = [
      await needed('r-needed', 100),
      await needed('r-early', 130),
      await needed('r-idle'),
      await needed('r-plan', undefined, false),
    ];
    expect(await noteCopiesRaised(leases, listed, { at: at(120) })).toEqual(['r-needed', 'r-early']);
    // A worker clock ahead of the sweeper's: not before the mark.
    expect((await leases.get(COMPONENT, 'r-early'))?.raisedAt).toBe(iso(130));
    expect((await leases.get(COMPONENT, 'r-needed'))?.raisedAt).toBe(iso(120));
    expect((await leases.get(COMPONENT, 'r-idle'))?.raisedAt).toBeUndefined();
    expect((await leases.get(COMPONENT, 'r-plan'))?.raisedAt).toBeUndefined();
    // A later look (stale list or fresh) changes nothing.
    expect(await noteCopiesRaised(leases, listed, { at: at(180) })).toEqual([]);
    expect(await noteCopiesRaised(leases, await leases.list(COMPONENT), 'serving')).toEqual([]);
    expect(copiesHeldFrom((await leases.get(COMPONENT, 'r-needed'))!)).toBe(iso(120));
  });

  it('copies covering the need: from the mark when they serve, else no later than the look', async () => {
    expect(coveredBy({ desiredCopies: 2, currentCopies: 2, status: 'InService' }, 2, at(90))).toBe('serving');
    expect(coveredBy({ desiredCopies: 2, currentCopies: 1, status: 'Updating' }, 2, at(90))).toEqual({
      at: at(90),
    });
    const serving = await needed('r-serving', 100);
    await noteCopiesRaised(leases, [serving], 'serving');
    expect((await leases.get(COMPONENT, 'r-serving'))?.raisedAt).toBe(iso(100));
    // A lease with no raise recorded (stored before raisedAt) is charged from its mark.
    expect(copiesHeldFrom(await needed('r-old', 100))).toBe(iso(100));
  });
});
