/** A unit's span of work on the run's clock (ms since the run started). */
export interface TimedSpan {
  readonly unitId: string;
  /** ms since the run started. */
  readonly start: number;
  /** ms since the run started; at least `start`. */
  readonly end: number;
  readonly worker: number;
}

/** A span placed on a row of the timeline. */
export interface LaneSpan extends TimedSpan {
  /** 0-based row; rows of the same worker are next to each other. */
  readonly lane: number;
}

export interface WorkerLanes {
  readonly spans: LaneSpan[];
  /** One label per row: `w3` for worker 3's only row, `w3·2` for its second. */
  readonly labels: string[];
}

/**
 * Rows for a Gantt view of the units across workers: each worker (numbered 1.. in order of
 * its first start) gets as many rows as it ran units at once (a local unit thread runs
 * several), and a unit takes the worker's first row free at its start, so spans in a row
 * never overlap.
 */
export function workerLanes(spans: readonly TimedSpan[]): WorkerLanes {
  const ordered = [...spans].sort((a, b) => a.start - b.start || a.end - b.end || cmp(a.unitId, b.unitId));
  const workers = new Map<number, number[]>(); // worker -> end of each of its rows
  for (const span of ordered) if (!workers.has(span.worker)) workers.set(span.worker, []);
  const rowOf = new Map<TimedSpan, number>();
  for (const span of ordered) {
    const rows = workers.get(span.worker)!;
    let row = rows.findIndex((end) => end <= span.start);
    if (row < 0) row = rows.push(span.end) - 1;
    else rows[row] = span.end;
    rowOf.set(span, row);
  }
  const labels: string[] = [];
  const firstLane = new Map<number, number>();
  let number = 0;
  for (const [worker, rows] of workers) {
    number += 1;
    firstLane.set(worker, labels.length);
    for (let r = 0; r < rows.length; r++)
      labels.push(rows.length === 1 ? `w${number}` : `w${number}·${r + 1}`);
  }
  return {
    spans: ordered.map((span) => ({ ...span, lane: firstLane.get(span.worker)! + rowOf.get(span)! })),
    labels,
  };
}

/** Work per second over equal bins of the run's clock. */
export interface RateSeries {
  /** Width of a bin, seconds. */
  readonly binSeconds: number;
  /** Each bin's middle, seconds since the run started. */
  readonly at: number[];
  /** Per measure, its rate in each bin (amount per second). */
  readonly rates: number[][];
}

/** A span with the amounts of work it did (records, tokens, ...). */
export interface WorkSpan {
  readonly start: number;
  readonly end: number;
  readonly amounts: readonly number[];
}

/**
 * Rates over time from units that report only totals: each unit's amounts are spread evenly
 * over its span (a zero-length span puts all in the bin it falls in), then summed per bin.
 * The amounts are kept: the rates times `binSeconds` add up to every unit's total.
 * @param bins how many bins the time from 0 to the last end is cut into. @default 60
 */
export function ratesOverTime(spans: readonly WorkSpan[], measures: number, bins = 60): RateSeries {
  const last = spans.reduce((max, s) => Math.max(max, s.end), 0);
  const count = last > 0 ? bins : 1;
  const binMs = last > 0 ? last / count : 1000;
  const totals = Array.from({ length: measures }, () => new Array<number>(count).fill(0));
  const binOf = (ms: number) => Math.min(count - 1, Math.max(0, Math.floor(ms / binMs)));
  for (const span of spans) {
    const length = span.end - span.start;
    if (length <= 0) {
      const bin = binOf(span.start);
      for (let m = 0; m < measures; m++) totals[m]![bin]! += span.amounts[m] ?? 0;
      continue;
    }
    const first = binOf(span.start);
    const lastBin = binOf(span.end);
    for (let bin = first; bin <= lastBin; bin++) {
      // The last bin also takes what lies past its end (the clock's rounding).
      const from = bin === first ? span.start : bin * binMs;
      const to = bin === lastBin ? span.end : (bin + 1) * binMs;
      const share = Math.max(0, to - from) / length;
      for (let m = 0; m < measures; m++) totals[m]![bin]! += (span.amounts[m] ?? 0) * share;
    }
  }
  const binSeconds = binMs / 1000;
  return {
    binSeconds,
    at: Array.from({ length: count }, (_, i) => round((i + 0.5) * binSeconds, 3)),
    rates: totals.map((series) => series.map((amount) => amount / binSeconds)),
  };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const round = (n: number, digits: number) => Number(n.toFixed(digits));
