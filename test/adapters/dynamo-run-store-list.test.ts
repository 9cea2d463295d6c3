import { describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

/**
 * `sluice status --deployed` lists runs from the `byStartedAt` index, whose INCLUDE
 * projection leaves out what plan records for the run's work (stage, stages, workPool,
 * splitStack). The projection stays (a new one would be a new index); a list asked
 * `withPlan` reads those from each run item. dynalite keeps the projection as DynamoDB does.
 */

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-runs-list' });

describe('DynamoRunStore.listRuns on dynalite', () => {
  it('lists runs without the pool from the index, and with it (and the stage) when asked withPlan', async () => {
    const runs = new DynamoRunStore({ doc: dynalite.doc, tableName: await dynalite.newTable() });
    const planned = aRunWithUnits(1, {
      startedAt: '2026-12-07T20:00:00.000Z',
      pipeline: 'recommend',
      workPool: 'compute',
      splitStack: true,
      stage: 'similarity',
      stages: ['similarity'],
    });
    const older = aRunWithUnits(1, { startedAt: '2026-12-07T19:00:00.000Z' });
    await runs.createRun(planned.run, planned.units);
    await runs.createRun(older.run, older.units);

    // byStartedAt projects only what a plain list reads: the pool and the stage stay on the item.
    const [indexed] = await runs.listRuns(1);
    expect(indexed).toMatchObject({ runId: planned.run.runId, pipeline: 'recommend' });
    expect(indexed).not.toHaveProperty('workPool');
    expect(indexed).not.toHaveProperty('stage');

    expect(await runs.listRuns(5, { withPlan: true })).toEqual([planned.run, older.run]);
  });
});
