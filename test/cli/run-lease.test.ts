import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { acquireRunLease, RunLeaseHeld } from '../../cli/run-lease.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { aRunWithUnits } from '../support/run-fixtures.ts';

const RUN_ID = 'r-20261206T230000Z-abc123';

/** The pid of a process that has exited: what a lease of a process killed with -9 names. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

describe('acquireRunLease', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(path.join(tmpdir(), 'sluice-lease-'));
  });
  afterEach(() => rm(home, { recursive: true, force: true }));

  const lockFile = () => path.join(home, 'state', 'leases', `${RUN_ID}.lock`);
  const writeHolder = async (holder: object) => {
    await mkdir(path.dirname(lockFile()), { recursive: true });
    await writeFile(lockFile(), JSON.stringify(holder));
  };

  it('gives the run to one holder at a time and frees it on release', async () => {
    const lease = await acquireRunLease(home, RUN_ID);
    await expect(acquireRunLease(home, RUN_ID)).rejects.toThrow(RunLeaseHeld);
    await lease.release();
    const again = await acquireRunLease(home, RUN_ID);
    await again.release();
    expect(await readdir(path.dirname(lockFile()))).toEqual([]);
  });

  it('refuses a lease held by a live process, naming it', async () => {
    await writeHolder({ pid: process.pid, host: hostname(), since: '2026-12-06T23:00:00Z', token: 'other' });
    await expect(acquireRunLease(home, RUN_ID)).rejects.toThrow(
      `run ${RUN_ID} is still being worked on by process ${process.pid}`,
    );
  });

  it('takes over the lease of a process that is gone (kill -9) or a torn lease file', async () => {
    await writeHolder({ pid: deadPid(), host: hostname(), since: '2026-12-06T23:00:00Z', token: 'gone' });
    const lease = await acquireRunLease(home, RUN_ID);
    await lease.release();
    await mkdir(path.dirname(lockFile()), { recursive: true });
    await writeFile(lockFile(), '{"pid": 12');
    await (await acquireRunLease(home, RUN_ID)).release();
  });

  it('refuses a lease held on another host, saying which file to delete', async () => {
    await writeHolder({ pid: 1, host: 'elsewhere', since: '2026-12-06T23:00:00Z', token: 'x' });
    await expect(acquireRunLease(home, RUN_ID)).rejects.toThrow(`delete ${lockFile()}`);
  });

  it('makes sluice redrive --resume of a run still going exit 2 with one line, leaving the run alone', async () => {
    const { run, units } = aRunWithUnits(2, { runId: RUN_ID, pipeline: 'docs' });
    await new LocalRunStore(path.join(home, 'state', 'runs')).createRun(run, units);
    const lease = await acquireRunLease(home, RUN_ID);
    try {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['redrive', RUN_ID, '--resume', '--home', home], {
        out: (l) => out.push(l),
        err: (l) => err.push(l),
      });
      expect(code).toBe(2);
      expect(out).toEqual([]);
      expect(err).toHaveLength(1);
      expect(err[0]).toContain(`still being worked on by process ${process.pid}`);
      expect((await new LocalRunStore(path.join(home, 'state', 'runs')).getRun(RUN_ID))?.status).toBe(
        'running',
      );
    } finally {
      await lease.release();
    }
  });
});
