import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../shared/adapters/aws/dynamo-run-store.ts';
import { runStoreContract } from '../contract/run-store-contract.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { aRunWithUnits, aSummary, someCounts } from '../support/run-fixtures.ts';

// One dynalite for the file; a fresh table per test keeps tests independent.
const dynalite = useDynaliteTables();

runStoreContract('DynamoRunStore on dynalite', async () => {
  const tableName = await dynalite.newTable();
  return { store: new DynamoRunStore({ doc: dynalite.doc, tableName }), cleanup: async () => {} };
});

/**
 * A document client that fails (as a Lambda that dies would) on the first update whose
 * expression contains `marker`, and passes everything else to dynalite.
 */
function crashingOnce(marker: string): DynamoDBDocumentClient {
  let crashed = false;
  return new Proxy(dynalite.doc, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver);
      return (command: unknown) => {
        if (
          !crashed &&
          command instanceof UpdateCommand &&
          command.input.UpdateExpression?.includes(marker)
        ) {
          crashed = true;
          return Promise.reject(Object.assign(new Error('Lambda timed out'), { name: 'TimeoutError' }));
        }
        return target.send(command as UpdateCommand);
      };
    },
  });
}

describe('DynamoRunStore on dynalite: a completion interrupted halfway', () => {
  const result = { counts: someCounts({ records: 3 }), actualCost: 9, outputKeys: ['results/x.parquet'] };

  it('is counted by the redelivery when it stopped after marking the unit', async () => {
    const tableName = await dynalite.newTable();
    const { run, units } = aRunWithUnits(2);
    const healthy = new DynamoRunStore({ doc: dynalite.doc, tableName });
    await healthy.createRun(run, units);
    await healthy.completeUnit(run.runId, 'u0000', result);

    const crashing = new DynamoRunStore({ doc: crashingOnce('ADD terminalUnits'), tableName });
    await expect(crashing.completeUnit(run.runId, 'u0001', result)).rejects.toThrow('Lambda timed out');
    expect(await healthy.getRun(run.runId)).toMatchObject({ doneUnits: 1 });

    expect(await healthy.completeUnit(run.runId, 'u0001', result)).toEqual({
      recorded: false,
      finishedRun: true,
      unitStatus: 'succeeded',
    });
    expect(await healthy.getRun(run.runId)).toMatchObject({ doneUnits: 2, failedUnits: 0 });
    expect(await healthy.completeUnit(run.runId, 'u0001', result)).toEqual({
      recorded: false,
      finishedRun: false,
      unitStatus: 'succeeded',
    });
  });

  it('still finishes the run on redelivery when it stopped before claiming the finish', async () => {
    const tableName = await dynalite.newTable();
    const { run, units } = aRunWithUnits(1);
    const healthy = new DynamoRunStore({ doc: dynalite.doc, tableName });
    await healthy.createRun(run, units);

    const crashing = new DynamoRunStore({ doc: crashingOnce('finalizeClaimedBy'), tableName });
    await expect(crashing.failUnit(run.runId, 'u0000', 'dead-lettered')).rejects.toThrow('Lambda timed out');

    expect(await healthy.failUnit(run.runId, 'u0000', 'dead-lettered')).toEqual({
      recorded: false,
      finishedRun: true,
      unitStatus: 'failed',
    });
    expect(await healthy.getRun(run.runId)).toMatchObject({ doneUnits: 0, failedUnits: 1 });
  });
});

describe('DynamoRunStore on dynalite: a redrive interrupted halfway', () => {
  const result = { counts: someCounts({ records: 3 }), actualCost: 9, outputKeys: ['results/x.parquet'] };

  async function aFailedRun(tableName: string) {
    const { run, units } = aRunWithUnits(3);
    const healthy = new DynamoRunStore({ doc: dynalite.doc, tableName });
    await healthy.createRun(run, units);
    await healthy.completeUnit(run.runId, 'u0000', result);
    await healthy.failUnit(run.runId, 'u0001', 'dead-lettered');
    await healthy.failUnit(run.runId, 'u0002', 'dead-lettered');
    expect(await healthy.finishRun(run.runId, aSummary(run, { status: 'failed' }))).toBe(true);
    return { run, healthy };
  }

  it.each([
    ['after resetting a unit, before uncounting it', 'DELETE countedUnitIds'],
    ['after every unit, before moving the run', 'SET #status = :running'],
  ])('is completed by the next call when it stopped %s', async (_when, marker) => {
    const tableName = await dynalite.newTable();
    const { run, healthy } = await aFailedRun(tableName);

    const crashing = new DynamoRunStore({ doc: crashingOnce(marker), tableName });
    await expect(crashing.reopenFailedRun(run.runId)).rejects.toThrow('Lambda timed out');
    expect((await healthy.getRun(run.runId))?.status).toBe('failed');

    const reopening = await healthy.reopenFailedRun(run.runId);
    expect(reopening.reopened).toBe(true);
    expect(reopening.units.map((u) => u.unitId)).toEqual(['u0001', 'u0002']);
    expect(await healthy.getRun(run.runId)).toMatchObject({
      status: 'running',
      doneUnits: 1,
      failedUnits: 0,
    });
    // The counts are right again: the redriven units finish the run exactly once.
    expect((await healthy.completeUnit(run.runId, 'u0001', result)).finishedRun).toBe(false);
    expect((await healthy.completeUnit(run.runId, 'u0002', result)).finishedRun).toBe(true);
  });
});
