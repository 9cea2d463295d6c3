import ora, { type Ora } from 'ora';
import { duration, formatProgress } from './format-progress.ts';
import {
  type EndpointCounters,
  type QueuedUnit,
  RunProgress,
  type RunProgressEvents,
  type SettledUnit,
} from './run-progress.ts';

/** A terminal stream a spinner can draw on (process.stderr when it is a TTY). */
export type TerminalStream = NodeJS.WritableStream & { readonly isTTY?: boolean };

/** Where progress goes: a spinner on a terminal, or plain lines (a pipe, a log file, `--json`). */
export type ProgressOutput =
  | { readonly kind: 'terminal'; readonly stream: TerminalStream }
  | { readonly kind: 'lines'; readonly writeLine: (line: string) => void };

export interface ProgressTimers {
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface ProgressReporterOptions {
  readonly output: ProgressOutput;
  /** @default Date.now */
  readonly now?: () => number;
  /** @default the global setInterval and clearInterval (unref'd: progress never keeps a process alive) */
  readonly timers?: ProgressTimers;
  /** Plain lines: one every this many ms while units run, plus one at the end. @default 5000 */
  readonly plainEveryMs?: number;
  /** The spinner's text is refreshed this often (rates, ETA). @default 1000 */
  readonly terminalEveryMs?: number;
  /** Makes the spinner. @default ora on the terminal stream, stdin left alone */
  readonly spinner?: (stream: TerminalStream) => Ora;
}

const realTimers: ProgressTimers = {
  setInterval: (callback, ms) => setInterval(callback, ms).unref(),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

/**
 * Shows a run's progress while it goes: on a terminal an ora spinner whose text is the
 * phase, then units done/total, records/s, tokens/s, ETA and throttling. Elsewhere plain
 * lines every `plainEveryMs`: the phase and how long it has lasted, or the progress while
 * units run, and the progress once at the end. A phase is not printed when it starts: a
 * command that stops at once with a usage or config error prints its one line only.
 * Log lines (`log`) go to the same place, above the spinner.
 */
export class ProgressReporter implements RunProgressEvents {
  private readonly progress: RunProgress;
  private readonly timers: ProgressTimers;
  private spinner: Ora | undefined;
  private timer: unknown;
  private running = false;

  constructor(private readonly options: ProgressReporterOptions) {
    this.progress = new RunProgress(options.now ?? Date.now);
    this.timers = options.timers ?? realTimers;
  }

  /** Starts showing progress, with what the run does first. */
  start(phase: string): void {
    if (this.running) return;
    this.running = true;
    this.progress.phase(phase);
    const { output } = this.options;
    if (output.kind === 'terminal') {
      const make =
        this.options.spinner ??
        ((stream: TerminalStream) =>
          ora({ stream: stream as NodeJS.WriteStream, isEnabled: true, discardStdin: false }));
      this.spinner = make(output.stream);
      this.spinner.start(phase);
      this.timer = this.timers.setInterval(() => this.refresh(), this.options.terminalEveryMs ?? 1000);
    } else {
      this.timer = this.timers.setInterval(() => this.tick(), this.options.plainEveryMs ?? 5000);
    }
  }

  /** A line for the person watching (stderr), printed above the spinner. */
  log(line: string): void {
    const { output } = this.options;
    if (output.kind === 'lines') output.writeLine(line);
    // While the spinner spins, ora moves it below lines written to its stream.
    else output.stream.write(`${line}\n`);
  }

  phase(text: string): void {
    this.progress.phase(text);
    this.refresh();
  }

  queued(units: readonly QueuedUnit[]): void {
    this.progress.queued(units);
    this.refresh();
  }

  unitSettled(unit: QueuedUnit, outcome: SettledUnit): void {
    this.progress.unitSettled(unit, outcome);
    this.refresh();
  }

  endpointCounters(read: () => EndpointCounters): void {
    this.progress.endpointCounters(read);
  }

  /** The periodic plain line while units run (called by the timer; tests call it after moving the clock). */
  tick(): void {
    const { output } = this.options;
    const now = this.progress.snapshot();
    if (output.kind === 'terminal') this.refresh();
    else if (now.phase !== undefined) output.writeLine(`${now.phase} (${duration(now.phaseSeconds)})`);
    else if (now.totalUnits > 0) output.writeLine(`progress: ${formatProgress(now)}`);
  }

  /** Stops the spinner or the periodic lines; the last progress line stays (when units ran). */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.timers.clearInterval(this.timer);
    this.spinner?.stop();
    this.spinner = undefined;
    const last = this.progress.snapshot();
    if (last.totalUnits > 0) this.log(`progress: ${formatProgress(last, { final: true })}`);
  }

  /** The spinner's text: the phase until units are queued, then the progress line. */
  private refresh(): void {
    if (!this.spinner) return;
    const now = this.progress.snapshot();
    this.spinner.text = now.phase ?? formatProgress(now);
  }
}
