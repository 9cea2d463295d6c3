import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type {
  CapacityLease,
  CapacityLeases,
  ComponentLeaseState,
  NewLease,
} from '../../ports/capacity-leases.ts';

interface ComponentFile {
  lastReleasedAt?: string;
  followedRelease?: string;
  followedAt?: string;
  leases: Record<string, CapacityLease>;
}

/** A lock file older than this belongs to a process that died holding it. */
const STALE_LOCK_MS = 10_000;

/**
 * Capacity leases for one machine: one JSON file per component under `<dir>/`, beside the
 * local run store. Unlike the run store, every call reads the file afresh and changes it
 * under an exclusive lock file (`<file>.lock`, created with `wx`), because two
 * `sluice run` processes on the same home share the component: their read-change-write
 * steps never interleave, which gives the same conditional guarantees as the DynamoDB
 * adapter (the contract suite runs against both).
 */
export class LocalCapacityLeases implements CapacityLeases {
  constructor(readonly dir: string) {}

  private fileOf(component: string): string {
    if (!/^[A-Za-z0-9-]+$/.test(component)) throw new Error(`invalid component name "${component}"`);
    return path.join(this.dir, `${component}.json`);
  }

  private async read(component: string): Promise<ComponentFile> {
    try {
      return JSON.parse(await readFile(this.fileOf(component), 'utf8')) as ComponentFile;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { leases: {} };
      throw error;
    }
  }

  /** Runs `change` on the component's file under its lock and writes the result if it returns true. */
  private async update<T>(
    component: string,
    change: (file: ComponentFile) => { write: boolean; value: T },
  ): Promise<T> {
    const target = this.fileOf(component);
    await mkdir(this.dir, { recursive: true });
    const lock = `${target}.lock`;
    for (let attempt = 0; ; attempt++) {
      try {
        await (await open(lock, 'wx')).close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > STALE_LOCK_MS) await unlink(lock).catch(() => undefined);
        else await delay(Math.min(50, 2 + attempt));
      }
    }
    try {
      const file = await this.read(component);
      const { write, value } = change(file);
      if (write) {
        const temp = `${target}.${process.pid}.tmp`;
        await writeFile(temp, JSON.stringify(file));
        await rename(temp, target);
      }
      return value;
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  take(lease: NewLease): Promise<CapacityLease> {
    return this.update(lease.component, (file) => {
      const existing = file.leases[lease.runId];
      const { onDemand, ...always } = lease;
      const stored: CapacityLease = existing ?? { ...always, ...(onDemand ? { onDemand: true } : {}) };
      file.leases[lease.runId] = stored;
      const last = file.lastReleasedAt;
      const follows =
        last !== undefined &&
        last <= stored.takenAt &&
        (file.followedRelease === undefined || file.followedRelease < last);
      if (follows) {
        file.followedRelease = last;
        file.followedAt = stored.takenAt;
      }
      return { write: existing === undefined || follows, value: { ...stored } };
    });
  }

  async get(component: string, runId: string): Promise<CapacityLease | undefined> {
    const lease = (await this.read(component)).leases[runId];
    return lease === undefined ? undefined : { ...lease };
  }

  async list(component: string): Promise<CapacityLease[]> {
    return Object.values((await this.read(component)).leases)
      .sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0))
      .map((lease) => ({ ...lease }));
  }

  async markReady(component: string, runId: string, readyAt: string): Promise<void> {
    await this.update(component, (file) => {
      const lease = file.leases[runId];
      if (!lease || lease.readyAt !== undefined) return { write: false, value: undefined };
      file.leases[runId] = { ...lease, readyAt };
      return { write: true, value: undefined };
    });
  }

  markNeeded(component: string, runId: string, neededAt: string): Promise<boolean> {
    return this.update(component, (file) => {
      const lease = file.leases[runId];
      if (!lease?.onDemand || lease.neededAt !== undefined || lease.releasedAt !== undefined)
        return { write: false, value: false };
      file.leases[runId] = { ...lease, neededAt };
      return { write: true, value: true };
    });
  }

  markRaised(component: string, runId: string, neededAt: string, raisedAt: string): Promise<boolean> {
    return this.update(component, (file) => {
      const lease = file.leases[runId];
      if (
        !lease?.onDemand ||
        lease.neededAt !== neededAt ||
        lease.raisedAt !== undefined ||
        lease.releasedAt !== undefined
      )
        return { write: false, value: false };
      file.leases[runId] = { ...lease, raisedAt };
      return { write: true, value: true };
    });
  }

  async markProgress(component: string, runId: string, terminalUnits: number, at: string): Promise<void> {
    await this.update(component, (file) => {
      const lease = file.leases[runId];
      if (
        !lease ||
        lease.releasedAt !== undefined ||
        (lease.progressAt !== undefined && lease.progressAt > at)
      )
        return { write: false, value: undefined };
      file.leases[runId] = { ...lease, seenTerminalUnits: terminalUnits, progressAt: at };
      return { write: true, value: undefined };
    });
  }

  release(
    component: string,
    runId: string,
    releasedAt: string,
    by: 'finalize' | 'sweeper',
  ): Promise<CapacityLease | undefined> {
    return this.update(component, (file) => {
      const lease = file.leases[runId];
      if (!lease) return { write: false, value: undefined };
      let write = false;
      let stored = lease;
      if (lease.releasedAt === undefined) {
        stored = { ...lease, releasedAt, releasedBy: by };
        file.leases[runId] = stored;
        write = true;
      }
      const at = stored.releasedAt!;
      if (file.lastReleasedAt === undefined || file.lastReleasedAt < at) {
        file.lastReleasedAt = at;
        write = true;
      }
      return { write, value: { ...stored } };
    });
  }

  renew(released: CapacityLease, takenAt: string, priorSeconds: number): Promise<CapacityLease | undefined> {
    return this.update(released.component, (file) => {
      const lease = file.leases[released.runId];
      if (!lease) return { write: false, value: undefined };
      if (released.releasedAt === undefined || lease.releasedAt !== released.releasedAt)
        return { write: false, value: { ...lease } };
      const {
        releasedAt: _r,
        releasedBy: _b,
        readyAt: _ready,
        neededAt: _needed,
        raisedAt: _raised,
        seenTerminalUnits: _s,
        progressAt: _p,
        ...held
      } = lease;
      const renewed: CapacityLease = { ...held, takenAt, priorSeconds };
      file.leases[released.runId] = renewed;
      return { write: true, value: { ...renewed } };
    });
  }

  async forget(component: string, runId: string): Promise<void> {
    await this.update(component, (file) => {
      if (file.leases[runId]?.releasedAt === undefined) return { write: false, value: undefined };
      delete file.leases[runId];
      return { write: true, value: undefined };
    });
  }

  async state(component: string): Promise<ComponentLeaseState> {
    const { lastReleasedAt, followedRelease, followedAt } = await this.read(component);
    return {
      component,
      ...(lastReleasedAt === undefined ? {} : { lastReleasedAt }),
      ...(followedRelease === undefined || followedAt === undefined ? {} : { followedRelease, followedAt }),
    };
  }
}
