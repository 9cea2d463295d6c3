import type { LocalHome } from '../../../cli/home.ts';
import type { ObjectWrite } from '../../../shared/ports/object-store.ts';

/** What a killed process's ports throw from the kill on. */
export class ProcessKilled extends Error {
  override readonly name = 'ProcessKilled';
}

/**
 * The ports of a local home whose process is killed at its `killAt`-th write (1-based) once
 * finalize began (recognised by its first call, the run's unit list): that write and every
 * call after it fail, so nothing from that point on lands, as with kill -9. The writes are
 * object puts (and streamed writes' finish), chunk index and segment records, and run store
 * moves. With `killAt` infinite nothing is killed and `writes` lists every write in order:
 * the kill points of a test.
 *
 * A killed process's open files are closed by the OS, not by the process: so at the kill
 * the streamed writes still open are aborted here (their file handles closed, nothing made
 * visible), rather than left for the garbage collector to close ("Closing file descriptor
 * N on garbage collection"). Aborting also deletes their temporary files, which a kill -9
 * would leave behind; no reader sees those either way (`.tmp` files are not objects, and
 * the next write of a key takes a temporary file of its own).
 */
export class KillSwitch {
  armed = false;
  killed = false;
  readonly writes: string[] = [];
  /** Streamed writes opened and neither finished nor aborted: what the kill closes. */
  private readonly openWrites = new Set<ObjectWrite>();
  constructor(readonly killAt: number) {}

  private async write<T>(label: string, perform: () => Promise<T>): Promise<T> {
    if (this.killed) throw new ProcessKilled(`killed before ${label}`);
    if (this.armed) {
      this.writes.push(label);
      if (this.writes.length === this.killAt) {
        this.killed = true;
        await this.closeOpenWrites();
        throw new ProcessKilled(`killed at ${label}`);
      }
    }
    return perform();
  }

  /** What the OS does with a killed process's files: closes them; none becomes an object. */
  private async closeOpenWrites(): Promise<void> {
    const open = [...this.openWrites];
    this.openWrites.clear();
    await Promise.all(open.map((write) => write.abort().catch(() => undefined)));
  }

  private async read<T>(perform: () => Promise<T>): Promise<T> {
    if (this.killed) throw new ProcessKilled('killed');
    return perform();
  }

  /** Every method of `target`: those named in `writes` count as writes (labelled by `label`), the rest as reads. */
  private wrap<T extends object>(target: T, writes: Record<string, (args: unknown[]) => string>): T {
    return new Proxy(target, {
      get: (object, property, receiver) => {
        const value = Reflect.get(object, property, receiver);
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === 'listUnits')
          return (...args: unknown[]) => {
            this.armed = true;
            return this.read(async () => method.apply(object, args));
          };
        if (property === 'openWrite')
          return async (...args: unknown[]) => {
            const open = (await this.read(async () => method.apply(object, args))) as ObjectWrite;
            this.openWrites.add(open);
            // Opened while the kill happened: the process is gone before it could use it.
            if (this.killed) {
              await this.closeOpenWrites();
              throw new ProcessKilled('killed');
            }
            const settle = <T>(result: Promise<T>) => result.finally(() => this.openWrites.delete(open));
            return {
              write: (bytes: Uint8Array) => this.read(() => open.write(bytes)),
              finish: () => this.write(`put ${String(args[0])}`, () => settle(open.finish())),
              abort: () => settle(open.abort()),
            } satisfies ObjectWrite;
          };
        const label = writes[property];
        if (label)
          return (...args: unknown[]) => this.write(label(args), async () => method.apply(object, args));
        // Synchronous helpers (pathOf) stay as they are; async reads fail once killed.
        return (...args: unknown[]) => {
          if (this.killed) throw new ProcessKilled('killed');
          return method.apply(object, args);
        };
      },
    });
  }

  /** The home's ports as the process that is killed uses them. */
  home(base: LocalHome): LocalHome {
    return {
      ...base,
      store: this.wrap(base.store, { put: (a) => `put ${String(a[0])}` }),
      runs: this.wrap(base.runs, {
        finishRun: () => 'run store: finishRun',
        createRun: () => 'run store: createRun',
        completeUnit: () => 'run store: completeUnit',
        failUnit: () => 'run store: failUnit',
        startStage: () => 'run store: startStage',
        addStageUnits: () => 'run store: addStageUnits',
      }),
      chunkIndex: this.wrap(base.chunkIndex, { record: () => 'chunk index: record' }),
      segmentStats: this.wrap(base.segmentStats, { recordSegments: () => 'segment stats: record' }),
    };
  }
}
