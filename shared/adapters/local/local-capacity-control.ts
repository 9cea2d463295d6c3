import type { CapacityControl, ComponentCopies, SetCopiesOutcome } from '../../ports/capacity-control.ts';

export interface LocalCapacityControlOptions {
  /** How long a new copy takes to serve, ms (0: at once). @default 0 */
  readonly warmupMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

interface Component {
  desired: number;
  /** Copies serving, and when the ones asked for beyond them will serve. */
  serving: number;
  readyAt: number;
}

/**
 * (secondary adapter) An in-memory stand-in for the SageMaker control plane, for a local
 * run whose model server does not emulate it (`--endpoint-url` to a TEI container) and
 * for tests of the use cases: every component exists, starts at 0 copies, and copies
 * asked for serve after `warmupMs`; fewer copies take effect at once.
 */
export class LocalCapacityControl implements CapacityControl {
  private readonly components = new Map<string, Component>();
  private readonly warmupMs: number;
  private readonly now: () => number;
  /** Every setCopies call, in order (tests read it). */
  readonly requests: { component: string; copies: number }[] = [];

  constructor(options: LocalCapacityControlOptions = {}) {
    this.warmupMs = options.warmupMs ?? 0;
    this.now = options.now ?? Date.now;
  }

  private componentOf(name: string): Component {
    let component = this.components.get(name);
    if (!component) {
      component = { desired: 0, serving: 0, readyAt: 0 };
      this.components.set(name, component);
    }
    if (component.serving < component.desired && this.now() >= component.readyAt)
      component.serving = component.desired;
    return component;
  }

  async describe(componentName: string): Promise<ComponentCopies> {
    const c = this.componentOf(componentName);
    return {
      desiredCopies: c.desired,
      currentCopies: c.serving,
      status: c.serving === c.desired ? 'InService' : 'Updating',
    };
  }

  async setCopies(componentName: string, copies: number): Promise<SetCopiesOutcome> {
    const c = this.componentOf(componentName);
    this.requests.push({ component: componentName, copies });
    c.desired = copies;
    if (copies <= c.serving) c.serving = copies;
    else c.readyAt = this.now() + this.warmupMs;
    if (this.warmupMs === 0) c.serving = copies;
    return { applied: true };
  }
}
