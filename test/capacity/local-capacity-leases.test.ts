import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalCapacityLeases } from '../../shared/adapters/local/local-capacity-leases.ts';
import { capacityLeasesContract } from './capacity-leases-contract.ts';

capacityLeasesContract('LocalCapacityLeases', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-leases-'));
  return {
    leases: new LocalCapacityLeases(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('LocalCapacityLeases', () => {
  it('shares leases between two instances on one folder (two sluice processes on one home)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-leases-'));
    try {
      const a = new LocalCapacityLeases(dir);
      const b = new LocalCapacityLeases(dir);
      const runs = Array.from({ length: 12 }, (_, i) => `r-${i}`);
      await Promise.all(
        runs.map((runId, i) =>
          (i % 2 ? a : b).take({ runId, component: 'm', copies: 1, takenAt: '2026-03-01T10:00:00.000Z' }),
        ),
      );
      expect((await a.list('m')).map((l) => l.runId).sort()).toEqual([...runs].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a component name that is not a SageMaker name', async () => {
    const leases = new LocalCapacityLeases(tmpdir());
    await expect(leases.list('../etc')).rejects.toThrow(/invalid component name/);
  });
});
