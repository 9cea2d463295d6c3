import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { CapacityControlError } from '../../shared/capacity/errors.ts';
import { type PipelineCapacity, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';
import type { RunState } from '../../shared/domain/types.ts';
import type { CapacityControl } from '../../shared/ports/capacity-control.ts';
import { pipelineConfig } from '../core/factories.ts';
import { aRunWithUnits, aSummary, someCounts } from '../support/run-fixtures.ts';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

function capacityFor(endpoint: string, capacity: Partial<CapacityConfig> = {}): PipelineCapacity {
  const config = pipelineConfig({ endpoint: { name: endpoint, dimension: 16, capacity } });
  return pipelineCapacityOf(config)!;
}

describe('sweepCapacity', () => {
  let dir: string;
  let leases: LocalCapacityLeases;
  let runs: LocalRunStore;
  let control: LocalCapacityControl;
  // The cooldown's mechanics: kept after every release (auto mode is tested below).
  const embed = capacityFor('embed', {
    cooldownSeconds: 300,
    cooldown: 'always',
    leaseStaleSeconds: 3600,
    maxCopies: 4,
  });
  const component = embed.componentName;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-sweep-'));
    leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
    runs = new LocalRunStore(path.join(dir, 'runs'));
    control = new LocalCapacityControl();
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const sweep = (
    now: Date,
    capacities: PipelineCapacity[] = [embed],
    over: Partial<{ control: CapacityControl }> = {},
  ) =>
    sweepCapacity({ leases, runs, control: over.control ?? control }, capacities, now, { graceSeconds: 120 });

  async function aRunningRun(copies: number, takenAt = 0, units = 2) {
    const { run, units: planned } = aRunWithUnits(units, { startedAt: iso(takenAt) });
    await runs.createRun(run, planned);
    await leases.take({ runId: run.runId, component, copies, takenAt: iso(takenAt) });
    return { run, units: planned };
  }

  /** What finalize does: the run moves first, then its lease is released at the time its summary reports. */
  async function finalize(run: RunState, seconds: number) {
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(seconds) });
    await leases.release(component, run.runId, iso(seconds), 'finalize');
  }

  it('raises copies to what the live leases need and marks them ready once serving', async () => {
    const a = await aRunningRun(1);
    const b = await aRunningRun(2);
    const [result] = await sweep(at(30));
    expect(result).toMatchObject({ component, copies: 3, set: { copies: 3, outcome: { applied: true } } });
    expect([...result!.liveLeases].sort()).toEqual([a.run.runId, b.run.runId].sort());
    expect((await control.describe(component)).desiredCopies).toBe(3);

    await sweep(at(90));
    expect((await leases.get(component, a.run.runId))?.readyAt).toBe(iso(90));
  });

  it('never asks for more than maxCopies', async () => {
    await aRunningRun(4);
    await aRunningRun(4);
    const [result] = await sweep(at(10));
    expect(result?.copies).toBe(4);
  });

  it('keeps the copies through the cooldown after the last release, then scales to zero', async () => {
    const { run } = await aRunningRun(2);
    await sweep(at(10));
    await finalize(run, 600);

    const cooling = await sweep(at(600 + 299));
    expect(cooling[0]).toMatchObject({ copies: 2, coolingDown: true, capacityWithoutRun: false });
    expect(cooling[0]?.set).toBeUndefined();

    const after = await sweep(at(600 + 300));
    expect(after[0]).toMatchObject({ copies: 0, coolingDown: false, capacityWithoutRun: false });
    expect(after[0]?.set).toEqual({ copies: 0, outcome: { applied: true } });
    expect(await control.describe(component)).toMatchObject({ desiredCopies: 0, currentCopies: 0 });
  });

  it('does not lower copies a plan raised for a lease taken while the sweep was looking', async () => {
    await control.setCopies(component, 1);
    let planned = false;
    const racing: CapacityControl = {
      describe: async (name) => {
        // A plan takes its lease and raises the copies between the sweep's reads.
        if (!planned) {
          planned = true;
          await aRunningRun(2, 10);
          await control.setCopies(component, 2);
        }
        return control.describe(name);
      },
      setCopies: (name, copies) => control.setCopies(name, copies),
    };
    const [result] = await sweep(at(20), [embed], { control: racing });
    expect(result?.set).toBeUndefined();
    expect((await control.describe(component)).desiredCopies).toBe(2);
    expect((await sweep(at(80)))[0]).toMatchObject({ copies: 2 });
  });

  it('a run planned within the cooldown takes over the warm copies', async () => {
    const first = await aRunningRun(2);
    await sweep(at(10));
    await finalize(first.run, 600);
    await aRunningRun(1, 700);
    const [result] = await sweep(at(720));
    // Still cooling down from the release at 600: the 2 copies stay for the new run.
    expect(result).toMatchObject({ copies: 2, coolingDown: true });
  });

  it('releases the lease of a run that finished without releasing it (a finalize that died), from when it finished', async () => {
    const { run } = await aRunningRun(1);
    await sweep(at(10));
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(400) });
    const [result] = await sweep(at(460));
    expect(result?.leaked).toEqual([{ runId: run.runId, reason: 'run-finished' }]);
    expect(await leases.get(component, run.runId)).toMatchObject({
      releasedAt: iso(400),
      releasedBy: 'sweeper',
    });
    // The cooldown runs from the run's end: copies stay until 700, then go.
    expect(result?.copies).toBe(1);
    expect((await sweep(at(701)))[0]?.copies).toBe(0);
  });

  it('releases the lease of a run that does not exist', async () => {
    await leases.take({ runId: 'r-gone', component, copies: 1, takenAt: iso(0) });
    const [result] = await sweep(at(10));
    expect(result?.leaked).toEqual([{ runId: 'r-gone', reason: 'run-missing' }]);
    expect(result?.liveLeases).toEqual([]);
  });

  it('releases the lease of a run silent for leaseStaleSeconds; a unit finishing counts as progress', async () => {
    const { run, units } = await aRunningRun(1);
    await sweep(at(60));
    await runs.completeUnit(run.runId, units[0]!.unitId, {
      counts: someCounts(),
      actualCost: 1,
      outputKeys: [],
    });
    // Progress seen at 3000: the lease lives until 3000 + 3600.
    expect((await sweep(at(3000)))[0]?.liveLeases).toEqual([run.runId]);
    expect((await sweep(at(6500)))[0]?.liveLeases).toEqual([run.runId]);
    const [stale] = await sweep(at(6601));
    expect(stale?.leaked).toEqual([{ runId: run.runId, reason: 'stale' }]);
  });

  it('reports capacity without a run only once it outlasts the cooldown and the grace', async () => {
    // Copies up with no lease and no release at all (someone set them by hand, or a leak long ago).
    await control.setCopies(component, 2);
    const broken: CapacityControl = {
      describe: (name) => control.describe(name),
      setCopies: async () => {
        throw new CapacityControlError(component, 'denied', false);
      },
    };
    await leases.take({ runId: 'r-x', component, copies: 1, takenAt: iso(0) });
    await leases.release(component, 'r-x', iso(100), 'finalize');
    expect((await sweep(at(100 + 300 + 60), [embed], { control: broken }))[0]).toMatchObject({
      capacityWithoutRun: false,
      error: 'denied',
    });
    expect((await sweep(at(100 + 300 + 120), [embed], { control: broken }))[0]).toMatchObject({
      capacityWithoutRun: true,
      error: 'denied',
    });
  });

  it('keeps minCopies between runs in always-on mode, and raises no alarm for them', async () => {
    const alwaysOn = capacityFor('embed', { mode: 'always-on', minCopies: 1, cooldownSeconds: 0 });
    const [first] = await sweep(at(0), [alwaysOn]);
    expect(first).toMatchObject({ copies: 1, capacityWithoutRun: false });
    const [later] = await sweep(at(86_400), [alwaysOn]);
    expect(later).toMatchObject({ copies: 1, capacityWithoutRun: false });
    expect(later?.set).toBeUndefined();
  });

  it('reports the leases it already released when SageMaker fails after the review', async () => {
    await leases.take({ runId: 'r-gone', component, copies: 1, takenAt: iso(0) });
    const failing: CapacityControl = {
      describe: async (name) => {
        throw new CapacityControlError(name, 'throttled', true);
      },
      setCopies: (name, copies) => control.setCopies(name, copies),
    };
    const [result] = await sweep(at(10), [embed], { control: failing });
    expect(result).toMatchObject({
      leaked: [{ runId: 'r-gone', reason: 'run-missing' }],
      error: 'throttled',
    });
    expect(result).not.toHaveProperty('before');
    expect(result).not.toHaveProperty('copies');
  });

  it('sweeps every component even when one fails', async () => {
    const score = capacityFor('score');
    await control.setCopies(score.componentName, 1);
    const failing: CapacityControl = {
      describe: async (name) => {
        if (name === component) throw new CapacityControlError(name, 'throttled', true);
        return control.describe(name);
      },
      setCopies: (name, copies) => control.setCopies(name, copies),
    };
    const results = await sweep(at(10), [embed, score, embed], { control: failing });
    expect(results.map((r) => r.component)).toEqual([component, score.componentName]);
    expect(results[0]?.error).toBe('throttled');
    expect(results[1]).toMatchObject({ copies: 0, set: { copies: 0 } });
  });

  it('holds the lease of a run reopened by a redrive again, and charges its earlier hold', async () => {
    const { run, units } = await aRunningRun(2);
    await runs.failUnit(run.runId, units[0]!.unitId, 'boom');
    await runs.completeUnit(run.runId, units[1]!.unitId, {
      counts: someCounts(),
      actualCost: 1,
      outputKeys: [],
    });
    await runs.finishRun(run.runId, { ...aSummary(run), status: 'failed', finishedAt: iso(600) });
    await leases.release(component, run.runId, iso(600), 'finalize');
    // Within the cooldown nothing is renewed: the run is not running.
    expect((await sweep(at(660)))[0]?.renewed).toEqual([]);

    await runs.reopenFailedRun(run.runId);
    const [result] = await sweep(at(3600));
    expect(result).toMatchObject({ renewed: [run.runId], liveLeases: [run.runId], copies: 2 });
    // Held 600 s, then the 300 s cooldown, before the redrive.
    expect(await leases.get(component, run.runId)).toMatchObject({ takenAt: iso(3600), priorSeconds: 900 });
    expect((await sweep(at(3660)))[0]?.renewed).toEqual([]);
  });

  it('does not hold again a lease the sweeper released as leaked, nor one older than the renew window', async () => {
    const stale = await aRunningRun(1);
    await leases.release(component, stale.run.runId, iso(10), 'sweeper');
    const late = await aRunningRun(1);
    await leases.release(component, late.run.runId, iso(10), 'finalize');
    const [result] = await sweep(at(2 * 86_400));
    expect(result?.renewed).toEqual([]);
    expect(result?.liveLeases).toEqual([]);
  });

  it('forgets released leases older than a week', async () => {
    await leases.take({ runId: 'r-old', component, copies: 1, takenAt: iso(0) });
    await leases.release(component, 'r-old', iso(10), 'finalize');
    expect((await sweep(at(86_400)))[0]?.forgotten).toBe(0);
    expect((await sweep(at(8 * 86_400)))[0]?.forgotten).toBe(1);
    expect(await leases.list(component)).toEqual([]);
  });

  describe('cooldown auto', () => {
    const auto = (schedule?: string) => {
      const config = pipelineConfig({
        endpoint: { name: 'embed', dimension: 16, capacity: { cooldownSeconds: 300, maxCopies: 4 } },
        ...(schedule && { schedule: { expression: schedule, prefix: 'datasets/docs/' } }),
      });
      return pipelineCapacityOf(config)!;
    };

    it('ends the cooldown at the release when no run is likely to follow', async () => {
      const { run } = await aRunningRun(2);
      await sweep(at(10), [auto()]);
      await finalize(run, 600);
      const [result] = await sweep(at(601), [auto()]);
      expect(result).toMatchObject({
        copies: 0,
        coolingDown: false,
        cooldown: 'none',
        capacityWithoutRun: false,
      });
      expect(result?.set).toEqual({ copies: 0, outcome: { applied: true } });
    });

    it('keeps the copies through the cooldown when a schedule of any pipeline on the component ticks within it', async () => {
      const { run } = await aRunningRun(2);
      // T0 is 10:00 UTC; the release at 10:10 is 5 minutes before a 10:15 tick of another pipeline.
      const other = { ...auto('cron(15 10 * * ? *)'), endpointName: 'other' };
      await sweep(at(10), [auto(), other]);
      await finalize(run, 600);
      const [cooling] = await sweep(at(601), [auto(), other]);
      expect(cooling).toMatchObject({ copies: 2, coolingDown: true, cooldown: 'schedule' });
      expect((await sweep(at(900), [auto(), other]))[0]).toMatchObject({ copies: 0, coolingDown: false });
    });

    it('keeps the copies after back-to-back runs, so the next one finds them warm', async () => {
      const first = await aRunningRun(1);
      await sweep(at(10), [auto()]);
      await finalize(first.run, 100);
      expect((await sweep(at(120), [auto()]))[0]).toMatchObject({ copies: 0, cooldown: 'none' });
      // A lease 200 s after the release: back-to-back; its release keeps the cooldown.
      const second = await aRunningRun(1, 300);
      await sweep(at(310), [auto()]);
      await finalize(second.run, 400);
      expect((await sweep(at(460), [auto()]))[0]).toMatchObject({
        copies: 1,
        coolingDown: true,
        cooldown: 'back-to-back',
      });
      await aRunningRun(1, 500);
      const [third] = await sweep(at(520), [auto()]);
      expect(third).toMatchObject({ copies: 1, liveLeases: [expect.any(String)] });
      expect(third?.set).toBeUndefined();
    });
  });
});
