import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoCapacityLeases } from '../../shared/adapters/aws/dynamo-capacity-leases.ts';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { LocalCapacityControl } from '../../shared/adapters/local/local-capacity-control.ts';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { CapacityControlError } from '../../shared/capacity/errors.ts';
import { type PipelineCapacity, pipelineCapacityOf } from '../../shared/capacity/names.ts';
import { demandRunCapacity } from '../../shared/capacity/on-demand.ts';
import {
  acquireRunCapacity,
  releaseRunCapacity,
  scaleInAtRelease,
  settleRunCapacity,
} from '../../shared/capacity/run-capacity.ts';
import { sweepCapacity } from '../../shared/capacity/sweep.ts';
import type { CapacityConfig } from '../../shared/config/pipeline-config.ts';
import type { RunState } from '../../shared/domain/types.ts';
import type { CapacityControl } from '../../shared/ports/capacity-control.ts';
import type { CapacityLeases } from '../../shared/ports/capacity-leases.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import { pipelineConfig } from '../core/factories.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { aRunWithUnits, aSummary } from '../support/run-fixtures.ts';

/**
 * Adversarial cases of copies on demand (docs/capacity.md, "Copies on demand") at the level
 * of the leases, the sweeper and finalize's capacity steps: a mark that comes late, overlapping
 * runs on one component, a warm-up that starts long after plan, and a sweeper that fails.
 */

