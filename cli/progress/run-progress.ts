/**
 * What a local run tells its progress display, as it happens: the phase it is in before
 * units run, the units it queues, and how each delivery of a unit ended. Implemented by
 * {@link RunProgress}; `runLocalPipeline` and `sluice redrive` call it.
 */
export interface RunProgressEvents {
  /** What the run is doing now (staging inputs, starting the model server, planning, finalizing). */
  phase(text: string): void;
  /** Units sent to the queue: a run's plan, a redrive, the scoring run a fit run starts. */
  queued(units: readonly QueuedUnit[]): void;
  /** A delivery of a unit ended. */
  unitSettled(unit: QueuedUnit, outcome: SettledUnit): void;
  /**
   * Live counters of the endpoint the units call, read at each refresh (the built-in model
   * server's): throttling shows while units run, not only when they finish.
   */
  endpointCounters(read: () => EndpointCounters): void;
}

/** What the endpoint has answered so far. */
export interface EndpointCounters {
  /** Invocations received. */
  readonly calls: number;
  /** Inputs (texts or rows) answered. */
  readonly inputs: number;
  /** Calls refused: simulated GPU full, or no capacity. */
  readonly throttled: number;
}

/** The part of a work unit progress needs. */
export interface QueuedUnit {
  readonly runId: string;
  readonly unitId: string;
  /** Estimated work (tokens or rows x features): the ETA weighs units by it. */
  readonly estCost: number;
  /** The run stage the unit belongs to, when the planner names one. */
  readonly stage?: string;
}

/** How a delivery ended (structurally, shared/work's UnitOutcome). */
export type SettledUnit =
  | {
      readonly status: 'succeeded';
      readonly counts: {
        readonly records: number;
        readonly realTokens: number;
        readonly throttled: number;
        readonly retries: number;
      };
    }
  | { readonly status: 'failed'; readonly reason: string }
  | { readonly status: 'deferred'; readonly delaySeconds: number }
  | { readonly status: 'duplicate' | 'unknown' };

/** Where a run stands at one moment; rates are per second of work since the first unit was queued. */
export interface ProgressSnapshot {
  readonly phase: string | undefined;
  /** Seconds in the current phase. */
  readonly phaseSeconds: number;
  /** The stage of the latest unit queued or finished, when units carry one. */
  readonly stage: string | undefined;
  readonly totalUnits: number;
  readonly doneUnits: number;
  readonly failedUnits: number;
  /** Deliveries sent back to wait for a cold endpoint. */
  readonly deferrals: number;
  readonly records: number;
  readonly tokens: number;
  /** Endpoint calls answered with a throttle, and calls retried (both from finished units). */
  readonly throttled: number;
  readonly retries: number;
  /** Seconds since the first unit was queued (until the last one settled, when none is left); 0 before. */
  readonly elapsedSeconds: number;
  readonly recordsPerSecond: number | undefined;
  readonly tokensPerSecond: number | undefined;
  /** Seconds left at the rate so far (by estimated cost); undefined until a unit has finished. */
  readonly etaSeconds: number | undefined;
  /** The endpoint's live counters since the first unit was queued, when it gives them. */
  readonly endpoint: (EndpointCounters & { readonly inputsPerSecond: number | undefined }) | undefined;
}

type UnitState = 'queued' | 'done' | 'failed';

/**
 * A run's progress, fed by {@link RunProgressEvents}. Units count once each, by run and
 * unit id, however often they are delivered; a unit first seen when it settles (a
 * checkpoint's remainder) joins the total then.
 */
export class RunProgress implements RunProgressEvents {
  private readonly units = new Map<string, { state: UnitState; estCost: number }>();
  private currentPhase: string | undefined;
  private phaseStartedMs = 0;
  private currentStage: string | undefined;
  private workStartedMs: number | undefined;
  /** When the last unit settled: rates and elapsed time stop there while no unit is left. */
  private lastSettledMs = 0;
  private doneCost = 0;
  private totalCost = 0;
  private readEndpoint: (() => EndpointCounters) | undefined;
  /** The endpoint's counters when work started: the run's share is what came after. */
  private endpointAtStart: EndpointCounters | undefined;
  private counts = { done: 0, failed: 0, deferrals: 0, records: 0, tokens: 0, throttled: 0, retries: 0 };

