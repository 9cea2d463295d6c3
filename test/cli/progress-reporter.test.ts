import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { processIo } from '../../cli/commands/io.ts';
import { formatProgress } from '../../cli/progress/format-progress.ts';
import { progressOutputFor } from '../../cli/progress/progress-output.ts';
import { ProgressReporter, type ProgressTimers } from '../../cli/progress/progress-reporter.ts';
import { type QueuedUnit, RunProgress, type SettledUnit } from '../../cli/progress/run-progress.ts';

/** A clock the test moves by hand. */
function fakeClock(startMs = 1_000_000) {
  let now = startMs;
  return { now: () => now, advance: (seconds: number) => (now += seconds * 1000) };
}

/** Timers that never fire by themselves: the test fires them. */
function fakeTimers() {
  const callbacks = new Map<number, { callback: () => void; ms: number }>();
  let next = 0;
  const timers: ProgressTimers = {
    setInterval: (callback, ms) => {
      callbacks.set(++next, { callback, ms });
      return next;
    },
    clearInterval: (handle) => callbacks.delete(handle as number),
  };
  return {
    timers,
    fire: () => {
      for (const t of callbacks.values()) t.callback();
    },
    callbacks,
  };
}

/** A stream that says it is a terminal and keeps what is written to it (cursor moves included). */
class FakeTerminal extends Writable {
  readonly isTTY = true;
  columns = 200;
  readonly rows = 50;
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
  cursorTo(): boolean {
    return true;
  }
  moveCursor(): boolean {
    return true;
  }
  clearLine(): boolean {
    this.text += '<clear>';
    return true;
  }
}

const unit = (unitId: string, estCost: number, stage?: string): QueuedUnit => ({
  runId: 'r-1',
  unitId,
  estCost,
  ...(stage === undefined ? {} : { stage }),
});
const succeeded = (records: number, realTokens: number, throttled = 0, retries = 0): SettledUnit => ({
  status: 'succeeded',
  counts: { records, realTokens, throttled, retries },
});

describe('RunProgress', () => {
  it('gives rates per second of work and an ETA weighed by estimated cost', () => {
    const clock = fakeClock();
    const progress = new RunProgress(clock.now);
    progress.queued([unit('u0', 100), unit('u1', 100), unit('u2', 200)]);
    expect(progress.snapshot().etaSeconds).toBeUndefined();
    clock.advance(10);
    progress.unitSettled(unit('u0', 100), succeeded(500, 20_000, 3, 2));
    const p = progress.snapshot();
    expect(p).toMatchObject({ totalUnits: 3, doneUnits: 1, records: 500, throttled: 3, retries: 2 });
    expect(p.recordsPerSecond).toBe(50);
    expect(p.tokensPerSecond).toBe(2000);
    // 100 of 400 cost units in 10 s: 300 left take 30 s.
    expect(p.etaSeconds).toBe(30);
  });

  it('counts a unit once however often it is delivered, and a deferral only as a wait', () => {
    const clock = fakeClock();
    const progress = new RunProgress(clock.now);
    progress.queued([unit('u0', 1), unit('u1', 1)]);
    progress.unitSettled(unit('u0', 1), { status: 'deferred', delaySeconds: 30 });
    progress.unitSettled(unit('u0', 1), succeeded(10, 0));
    progress.unitSettled(unit('u0', 1), { status: 'duplicate' });
    progress.unitSettled(unit('u0', 1), succeeded(10, 0));
    progress.unitSettled(unit('u1', 1), { status: 'failed', reason: 'endpoint gone' });
    expect(progress.snapshot()).toMatchObject({
      totalUnits: 2,
      doneUnits: 1,
      failedUnits: 1,
      deferrals: 1,
      records: 10,
    });
  });

  it('adds units first seen when they settle, and shows the stage of the latest unit', () => {
    const progress = new RunProgress(fakeClock().now);
    progress.queued([unit('u0', 1, 'fit')]);
    progress.unitSettled(unit('u0', 1, 'fit'), succeeded(5, 0));
    progress.queued([unit('u1', 1, 'score'), unit('u2', 1, 'score')]);
    progress.unitSettled(unit('u9', 1, 'score'), succeeded(5, 0));
    expect(progress.snapshot()).toMatchObject({ totalUnits: 4, doneUnits: 2, stage: 'score' });
  });
});

describe('RunProgress with the endpoint counters', () => {
  it('shows the endpoint live while units run, counting only calls made since work started', () => {
    const clock = fakeClock();
    let counters = { calls: 2, inputs: 2, throttled: 0 }; // the warm-up ping before the run
    const progress = new RunProgress(clock.now);
    progress.endpointCounters(() => counters);
    expect(progress.snapshot().endpoint).toBeUndefined();
    progress.queued([unit('u0', 1, 'embed')]);
    counters = { calls: 42, inputs: 1202, throttled: 5 };
    clock.advance(10);
    const running = progress.snapshot();
    expect(running.endpoint).toEqual({ calls: 40, inputs: 1200, throttled: 5, inputsPerSecond: 120 });
    expect(formatProgress(running)).toBe(
      'embed: 0/1 units, 0 records, 10s so far, ETA after the first unit, endpoint 40 calls, 120 inputs/s, 5 throttled',
    );
    // At the end, what the client saw (throttles and retries of finished units) is the record.
    progress.unitSettled(unit('u0', 1, 'embed'), succeeded(300, 9000, 6, 6));
    expect(formatProgress(progress.snapshot(), { final: true })).toBe(
      'embed: 1/1 units, 300 records, 30 records/s, 900 tokens/s, in 10s, 6 throttled, 6 retries',
    );
  });
});

