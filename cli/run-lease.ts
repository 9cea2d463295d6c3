import { randomUUID } from 'node:crypto';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { UsageError } from './usage.ts';

/** What a lease file holds: who works on the run. */
interface LeaseHolder {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
  readonly token: string;
}

/** A process works on the run already (`sluice run` still going, or another redrive): exit 2. */
export class RunLeaseHeld extends UsageError {}

/** The lease a process holds on one local run while it works on it. */
export interface RunLease {
  release(): Promise<void>;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(file: string): Promise<LeaseHolder | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as LeaseHolder;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A torn or empty file: its writer died while writing it.
    return { pid: 0, host: hostname(), since: '', token: '' };
  }
}

/**
 * Takes the lease on a local run (`<home>/state/leases/<runId>.lock`, created
 * exclusively), so that one process at a time plans, works or finalizes it: a local run
 * store keeps its conditional transitions atomic within one process only, and a
 * `sluice redrive --resume` beside the `sluice run` still working on the run would
 * finalize it a second time. A lease whose process is gone (killed) is taken over; one
 * held on another host, or by a live process here, is refused with the holder named.
 */
export async function acquireRunLease(homeDir: string, runId: string, hint = ''): Promise<RunLease> {
  const dir = path.join(homeDir, 'state', 'leases');
  const file = path.join(dir, `${runId}.lock`);
  await mkdir(dir, { recursive: true });
  const me: LeaseHolder = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    token: randomUUID(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(file, JSON.stringify(me), { flag: 'wx' });
      return {
        release: async () => {
          if ((await readHolder(file))?.token === me.token) await unlink(file).catch(() => undefined);
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = await readHolder(file);
    // A torn file may be one being written right now: look once more before calling it stale.
    if (holder?.token === '') {
      await new Promise((resolve) => setTimeout(resolve, 100));
      holder = await readHolder(file);
    }
    if (holder === undefined) continue;
    if (holder.host !== me.host)
      throw new RunLeaseHeld(
        `run ${runId} is held by process ${holder.pid} on ${holder.host} since ${holder.since}; if it is gone, delete ${file}`,
      );
    if (isAlive(holder.pid))
      throw new RunLeaseHeld(
        `run ${runId} is still being worked on by process ${holder.pid} (since ${holder.since}); wait for it to finish${hint}`,
      );
    // The holder died (kill -9, a crash): its lease is stale.
    await unlink(file).catch(() => undefined);
  }
  throw new RunLeaseHeld(
    `run ${runId}: could not take its lease ${file} (another process took it meanwhile)`,
  );
}
