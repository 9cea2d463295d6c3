import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UnitState } from '../../shared/domain/types.ts';
import type { RunStore, UnitCompletion } from '../../shared/ports/run-store.ts';
import { aRun, aRunWithUnits, aSummary, aUnit, someCounts } from '../support/run-fixtures.ts';

export interface RunStoreUnderTest {
  readonly store: RunStore;
  cleanup(): Promise<void>;
}

/**
 * The behaviour every RunStore must have: these are the exactly-once guarantees the work
 * and finalize steps rely on. Call it from a test file per implementation. `makeStore`
 * runs before each test and must return an empty store.
 */
export function runStoreContract(name: string, makeStore: () => Promise<RunStoreUnderTest>): void {
  describe(`RunStore contract: ${name}`, () => {
    let store: RunStore;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      const made = await makeStore();
      store = made.store;
      cleanup = () => made.cleanup();
    });

    afterEach(async () => {
      await cleanup?.();
      cleanup = undefined;
    });

    const byUnitId = <U extends UnitState>(units: U[]) =>
      [...units].sort((a, b) => a.unitId.localeCompare(b.unitId));
    const unitOf = async (runId: string, unitId: string) =>
      (await store.listUnits(runId)).find((u) => u.unitId === unitId);
    const result = (records: number) => ({
      counts: someCounts({ records }),
      actualCost: records * 400,
      outputKeys: [`results/embeddings/part-${records}.parquet`],
    });

    describe('creating and reading', () => {
      it('returns a created run as it was given and its units as pending with no attempts', async () => {
        const { run, units } = aRunWithUnits(3);
        const packedUnit = {
          ...units[2]!,
          packed: [
            { key: 'incoming/docs/s.txt', size: 9, format: 'text' as const, compression: 'none' as const },
          ],
        };
        await store.createRun(run, [units[0]!, units[1]!, packedUnit]);

        expect(await store.getRun(run.runId)).toEqual(run);
        const stored = byUnitId(await store.listUnits(run.runId));
        expect(stored).toEqual(
          [units[0]!, units[1]!, packedUnit].map((u) => ({
            unitId: u.unitId,
            sourceKey: u.sourceKey,
            byteStart: u.byteStart,
            byteEnd: u.byteEnd,
            estCost: u.estCost,
            packedFiles: u.packed.length,
            actualCost: null,
            records: null,
            status: 'pending',
            attempts: 0,
            lastError: null,
            counts: null,
            outputKeys: [],
          })),
        );
      });

      it('keeps the full descriptor of every unit and returns it only when asked for', async () => {
        const { run, units } = aRunWithUnits(2);
        const csvUnit = {
          ...units[1]!,
          format: 'csv' as const,
          csvHeader: 'id,text',
          packed: [
            {
              key: 'incoming/docs/b c+%é.csv',
              size: 12,
              format: 'csv' as const,
              compression: 'none' as const,
            },
          ],
          staged: { key: 'staging/x/part-1', offset: 1_048_576 },
        };
        await store.createRun(run, [units[0]!, csvUnit]);

        const plain = byUnitId(await store.listUnits(run.runId));
        expect(plain.map((u) => u.descriptor)).toEqual([undefined, undefined]);
        const full = byUnitId(await store.listUnits(run.runId, { withDescriptors: true }));
        expect(full.map((u) => u.descriptor)).toEqual([units[0]!, csvUnit]);
        expect(full[1]).toMatchObject({ unitId: 'u0001', status: 'pending', packedFiles: 1 });
      });

      it('returns nothing for a run that does not exist', async () => {
        expect(await store.getRun('r-20260301T000000Z-ffffff')).toBeUndefined();
        expect(await store.listUnits('r-20260301T000000Z-ffffff')).toEqual([]);
      });

      it('lists every unit of a run larger than one page or batch', async () => {
        const { run, units } = aRunWithUnits(60);
        await store.createRun(run, units);
        const stored = await store.listUnits(run.runId);
        expect(stored.map((u) => u.unitId).sort()).toEqual(units.map((u) => u.unitId));
      });

      it('keeps the units of different runs apart', async () => {
        const first = aRunWithUnits(2);
        const second = aRunWithUnits(3);
        await store.createRun(first.run, first.units);
        await store.createRun(second.run, second.units);
        expect(await store.listUnits(first.run.runId)).toHaveLength(2);
        expect(await store.listUnits(second.run.runId)).toHaveLength(3);
      });

      it('lists runs newest first, up to the limit', async () => {
        const older = aRun({ startedAt: '2026-03-01T08:00:00.000Z' });
        const newest = aRun({ startedAt: '2026-03-02T08:00:00.000Z' });
        const middle = aRun({ startedAt: '2026-03-01T20:00:00.000Z' });
        for (const run of [older, newest, middle]) await store.createRun(run, []);

        expect((await store.listRuns(2)).map((r) => r.runId)).toEqual([newest.runId, middle.runId]);
        expect(await store.listRuns()).toEqual([newest, middle, older]);
      });
    });

    describe('startUnit', () => {
      it('counts every delivery and marks the unit running', async () => {
        const { run, units } = aRunWithUnits(1);
        await store.createRun(run, units);

        const first = await store.startUnit(run.runId, 'u0000');
        const second = await store.startUnit(run.runId, 'u0000');

        expect(first).toMatchObject({ unitId: 'u0000', status: 'running', attempts: 1 });
        expect(second).toMatchObject({ status: 'running', attempts: 2 });
        expect(await unitOf(run.runId, 'u0000')).toMatchObject({ status: 'running', attempts: 2 });
      });

      it('returns undefined for a unit that does not exist, creating nothing', async () => {
        const { run, units } = aRunWithUnits(1);
        await store.createRun(run, units);

        expect(await store.startUnit(run.runId, 'u9999')).toBeUndefined();
        expect(await store.startUnit('r-20260301T000000Z-ffffff', 'u0000')).toBeUndefined();
        expect(await store.listUnits(run.runId)).toHaveLength(1);
      });

      it('counts a late delivery of a finished unit but does not revive it', async () => {
        const { run, units } = aRunWithUnits(2);
        await store.createRun(run, units);
        await store.startUnit(run.runId, 'u0000');
        await store.completeUnit(run.runId, 'u0000', result(10));
        await store.startUnit(run.runId, 'u0001');
        await store.failUnit(run.runId, 'u0001', 'poison record');

        expect(await store.startUnit(run.runId, 'u0000')).toMatchObject({ status: 'succeeded', attempts: 2 });
        expect(await store.startUnit(run.runId, 'u0001')).toMatchObject({ status: 'failed', attempts: 2 });
        expect(await unitOf(run.runId, 'u0000')).toMatchObject({ status: 'succeeded', records: 10 });
      });
    });

    describe('completeUnit', () => {
      it('records the result of the unit and counts it toward the run', async () => {
        const { run, units } = aRunWithUnits(2);
        await store.createRun(run, units);
        await store.startUnit(run.runId, 'u0001');

        const completion = await store.completeUnit(run.runId, 'u0001', result(120));

        expect(completion).toEqual({ recorded: true, finishedRun: false, unitStatus: 'succeeded' });
        const unit = units[1]!;
        expect(await unitOf(run.runId, 'u0001')).toEqual({
          unitId: 'u0001',
          sourceKey: unit.sourceKey,
          byteStart: unit.byteStart,
          byteEnd: unit.byteEnd,
          estCost: unit.estCost,
          packedFiles: 0,
          status: 'succeeded',
          attempts: 1,
          counts: someCounts({ records: 120 }),
          actualCost: 48_000,
          records: 120,
          outputKeys: ['results/embeddings/part-120.parquet'],
          lastError: null,
        });
        expect(await store.getRun(run.runId)).toMatchObject({
          status: 'running',
          doneUnits: 1,
          failedUnits: 0,
        });
      });

      it('records a unit once: a second completion is not recorded and changes nothing', async () => {
        const { run, units } = aRunWithUnits(2);
        await store.createRun(run, units);

        expect(await store.completeUnit(run.runId, 'u0000', result(7))).toEqual({
          recorded: true,
          finishedRun: false,
          unitStatus: 'succeeded',
        });
        expect(await store.completeUnit(run.runId, 'u0000', result(99))).toEqual({
          recorded: false,
          finishedRun: false,
          unitStatus: 'succeeded',
        });

        expect(await unitOf(run.runId, 'u0000')).toMatchObject({
          records: 7,
          counts: someCounts({ records: 7 }),
        });
        expect(await store.getRun(run.runId)).toMatchObject({ doneUnits: 1, failedUnits: 0 });
      });

      it('finishes the run only with the completion of its last unit, and only once', async () => {
        const { run, units } = aRunWithUnits(3);
        await store.createRun(run, units);

        expect((await store.completeUnit(run.runId, 'u0002', result(1))).finishedRun).toBe(false);
        expect((await store.completeUnit(run.runId, 'u0000', result(1))).finishedRun).toBe(false);
        expect(await store.completeUnit(run.runId, 'u0001', result(1))).toEqual({
          recorded: true,
          finishedRun: true,
          unitStatus: 'succeeded',
        });
        expect(await store.completeUnit(run.runId, 'u0001', result(1))).toEqual({
          recorded: false,
          finishedRun: false,
          unitStatus: 'succeeded',
        });
        expect(await store.getRun(run.runId)).toMatchObject({
          totalUnits: 3,
          doneUnits: 3,
          status: 'running',
        });
      });

      it('adds a checkpoint continuation once: counted before its parent completes, the first cut point kept', async () => {
        const { run, units } = aRunWithUnits(2);
        await store.createRun(run, units);
        const continuation = aUnit(run.runId, 0, { unitId: 'u0000c', byteStart: 700_000 });
        expect(await store.addContinuation(run.runId, continuation)).toEqual(continuation);
        // A retried parent that stopped elsewhere gets the first continuation back, counted once.
        const later = aUnit(run.runId, 0, { unitId: 'u0000c', byteStart: 900_000 });
        expect(await store.addContinuation(run.runId, later)).toEqual(continuation);
        expect((await store.getRun(run.runId))?.totalUnits).toBe(3);

        expect((await store.completeUnit(run.runId, 'u0000', result(1))).finishedRun).toBe(false);
        expect((await store.completeUnit(run.runId, 'u0001', result(1))).finishedRun).toBe(false);
        expect((await store.completeUnit(run.runId, 'u0000c', result(1))).finishedRun).toBe(true);
        const stored = (await store.listUnits(run.runId, { withDescriptors: true })).find(
          (u) => u.unitId === 'u0000c',
        );
        expect(stored?.descriptor).toEqual(continuation);
      });

      it('finishes the run exactly once when every unit completes at the same moment, duplicates included', async () => {
        const { run, units } = aRunWithUnits(20);
        await store.createRun(run, units);
        // Every unit is delivered twice (SQS is at-least-once); deliveries interleave.
        const deliveries = [...units, ...units.slice().reverse()].map((u) => u.unitId);

        const completions = await Promise.all(
          deliveries.map((unitId) => store.completeUnit(run.runId, unitId, result(5))),
        );

        expect(completions.filter((c) => c.recorded)).toHaveLength(20);
        expect(completions.filter((c) => c.finishedRun)).toHaveLength(1);
        const recordedUnits = deliveries.filter((_, i) => completions[i]!.recorded);
        expect(new Set(recordedUnits).size).toBe(20);
        expect(await store.getRun(run.runId)).toMatchObject({
          totalUnits: 20,
          doneUnits: 20,
          failedUnits: 0,
        });
      });
    });

    describe('failUnit', () => {
      it('marks the unit failed for good with its error and counts it as failed', async () => {
        const { run, units } = aRunWithUnits(2);
        await store.createRun(run, units);
        await store.startUnit(run.runId, 'u0000');

        expect(await store.failUnit(run.runId, 'u0000', 'InputError: not gzip')).toEqual({
          recorded: true,
          finishedRun: false,
          unitStatus: 'failed',
        });
        expect(await store.failUnit(run.runId, 'u0000', 'again')).toEqual({
          recorded: false,
          finishedRun: false,
          unitStatus: 'failed',
        });

        expect(await unitOf(run.runId, 'u0000')).toMatchObject({
          status: 'failed',
          lastError: 'InputError: not gzip',
          counts: null,
        });
        expect(await store.getRun(run.runId)).toMatchObject({ doneUnits: 0, failedUnits: 1 });
        expect(await store.completeUnit(run.runId, 'u0001', result(3))).toEqual({
          recorded: true,
          finishedRun: true,
          unitStatus: 'succeeded',
        });
      });

      it('does not let a failed unit complete, nor a completed unit fail', async () => {
        const { run, units } = aRunWithUnits(3);
        await store.createRun(run, units);
        await store.failUnit(run.runId, 'u0000', 'dead-lettered');
        await store.completeUnit(run.runId, 'u0001', result(4));

        expect((await store.completeUnit(run.runId, 'u0000', result(4))).recorded).toBe(false);
        expect((await store.failUnit(run.runId, 'u0001', 'late dead letter')).recorded).toBe(false);

        expect(await unitOf(run.runId, 'u0000')).toMatchObject({ status: 'failed', records: null });
        expect(await unitOf(run.runId, 'u0001')).toMatchObject({ status: 'succeeded', lastError: null });
        expect(await store.getRun(run.runId)).toMatchObject({ doneUnits: 1, failedUnits: 1 });
      });

      it('finishes the run exactly once when completions and failures race, and the counts add up', async () => {
        const { run, units } = aRunWithUnits(20);
        await store.createRun(run, units);
        type Delivery = { unitId: string; outcome: 'succeeded' | 'failed' };
        // Each unit gets one completion and one failure (a redelivery that later dead-letters).
        const deliveries: Delivery[] = units.flatMap((u, i) => {
          const both: Delivery[] = [
            { unitId: u.unitId, outcome: 'succeeded' },
            { unitId: u.unitId, outcome: 'failed' },
          ];
          return i % 2 === 0 ? both : both.reverse();
        });

        const completions: UnitCompletion[] = await Promise.all(
          deliveries.map((d) =>
            d.outcome === 'succeeded'
              ? store.completeUnit(run.runId, d.unitId, result(2))
              : store.failUnit(run.runId, d.unitId, 'dead-lettered'),
          ),
        );

        expect(completions.filter((c) => c.finishedRun)).toHaveLength(1);
        const winners = deliveries.filter((_, i) => completions[i]!.recorded);
        expect(winners.map((w) => w.unitId).sort()).toEqual(units.map((u) => u.unitId));
        const stored = await store.listUnits(run.runId);
        for (const winner of winners) {
          expect(stored.find((u) => u.unitId === winner.unitId)?.status).toBe(winner.outcome);
        }
        const succeeded = winners.filter((w) => w.outcome === 'succeeded').length;
        expect(await store.getRun(run.runId)).toMatchObject({
          doneUnits: succeeded,
          failedUnits: 20 - succeeded,
        });
      });
    });

    describe('reopenFailedRun', () => {
      /** A finished failed run: u0000 succeeded, u0001 and u0002 dead-lettered. */
      async function aFailedRun() {
        const { run, units } = aRunWithUnits(3);
        await store.createRun(run, units);
        await store.startUnit(run.runId, 'u0000');
        await store.completeUnit(run.runId, 'u0000', result(5));
        for (const unitId of ['u0001', 'u0002']) {
          await store.startUnit(run.runId, unitId);
          await store.failUnit(run.runId, unitId, `EndpointUnavailable: ${unitId} 503`);
        }
        expect(await store.finishRun(run.runId, aSummary(run, { status: 'failed' }))).toBe(true);
        return { run, units };
      }

      it('brings the failed units back to pending with their descriptors and the run back to running', async () => {
        const { run, units } = await aFailedRun();

        const reopening = await store.reopenFailedRun(run.runId);

        expect(reopening.reopened).toBe(true);
        expect(await store.getSummary(run.runId)).toBeUndefined();
        expect(reopening.units.map((u) => [u.unitId, u.status, u.descriptor])).toEqual([
          ['u0001', 'pending', units[1]!],
          ['u0002', 'pending', units[2]!],
        ]);
        expect(await store.getRun(run.runId)).toEqual({
          ...run,
          status: 'running',
          finishedAt: null,
          doneUnits: 1,
          failedUnits: 0,
        });
        // Attempts and the last error stay as history; the succeeded unit is untouched.
        expect(await unitOf(run.runId, 'u0001')).toMatchObject({
          status: 'pending',
          attempts: 1,
          lastError: 'EndpointUnavailable: u0001 503',
        });
        expect(await unitOf(run.runId, 'u0000')).toMatchObject({ status: 'succeeded', records: 5 });
      });

      it('lets the redriven units finish the run again, exactly once, and finalize move it again', async () => {
        const { run } = await aFailedRun();
        await store.reopenFailedRun(run.runId);

        await store.startUnit(run.runId, 'u0001');
        expect(await store.completeUnit(run.runId, 'u0001', result(2))).toEqual({
          recorded: true,
          finishedRun: false,
          unitStatus: 'succeeded',
        });
        const last = await Promise.all([
          store.completeUnit(run.runId, 'u0002', result(3)),
          store.completeUnit(run.runId, 'u0002', result(3)),
        ]);
        expect(last.filter((c) => c.finishedRun)).toHaveLength(1);
        expect(await store.getRun(run.runId)).toMatchObject({ doneUnits: 3, failedUnits: 0 });
        expect(await store.finishRun(run.runId, aSummary(run, { status: 'succeeded' }))).toBe(true);
        expect((await store.getRun(run.runId))?.status).toBe('succeeded');
      });

      it('reopens a run once however many callers race, and never a run that is not failed', async () => {
        const { run } = await aFailedRun();

        const reopenings = await Promise.all([
          store.reopenFailedRun(run.runId),
          store.reopenFailedRun(run.runId),
          store.reopenFailedRun(run.runId),
        ]);

        expect(reopenings.filter((r) => r.reopened)).toHaveLength(1);
        expect(reopenings.filter((r) => !r.reopened).every((r) => r.units.length === 0)).toBe(true);
        expect(await store.reopenFailedRun(run.runId)).toEqual({ reopened: false, units: [] });
        expect(await store.getRun(run.runId)).toMatchObject({
          status: 'running',
          failedUnits: 0,
          doneUnits: 1,
        });

        const succeeded = aRunWithUnits(1);
        await store.createRun(succeeded.run, succeeded.units);
        await store.completeUnit(succeeded.run.runId, 'u0000', result(1));
        await store.finishRun(succeeded.run.runId, aSummary(succeeded.run));
        expect(await store.reopenFailedRun(succeeded.run.runId)).toEqual({ reopened: false, units: [] });
        expect(await store.reopenFailedRun('r-20260301T000000Z-ffffff')).toEqual({
          reopened: false,
          units: [],
        });
      });
    });

    describe('recordUnitError', () => {
      it('keeps the last error of an attempt and leaves the unit retryable', async () => {
        const { run, units } = aRunWithUnits(1);
        await store.createRun(run, units);
        await store.startUnit(run.runId, 'u0000');

        await store.recordUnitError(run.runId, 'u0000', 'EndpointThrottled: still throttling');
        await store.recordUnitError(run.runId, 'u0000', 'EndpointUnavailable: 503');

        expect(await unitOf(run.runId, 'u0000')).toMatchObject({
          status: 'running',
          lastError: 'EndpointUnavailable: 503',
        });
        expect((await store.completeUnit(run.runId, 'u0000', result(1))).recorded).toBe(true);
      });
    });

    describe('stages', () => {
      const twoStages = { stage: 'fit', stages: ['fit', 'score'] };
      const scoreUnits = (runId: string, count: number) =>
        Array.from({ length: count }, (_, i) => aUnit(runId, i, { unitId: `score-u${i}`, stage: 'score' }));

      it('stores the stage of the run and of each unit', async () => {
        const { run } = aRunWithUnits(0, twoStages);
        const units = [aUnit(run.runId, 0, { stage: 'fit' })];
        await store.createRun({ ...run, totalUnits: 1 }, units);

        expect(await store.getRun(run.runId)).toMatchObject({ stage: 'fit', stages: ['fit', 'score'] });
        expect((await store.listUnits(run.runId))[0]?.stage).toBe('fit');
      });

      it('moves a run into its next stage once, counts its units, and lets its last unit claim finalize again', async () => {
        const { run } = aRunWithUnits(0, twoStages);
        await store.createRun({ ...run, totalUnits: 1 }, [aUnit(run.runId, 0, { stage: 'fit' })]);
        expect((await store.completeUnit(run.runId, 'u0000', result(1))).finishedRun).toBe(true);

        const moves = await Promise.all([
          store.startStage(run.runId, { from: 'fit', to: 'score', unitCount: 2 }),
          store.startStage(run.runId, { from: 'fit', to: 'score', unitCount: 2 }),
        ]);
        expect(moves.filter(Boolean)).toHaveLength(1);
        await store.addStageUnits(run.runId, scoreUnits(run.runId, 2));
        expect(await store.getRun(run.runId)).toMatchObject({ stage: 'score', totalUnits: 3, doneUnits: 1 });

        expect((await store.completeUnit(run.runId, 'score-u0', result(2))).finishedRun).toBe(false);
        expect((await store.completeUnit(run.runId, 'score-u1', result(3))).finishedRun).toBe(true);
      });

      it('leaves stored units as they are when a stage is stored again', async () => {
        const { run } = aRunWithUnits(0, twoStages);
        await store.createRun(run, []);
        expect(await store.startStage(run.runId, { from: 'fit', to: 'score', unitCount: 2 })).toBe(true);
        await store.addStageUnits(run.runId, scoreUnits(run.runId, 1));
        await store.startUnit(run.runId, 'score-u0');

        await store.addStageUnits(run.runId, scoreUnits(run.runId, 2));

        const units = byUnitId(await store.listUnits(run.runId));
        expect(units.map((u) => [u.unitId, u.status, u.attempts])).toEqual([
          ['score-u0', 'running', 1],
          ['score-u1', 'pending', 0],
        ]);
      });

      it('moves a run stored before stages from the stage its caller names, and no run that is not running', async () => {
        const { run } = aRunWithUnits(0);
        await store.createRun(run, []);
        expect(await store.startStage(run.runId, { from: 'fit', to: 'score', unitCount: 0 })).toBe(true);
        expect((await store.getRun(run.runId))?.stage).toBe('score');

        const finished = aRunWithUnits(0, { startedAt: '2026-03-01T11:00:00.000Z' }).run;
        await store.createRun(finished, []);
        await store.finishRun(finished.runId, aSummary(finished));
        expect(await store.startStage(finished.runId, { from: 'fit', to: 'score', unitCount: 1 })).toBe(
          false,
        );
      });
    });

    describe('finishRun', () => {
      it('moves the run to its final status and keeps when it finished', async () => {
        const { run, units } = aRunWithUnits(1);
        await store.createRun(run, units);
        await store.completeUnit(run.runId, 'u0000', result(1));

        expect(await store.finishRun(run.runId, aSummary(run, { status: 'succeeded' }))).toBe(true);

        expect(await store.getRun(run.runId)).toEqual({
          ...run,
          status: 'succeeded',
          finishedAt: '2026-03-01T10:05:00.000Z',
          doneUnits: 1,
        });
        expect(await store.finishRun(run.runId, aSummary(run, { status: 'failed' }))).toBe(false);
        expect((await store.getRun(run.runId))?.status).toBe('succeeded');
        expect(await store.getSummary(run.runId)).toEqual(aSummary(run, { status: 'succeeded' }));
      });

      it('lets exactly one of two racing finalizers make the move', async () => {
        const { run, units } = aRunWithUnits(0);
        await store.createRun(run, units);

        const moved = await Promise.all([
          store.finishRun(run.runId, aSummary(run, { status: 'succeeded' })),
          store.finishRun(
            run.runId,
            aSummary(run, { status: 'failed', finishedAt: '2026-03-01T10:06:00.000Z' }),
          ),
        ]);

        expect(moved.filter(Boolean)).toHaveLength(1);
        const finished = await store.getRun(run.runId);
        expect(finished?.status).toBe(moved[0] ? 'succeeded' : 'failed');
      });

      it('does not finish a run that does not exist', async () => {
        const run = aRun();
        expect(await store.finishRun(run.runId, aSummary(run))).toBe(false);
        expect(await store.getRun(run.runId)).toBeUndefined();
      });
    });
  });
}