describe('formatProgress', () => {
  it('says units, records, rates, ETA and throttling in one line', () => {
    const clock = fakeClock();
    const progress = new RunProgress(clock.now);
    progress.queued([unit('u0', 1, 'embed'), unit('u1', 1, 'embed')]);
    clock.advance(4);
    progress.unitSettled(unit('u0', 1, 'embed'), succeeded(1200, 48_000, 7, 9));
    expect(formatProgress(progress.snapshot())).toBe(
      'embed: 1/2 units, 1.20k records, 300 records/s, 12.0k tokens/s, 4s so far, ETA 4s, 7 throttled, 9 retries',
    );
    expect(formatProgress(progress.snapshot(), { final: true })).toBe(
      'embed: 1/2 units, 1.20k records, 300 records/s, 12.0k tokens/s, in 4s, 7 throttled, 9 retries',
    );
  });
});

describe('ProgressReporter', () => {
  it('without a terminal prints on each tick the phase and its time, or the progress while units run, and one line at the end', () => {
    const clock = fakeClock();
    const { timers, fire, callbacks } = fakeTimers();
    const lines: string[] = [];
    const reporter = new ProgressReporter({
      output: { kind: 'lines', writeLine: (l) => lines.push(l) },
      now: clock.now,
      timers,
    });
    reporter.start('reading in.jsonl');
    expect([...callbacks.values()].map((t) => t.ms)).toEqual([5000]);
    // Not printed when it starts: a usage error right after prints its one line only.
    expect(lines).toEqual([]);
    reporter.phase('planning');
    clock.advance(7);
    fire();
    reporter.log('run r-1: 1 input files -> 2 units');
    reporter.queued([unit('u0', 1), unit('u1', 1)]);
    clock.advance(5);
    reporter.unitSettled(unit('u0', 1), succeeded(100, 1000));
    fire();
    clock.advance(5);
    reporter.unitSettled(unit('u1', 1), succeeded(100, 1000));
    reporter.phase('finalizing run r-1');
    // Finalize is not unit work: the rates and time stop at the last unit.
    clock.advance(30);
    reporter.stop();
    expect(callbacks.size).toBe(0);
    expect(lines).toEqual([
      'planning (7s)',
      'run r-1: 1 input files -> 2 units',
      'progress: 1/2 units, 100 records, 20 records/s, 200 tokens/s, 5s so far, ETA 5s',
      'progress: 2/2 units, 200 records, 20 records/s, 200 tokens/s, in 10s',
    ]);
  });

  it('on a terminal draws an ora spinner whose text follows the run, with log lines above it', () => {
    const clock = fakeClock();
    const { timers, fire } = fakeTimers();
    const terminal = new FakeTerminal();
    const reporter = new ProgressReporter({
      output: { kind: 'terminal', stream: terminal },
      now: clock.now,
      timers,
    });
    try {
      reporter.start('starting the model');
      expect(terminal.text).toContain('starting the model');
      reporter.queued([unit('u0', 1, 'embed'), unit('u1', 1, 'embed')]);
      clock.advance(2);
      reporter.unitSettled(unit('u0', 1, 'embed'), succeeded(50, 400, 1, 0));
      reporter.log('unit u1 failed: boom');
      fire();
      expect(terminal.text).toContain('unit u1 failed: boom\n');
      expect(terminal.text).toContain(
        'embed: 1/2 units, 50 records, 25 records/s, 200 tokens/s, 2s so far, ETA 2s, 1 throttled, 0 retries',
      );
    } finally {
      reporter.stop();
    }
    expect(
      terminal.text.endsWith(
        'progress: embed: 1/2 units, 50 records, 25 records/s, 200 tokens/s, in 2s, 1 throttled, 0 retries\n',
      ),
    ).toBe(true);
  });
});

describe('progressOutputFor', () => {
  const terminal = (columns: number) => Object.assign(new FakeTerminal(), { columns });

  it('draws a spinner only on a terminal with a width, without --json or TERM=dumb', () => {
    expect(progressOutputFor(processIo, false, terminal(120), {}).kind).toBe('terminal');
    expect(progressOutputFor(processIo, true, terminal(120), {}).kind).toBe('lines');
    expect(progressOutputFor(processIo, false, terminal(120), { TERM: 'dumb' }).kind).toBe('lines');
    // A pseudo-terminal with no size reports 0 columns: ora would clear lines forever.
    expect(progressOutputFor(processIo, false, terminal(0), {}).kind).toBe('lines');
    const pipe = new Writable({ write: (_c, _e, done) => done() });
    expect(progressOutputFor(processIo, false, pipe, {}).kind).toBe('lines');
    // A command run in-process (tests) writes lines to its own stderr.
    const err: string[] = [];
    const output = progressOutputFor({ out: () => {}, err: (l) => err.push(l) }, false, terminal(120), {});
    expect(output.kind).toBe('lines');
    if (output.kind === 'lines') output.writeLine('planning');
    expect(err).toEqual(['planning']);
  });
});