  constructor(private readonly now: () => number) {}

  phase(text: string): void {
    this.currentPhase = text;
    this.phaseStartedMs = this.now();
  }

  queued(units: readonly QueuedUnit[]): void {
    for (const unit of units) this.track(unit);
    if (units.length > 0) this.currentPhase = undefined;
  }

  endpointCounters(read: () => EndpointCounters): void {
    this.readEndpoint = read;
    if (this.workStartedMs !== undefined) this.endpointAtStart = read();
  }

  unitSettled(unit: QueuedUnit, outcome: SettledUnit): void {
    const entry = this.track(unit);
    if (outcome.status === 'deferred') this.counts.deferrals += 1;
    if (entry.state !== 'queued') return;
    if (outcome.status === 'succeeded' || outcome.status === 'failed') this.lastSettledMs = this.now();
    if (outcome.status === 'succeeded') {
      entry.state = 'done';
      this.counts.done += 1;
      this.doneCost += entry.estCost;
      this.counts.records += outcome.counts.records;
      this.counts.tokens += outcome.counts.realTokens;
      this.counts.throttled += outcome.counts.throttled;
      this.counts.retries += outcome.counts.retries;
    } else if (outcome.status === 'failed') {
      entry.state = 'failed';
      this.counts.failed += 1;
      // A failed unit's work is over too: the ETA is for what is left.
      this.doneCost += entry.estCost;
    }
  }

  snapshot(): ProgressSnapshot {
    const settled = this.counts.done + this.counts.failed;
    // Once every unit has settled, work time ends with the last one (finalize is not unit work).
    const end = settled > 0 && settled === this.units.size ? this.lastSettledMs : this.now();
    const elapsedSeconds = this.workStartedMs === undefined ? 0 : (end - this.workStartedMs) / 1000;
    const rate = (n: number) => (elapsedSeconds > 0 && n > 0 ? n / elapsedSeconds : undefined);
    const left = this.totalCost - this.doneCost;
    // By estimated cost, the measure units are cut by; by unit count when costs are unknown.
    const etaSeconds =
      settled === 0 || elapsedSeconds <= 0
        ? undefined
        : this.doneCost > 0
          ? (left / this.doneCost) * elapsedSeconds
          : ((this.units.size - settled) / settled) * elapsedSeconds;
    return {
      phase: this.currentPhase,
      phaseSeconds: this.currentPhase === undefined ? 0 : (this.now() - this.phaseStartedMs) / 1000,
      stage: this.currentStage,
      totalUnits: this.units.size,
      doneUnits: this.counts.done,
      failedUnits: this.counts.failed,
      deferrals: this.counts.deferrals,
      records: this.counts.records,
      tokens: this.counts.tokens,
      throttled: this.counts.throttled,
      retries: this.counts.retries,
      elapsedSeconds,
      recordsPerSecond: rate(this.counts.records),
      tokensPerSecond: rate(this.counts.tokens),
      etaSeconds,
      endpoint: this.endpointSnapshot(elapsedSeconds),
    };
  }

  private endpointSnapshot(elapsedSeconds: number): ProgressSnapshot['endpoint'] {
    if (this.readEndpoint === undefined || this.workStartedMs === undefined) return undefined;
    const now = this.readEndpoint();
    const start = this.endpointAtStart ?? { calls: 0, inputs: 0, throttled: 0 };
    const inputs = now.inputs - start.inputs;
    return {
      calls: now.calls - start.calls,
      inputs,
      throttled: now.throttled - start.throttled,
      inputsPerSecond: elapsedSeconds > 0 && inputs > 0 ? inputs / elapsedSeconds : undefined,
    };
  }

  private track(unit: QueuedUnit): { state: UnitState; estCost: number } {
    if (this.workStartedMs === undefined) {
      this.workStartedMs = this.now();
      this.endpointAtStart = this.readEndpoint?.();
    }
    if (unit.stage !== undefined) this.currentStage = unit.stage;
    const key = `${unit.runId}/${unit.unitId}`;
    let entry = this.units.get(key);
    if (!entry) {
      const estCost = Number.isFinite(unit.estCost) && unit.estCost > 0 ? unit.estCost : 0;
      entry = { state: 'queued', estCost };
      this.units.set(key, entry);
      this.totalCost += estCost;
    }
    return entry;
  }
}
