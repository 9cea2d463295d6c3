/**
 * Step-by-step interleaving of concurrent capacity writers (plans, the sweeper, finalize)
 * for tests, without timers: each writer is an {@link Actor} whose port calls park until the
 * test lets them run, one call at a time, so a test writes the interleaving it means.
 */
export class Actor {
  private parked: { readonly call: string; readonly go: () => void } | undefined;
  private wake: (() => void) | undefined;
  private settled = false;
  private outcome: Promise<unknown> = Promise.resolve();
  /** Every port call the actor made, in order (those it is parked at included). */
  readonly calls: string[] = [];

  constructor(readonly name: string) {}

  /** Starts the actor's work; its gated port calls park until stepped. */
  start<T>(work: () => Promise<T>): Promise<T> {
    const running = work();
    this.outcome = running;
    const done = () => {
      this.settled = true;
      this.notify();
    };
    running.then(done, done);
    return running;
  }

  /** The port side: waits at `call` until the test steps it. */
  park(call: string): Promise<void> {
    this.calls.push(call);
    return new Promise((go) => {
      this.parked = { call, go };
      this.notify();
    });
  }

  /** The call the actor is parked at now; undefined once it has finished. */
  async at(): Promise<string | undefined> {
    await this.idle();
    return this.parked?.call;
  }

  /** Lets the parked call (which must be `expected`) run, and waits for the next park or the end. */
  async step(expected: string): Promise<void> {
    await this.idle();
    const parked = this.parked;
    if (parked === undefined) throw new Error(`${this.name} has finished; expected it at ${expected}`);
    if (parked.call !== expected) throw new Error(`${this.name} is at ${parked.call}, not at ${expected}`);
    this.parked = undefined;
    parked.go();
    await this.idle();
  }

  /** Steps every call before `call` and parks at it (without making it). */
  async runUntil(call: string): Promise<void> {
    for (;;) {
      const now = await this.at();
      if (now === undefined) throw new Error(`${this.name} finished without reaching ${call}`);
      if (now === call) return;
      await this.step(now);
    }
  }

  /** Steps every call until the actor finishes; returns what it returned. */
  async finish<T>(): Promise<T> {
    for (let now = await this.at(); now !== undefined; now = await this.at()) await this.step(now);
    return (await this.outcome) as T;
  }

  /** Whether the actor has finished. */
  async done(): Promise<boolean> {
    return (await this.at()) === undefined;
  }

  private idle(): Promise<void> {
    if (this.parked !== undefined || this.settled) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * The port as `actor` sees it: every method call parks (named by the method) until the
 * test steps it, then runs on the shared port. Other properties pass through.
 */
export function gated<T extends object>(actor: Actor, port: T): T {
  return new Proxy(port, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await actor.park(String(property));
        return value.apply(target, args);
      };
    },
  });
}