const T0 = Date.parse('2026-12-07T03:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();
const COLD_START_SECONDS = 420;

function capacityFor(capacity: Partial<CapacityConfig>): PipelineCapacity {
  return pipelineCapacityOf(
    pipelineConfig({
      endpoint: { name: 'docs-embed', dimension: 16, capacity: { maxCopies: 4, ...capacity } },
    }),
  )!;
}

// Marshalled as the Lambdas' document client is (functions/config/adapters.ts).
const dynalite = useDynaliteTables({ translateConfig: { marshallOptions: { removeUndefinedValues: true } } });

describe.each([
  ['local files', 'local'],
  ['the runs table (dynalite)', 'dynalite'],
] as const)('copies on demand under review: leases, sweeper and finalize, over %s', (_, store) => {
  let dir: string;
  let seconds: number;
  let leases: CapacityLeases;
  let runs: RunStore;
  let control: LocalCapacityControl;
  // auto cooldown with no history: a release keeps none, so finalize scales in at once.
  const capacity = capacityFor({ cooldownSeconds: 300, leaseStaleSeconds: 900, warmupLimitSeconds: 600 });
  const component = capacity.componentName;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-on-demand-review-'));
    seconds = 0;
    if (store === 'local') {
      leases = new LocalCapacityLeases(path.join(dir, 'capacity'));
      runs = new LocalRunStore(path.join(dir, 'runs'));
    } else {
      const tableName = await dynalite.newTable();
      leases = new DynamoCapacityLeases({ doc: dynalite.doc, tableName });
      runs = new DynamoRunStore({ doc: dynalite.doc, tableName });
    }
    control = new LocalCapacityControl({
      warmupMs: COLD_START_SECONDS * 1000,
      now: () => T0 + seconds * 1000,
    });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const sweep = async (s: number, over: CapacityControl = control) => {
    seconds = s;
    const [swept] = await sweepCapacity({ leases, control: over, runs }, [capacity], at(s), {
      graceSeconds: 120,
    });
    return swept!;
  };

  /** A running run and its lease, taken at `takenAt` on demand (or raised at plan). */
  async function aRun(
    copies: number,
    options: { takenAt?: number; onDemand?: boolean } = {},
  ): Promise<RunState> {
    const takenAt = options.takenAt ?? 0;
    const { run, units } = aRunWithUnits(2, { startedAt: iso(takenAt) });
    await runs.createRun(run, units);
    seconds = takenAt;
    // copiesForRun: 1 copy per 10 x 60 of work.
    await acquireRunCapacity(
      { leases, control, onDemandCopies: true },
      capacity,
      run.runId,
      copies * 600 - 1,
      at(takenAt),
      options.onDemand ?? true,
    );
    return run;
  }

  it('a lease marked needed long after its last progress is not released as stale while its copies start (warm-up within warmupLimitSeconds)', async () => {
    // The 900 s stale limit exceeds the 600 s warm-up limit, as the config requires.
    const run = await aRun(1);
    expect((await sweep(60)).copies).toBe(0);
    // The run's first unit with chunks to embed asks 500 s after plan (its units compared chunks until then).
    expect(await leases.markNeeded(component, run.runId, iso(500))).toBe(true);
    expect(await sweep(540)).toMatchObject({ liveLeases: [run.runId], set: { copies: 1 } });
    // The copy serves at 540 + 420 = 960: the unit that met no capacity at 500 may wait until 1100.
    const warming = await sweep(901);
    expect(warming.leaked).toEqual([]);
    expect(warming).toMatchObject({ liveLeases: [run.runId], copies: 1 });
    expect((await leases.get(component, run.runId))?.releasedAt).toBeUndefined();
    expect((await control.describe(component)).desiredCopies).toBe(1);
    const ready = await sweep(961);
    expect(ready).toMatchObject({ liveLeases: [run.runId], copies: 1 });
    expect((await leases.get(component, run.runId))?.readyAt).toBe(iso(961));
  });

  it('a never-needed lease still goes stale after leaseStaleSeconds without any progress', async () => {
    const run = await aRun(1);
    expect((await sweep(900)).leaked).toEqual([]);
    expect(await sweep(901)).toMatchObject({ leaked: [{ runId: run.runId, reason: 'stale' }] });
  });

  it('finalize scales in at release when the only lease left is on demand and not needed (it holds no copies)', async () => {
    const planned = await aRun(1, { onDemand: false });
    expect((await control.describe(component)).desiredCopies).toBe(1);
    const onDemand = await aRun(2, { takenAt: 30 });
    expect((await control.describe(component)).desiredCopies).toBe(1);
    seconds = 600;
    await runs.finishRun(planned.runId, { ...aSummary(planned), finishedAt: iso(600) });
    const settled = await settleRunCapacity(leases, capacity, planned.runId, at(600));
    expect(settled?.cooldown.keep).toBe(false);
    await releaseRunCapacity(leases, planned.runId, settled!.summary);
    // The on-demand run's lease holds none: the copies go now, not at the next sweep.
    expect(await scaleInAtRelease({ leases, control }, capacity)).toEqual({ copies: 0 });
    expect((await control.describe(component)).desiredCopies).toBe(0);
    // The sweep after agrees, and nothing is up without a run.
    expect(await sweep(660)).toMatchObject({
      liveLeases: [onDemand.runId],
      copies: 0,
      capacityWithoutRun: false,
    });
    expect((await sweep(660)).set).toBeUndefined();
  });

  it('finalize keeps the copies an on-demand run marked needed (and raises them back if it marks while they are lowered)', async () => {
    const planned = await aRun(1, { onDemand: false });
    const onDemand = await aRun(2, { takenAt: 30 });
    expect(await leases.markNeeded(component, onDemand.runId, iso(40))).toBe(true);
    seconds = 600;
    await leases.release(component, planned.runId, iso(600), 'finalize');
    expect(await scaleInAtRelease({ leases, control }, capacity)).toEqual({ skipped: 'leases-held' });
    expect((await control.describe(component)).desiredCopies).toBe(1);

    // A mark that lands between finalize's look at the leases and its lowering is raised back by its check.
    const other = await aRun(1, { takenAt: 610 });
    await leases.release(component, onDemand.runId, iso(620), 'finalize');
    let marked = false;
    const racing: CapacityControl = {
      describe: (name) => control.describe(name),
      setCopies: async (name, copies) => {
        if (!marked) {
          marked = true;
          await leases.markNeeded(component, other.runId, iso(621));
        }
        return control.setCopies(name, copies);
      },
    };
    seconds = 621;
    expect(await scaleInAtRelease({ leases, control: racing }, capacity)).toEqual({
      copies: 0,
      raisedAgainTo: 1,
    });
    expect((await control.describe(component)).desiredCopies).toBe(1);
  });

  it('releasing a never-needed run beside a run raised at plan leaves that run its copies; each is charged its own', async () => {
    const planned = await aRun(1, { onDemand: false });
    const onDemand = await aRun(2, { takenAt: 30 });
    await sweep(60);
    expect((await control.describe(component)).desiredCopies).toBe(1);
    seconds = 300;
    await runs.finishRun(onDemand.runId, { ...aSummary(onDemand), finishedAt: iso(300) });
    const neverNeeded = await settleRunCapacity(leases, capacity, onDemand.runId, at(300));
    expect(neverNeeded).toMatchObject({
      endpointSeconds: 0,
      summary: { copiesRaised: 'never', cooldown: { seconds: 0 } },
    });
    await releaseRunCapacity(leases, onDemand.runId, neverNeeded!.summary);
    expect(await scaleInAtRelease({ leases, control }, capacity)).toEqual({ skipped: 'leases-held' });
    expect(await sweep(360)).toMatchObject({
      liveLeases: [planned.runId],
      copies: 1,
      capacityWithoutRun: false,
    });
    expect((await control.describe(component)).desiredCopies).toBe(1);
    // The run raised at plan is charged its copy from plan to its release.
    seconds = 900;
    const raised = await settleRunCapacity(leases, capacity, planned.runId, at(900));
    expect(raised?.endpointSeconds).toBe(900);
    expect(raised?.summary.copiesRaised).toBeUndefined();
  });

  it('a mark that arrives after finalize released the lease is refused: nothing is raised for the finished run', async () => {
    const run = await aRun(2);
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(300) });
    await leases.release(component, run.runId, iso(300), 'finalize');
    // A delivery that outlived its visibility timeout reaches its first endpoint call.
    expect(await demandRunCapacity({ leases }, capacity, run.runId, at(310))).toEqual({ marked: false });
    expect(await demandRunCapacity({ leases, control }, capacity, run.runId, at(310))).toEqual({
      marked: false,
    });
    const swept = await sweep(360);
    expect(swept).toMatchObject({ liveLeases: [], copies: 0, capacityWithoutRun: false });
    expect(control.requests).toEqual([]);
    expect(await settleRunCapacity(leases, capacity, run.runId, at(400))).toMatchObject({
      endpointSeconds: 0,
    });
  });

  it('a mark between the run moving and its lease released: the sweeper releases it as finished and raises nothing', async () => {
    const run = await aRun(2);
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(300) });
    // The lease store does not see the run: the mark lands.
    expect(await leases.markNeeded(component, run.runId, iso(305))).toBe(true);
    const swept = await sweep(330);
    expect(swept).toMatchObject({
      liveLeases: [],
      leaked: [{ runId: run.runId, reason: 'run-finished' }],
      copies: 0,
      capacityWithoutRun: false,
    });
    expect(control.requests).toEqual([]);
    // Finalize's release then gets the sweeper's (as of finishedAt): the hold from a mark after it counts 0.
    const released = await leases.release(component, run.runId, iso(331), 'finalize');
    expect(released).toMatchObject({ releasedAt: iso(300), releasedBy: 'sweeper' });
    expect((await settleRunCapacity(leases, capacity, run.runId, at(340)))?.endpointSeconds).toBe(0);
  });

  it('a needed lease survives a sweeper that fails, then finds the component busy: the sweep after raises', async () => {
    const run = await aRun(1);
    // The worker marks (deployed: no control plane) and dies before anything else: the mark is the request.
    expect(await demandRunCapacity({ leases }, capacity, run.runId, at(10))).toEqual({ marked: true });
    const answers: ('throttled' | 'busy' | 'ok')[] = ['throttled', 'busy', 'ok'];
    const flaky: CapacityControl = {
      describe: (name) => control.describe(name),
      setCopies: async (name, copies) => {
        const answer = answers.shift() ?? 'ok';
        if (answer === 'throttled') throw new CapacityControlError(name, 'Rate exceeded', true);
        if (answer === 'busy') return { applied: false, reason: 'Inference component is Updating' };
        return control.setCopies(name, copies);
      },
    };
    const failed = await sweep(60, flaky);
    expect(failed.error).toContain('Rate exceeded');
    expect(failed).toMatchObject({ liveLeases: [run.runId], capacityWithoutRun: false });
    // Neither the throttled set nor the busy one asked SageMaker for a copy: nothing recorded.
    expect((await leases.get(component, run.runId))?.raisedAt).toBeUndefined();
    const busy = await sweep(120, flaky);
    expect(busy).toMatchObject({ set: { copies: 1, outcome: { applied: false } } });
    expect(busy.raised).toBeUndefined();
    expect((await leases.get(component, run.runId))?.raisedAt).toBeUndefined();
    expect(await sweep(180, flaky)).toMatchObject({
      set: { copies: 1, outcome: { applied: true } },
      raised: [run.runId],
    });
    expect((await leases.get(component, run.runId))?.releasedAt).toBeUndefined();
    expect(control.requests).toEqual([{ component, copies: 1 }]);
    // Charged from the raise that landed (SageMaker bills the copy from then), not from the
    // mark nor from plan, and the warm-up from that raise too.
    expect(await sweep(180 + COLD_START_SECONDS)).toMatchObject({ copies: 1 });
    expect((await sweep(180 + COLD_START_SECONDS + 60)).raised).toBeUndefined();
    seconds = 900;
    const settled = await settleRunCapacity(leases, capacity, run.runId, at(900));
    expect(settled).toMatchObject({
      endpointSeconds: 900 - 180,
      summary: {
        copiesRaised: 'on-demand',
        neededAt: iso(10),
        raisedAt: iso(180),
        warmupSeconds: COLD_START_SECONDS,
      },
    });
  });

  it('a worker clock ahead of the sweeper: a mark "in the future" charges no negative hold and keeps the lease live', async () => {
    const run = await aRun(1);
    expect(await leases.markNeeded(component, run.runId, iso(200))).toBe(true);
    expect(await sweep(150)).toMatchObject({ liveLeases: [run.runId], set: { copies: 1 } });
    seconds = 180;
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(180) });
    const settled = await settleRunCapacity(leases, capacity, run.runId, at(180));
    expect(settled?.endpointSeconds).toBe(0);
    expect(settled?.summary.warmupSeconds).toBeUndefined();
  });
  // When the copies were asked for (`raisedAt`, docs/capacity.md, "What a run is charged").
  it('copies already up when the lease is marked: covered from its mark (no raise), and a later raise for another run does not move it', async () => {
    // Copies a kept cooldown (or another run) left up: 2 desired, serving.
    await control.setCopies(component, 2);
    const run = await aRun(1);
    expect(await leases.markNeeded(component, run.runId, iso(100))).toBe(true);
    seconds = 100 + COLD_START_SECONDS;
    const covered = await sweep(seconds + 20);
    // The sweep lowers to what the lease needs; the lease was served from its mark.
    expect(covered).toMatchObject({ set: { copies: 1 }, raised: [run.runId] });
    expect(await leases.get(component, run.runId)).toMatchObject({ neededAt: iso(100), raisedAt: iso(100) });
    // A second on-demand run needs a copy of its own: raised at its sweep, recorded on it only.
    const other = await aRun(1, { takenAt: 600 });
    expect(await leases.markNeeded(component, other.runId, iso(610))).toBe(true);
    expect(await sweep(660)).toMatchObject({ set: { copies: 2 }, raised: [other.runId] });
    expect((await leases.get(component, run.runId))?.raisedAt).toBe(iso(100));
    expect((await leases.get(component, other.runId))?.raisedAt).toBe(iso(660));
    // The next sweep sets and records nothing.
    const quiet = await sweep(720);
    expect(quiet.set).toBeUndefined();
    expect(quiet.raised).toBeUndefined();
    seconds = 900;
    expect(await settleRunCapacity(leases, capacity, run.runId, at(900))).toMatchObject({
      endpointSeconds: 800,
      summary: { neededAt: iso(100), raisedAt: iso(100), readyAt: iso(540), warmupSeconds: 440 },
    });
    expect((await settleRunCapacity(leases, capacity, other.runId, at(900)))?.endpointSeconds).toBe(240);
  });

  it('a raise by plan (a retried plan of a needed lease) or by the marking worker records its own time; a busy one records nothing', async () => {
    // The worker with a control plane marks and raises at once: charged from its raise.
    const first = await aRun(1);
    const busyControl: CapacityControl = {
      describe: (name) => control.describe(name),
      setCopies: async () => ({ applied: false, reason: 'Inference component is Updating' }),
    };
    const busy = await demandRunCapacity({ leases, control: busyControl }, capacity, first.runId, at(20));
    expect(busy).toMatchObject({ marked: true, raised: { deferred: expect.stringContaining('Updating') } });
    expect((await leases.get(component, first.runId))?.raisedAt).toBeUndefined();
    // A retried plan of that run follows its lease, needed: its raise counts it, from plan's time.
    seconds = 50;
    const retried = await acquireRunCapacity(
      { leases, control, onDemandCopies: true },
      capacity,
      first.runId,
      599,
      at(50),
      true,
    );
    expect(retried.raisedTo).toBe(1);
    expect((await leases.get(component, first.runId))?.raisedAt).toBe(iso(50));
    // A worker of another run that raises itself counts the leases needed then, at its time.
    const second = await aRun(1, { takenAt: 60 });
    expect(await demandRunCapacity({ leases, control }, capacity, second.runId, at(70))).toMatchObject({
      marked: true,
      raised: { raisedTo: 2 },
    });
    expect((await leases.get(component, second.runId))?.raisedAt).toBe(iso(70));
    expect((await leases.get(component, first.runId))?.raisedAt).toBe(iso(50));
    expect(control.requests).toEqual([
      { component, copies: 1 },
      { component, copies: 2 },
    ]);
  });

  it('concurrent sweeps that each raise record one time, and each run is charged from it', async () => {
    const run = await aRun(2);
    expect(await leases.markNeeded(component, run.runId, iso(30))).toBe(true);
    seconds = 60;
    const sweeps = await Promise.all(
      [60, 61, 62].map((s) =>
        sweepCapacity({ leases, control, runs }, [capacity], at(s), { graceSeconds: 120 }).then(([w]) => w!),
      ),
    );
    const raisedAt = (await leases.get(component, run.runId))?.raisedAt;
    expect([iso(60), iso(61), iso(62)]).toContain(raisedAt);
    expect(sweeps.flatMap((w) => w.raised ?? [])).toEqual([run.runId]);
    seconds = 600;
    const settled = await settleRunCapacity(leases, capacity, run.runId, at(600));
    expect(settled?.endpointSeconds).toBe(
      settled!.summary.copies * (600 - (Date.parse(raisedAt!) - T0) / 1000),
    );
    expect(settled?.endpointSeconds).toBeLessThanOrEqual(600 - 60);
  });

  /** What finalize does with the run's capacity: move, settle, release, and scale in unless the cooldown is kept. */
  async function finish(run: RunState, s: number) {
    seconds = s;
    await runs.finishRun(run.runId, { ...aSummary(run), finishedAt: iso(s) });
    const settled = await settleRunCapacity(leases, capacity, run.runId, at(s));
    await releaseRunCapacity(leases, run.runId, settled!.summary);
    if (!settled!.cooldown.keep) await scaleInAtRelease({ leases, control }, capacity);
    return settled!;
  }

  it("re-drops that never need a copy do not keep another run's copies up past its cooldown (a stream of them every 4 minutes)", async () => {
    // r0 embeds nothing; r1, 4 minutes later, has new text; then unchanged re-drops every 4 minutes.
    const r0 = await aRun(1, { takenAt: 0 });
    await finish(r0, 60);
    const r1 = await aRun(1, { takenAt: 240 });
    expect(await leases.markNeeded(component, r1.runId, iso(250))).toBe(true);
    expect(await sweep(300)).toMatchObject({ set: { copies: 1 } });
    // r1 followed r0's release within the cooldown: its release keeps the copy 300 s, charged
    // to r1 with its hold from the sweep that raised it (300) to its release (600).
    const released = await finish(r1, 600);
    expect(released).toMatchObject({
      cooldown: { keep: true, reason: 'back-to-back' },
      endpointSeconds: 300 + 300,
    });
    const swept: Awaited<ReturnType<typeof sweep>>[] = [];
    let next = 840;
    for (let s = 660; s <= 2400; s += 60) {
      if (s === next) {
        const redrop = await aRun(1, { takenAt: s });
        // Each re-drop is released 60 s later, never needed, charged nothing.
        expect((await finish(redrop, s + 60)).endpointSeconds).toBe(0);
        next += 240;
      }
      swept.push(await sweep(s + 30));
    }
    // r1's cooldown ends at 900: the sweep after it scales in, and nothing is up after.
    expect((await control.describe(component)).desiredCopies).toBe(0);
    const up = swept.filter((w) => (w.before?.desiredCopies ?? 0) > 0).map((w) => w.before);
    // Up at the sweeps of 690 to 930 (the one that sets 0), never flagged: it went with the cooldown.
    expect(up).toHaveLength(5);
    expect(swept.some((w) => w.capacityWithoutRun)).toBe(false);
    expect(control.requests.at(-1)).toEqual({ component, copies: 0 });
  });
});
