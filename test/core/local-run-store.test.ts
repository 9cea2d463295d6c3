import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { runStoreContract } from '../contract/run-store-contract.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

runStoreContract('LocalRunStore', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-runs-'));
  return { store: new LocalRunStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('LocalRunStore on disk', () => {
  it('reads back what another process wrote', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-runs-'));
    const { run, units } = aRunWithUnits(3);
    await new LocalRunStore(dir).createRun(run, units);
    const reopened = new LocalRunStore(dir);
    expect((await reopened.getRun(run.runId))?.totalUnits).toBe(3);
    expect(await reopened.listUnits(run.runId)).toHaveLength(3);
    await rm(dir, { recursive: true, force: true });
  });
});
