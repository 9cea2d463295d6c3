import type { ReportUnit, RunReportData } from '../run-report-data.ts';

/**
 * A Chart.js configuration as plain JSON (no functions): it travels inside the page as data,
 * and the page's script adds the few callbacks (lane labels, tooltips) by the chart's flags.
 */
export interface ChartConfig {
  readonly type: 'bar' | 'line' | 'scatter';
  readonly data: {
    readonly labels?: readonly string[];
    readonly datasets: readonly Record<string, unknown>[];
  };
  readonly options: Record<string, unknown>;
}

/** One chart of the report: a canvas, or a note where the run has nothing to draw. */
export interface ReportChart {
  /** The canvas id, stable for tests and links: `unit-cost`, `unit-timeline`, ... */
  readonly id: string;
  readonly title: string;
  /** What the chart shows and how it was measured, with the run's totals. */
  readonly caption: string;
  /** Absent when there is nothing to draw; `note` then says why. */
  readonly config?: ChartConfig;
  readonly note?: string;
  /** Tick labels of a y axis whose values are row numbers (the timeline's lanes). */
  readonly laneLabels?: readonly string[];
  /** The width of the throughput chart's bins, seconds: a rate times it is the work in the bin. */
  readonly binSeconds?: number;
  /** Pixels the chart needs where it lists rows (lanes, reject kinds). @default 340 */
  readonly height?: number;
}

/** Height for a chart of `rows` horizontal rows: enough to read each, never below the default. */
export const heightFor = (rows: number) => Math.max(340, Math.min(4000, 110 + 24 * rows));

const COLORS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#dc2626', '#0891b2', '#ca8a04', '#db2777'];
export const color = (i: number) => COLORS[i % COLORS.length]!;

export const axis = (title: string, extra: Record<string, unknown> = {}) => ({
  title: { display: true, text: title },
  ...extra,
});

// One formatter per precision: toLocaleString builds a new one per call, which a report of
// thousands of units (two numbers in each point's tooltip) pays for in seconds.
const formats = new Map<number, Intl.NumberFormat>();

/** A number as the report writes it: `12,345.67` with at most `digits` decimals. */
export const fmt = (n: number, digits = 0): string => {
  let format = formats.get(digits);
  if (!format) {
    format = new Intl.NumberFormat('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
    formats.set(digits, format);
  }
  return format.format(n);
};
export const seconds = (ms: number) => Number((ms / 1000).toFixed(3));

/** Units whose usage says when they ran, on the run's clock (ms since the run started). */
export function timedUnits(data: RunReportData): { unit: ReportUnit; start: number; end: number }[] {
  const origin = Date.parse(data.run.startedAt);
  return data.units
    .filter((u) => u.startedAt !== undefined && u.workerMs !== undefined)
    .map((unit) => {
      const start = Math.max(0, unit.startedAt! - origin);
      return { unit, start, end: start + unit.workerMs! };
    });
}

export const untimedNote = (data: RunReportData, timed: number) =>
  timed === data.units.length
    ? ''
    : ` ${data.units.length - timed} of ${data.units.length} units have no recorded start (unfinished, or run before Sluice recorded it).`;

/** Units in the order they started (unit id where no start was recorded). */
export function unitsInOrder(data: RunReportData): ReportUnit[] {
  return [...data.units].sort(
    (a, b) =>
      (a.startedAt ?? Number.POSITIVE_INFINITY) - (b.startedAt ?? Number.POSITIVE_INFINITY) ||
      (a.unitId < b.unitId ? -1 : a.unitId > b.unitId ? 1 : 0),
  );
}
