import type { RunReportData } from '../run-report-data.ts';
import { type LaneSpan, type TimedSpan, workerLanes } from '../timeline.ts';
import {
  axis,
  color,
  fmt,
  heightFor,
  type ReportChart,
  seconds,
  timedUnits,
  untimedNote,
} from './chart-spec.ts';

/** Workers the timeline names in a legend; more are told apart by their rows' labels. */
const MAX_LEGEND_WORKERS = 8;

/**
 * One dataset per worker, a line segment per unit: two points on the unit's row and a gap
 * (y null) after it, so one scatter chart draws thousands of units as bars.
 */
function workerDatasets(placed: readonly LaneSpan[]): Record<string, unknown>[] {
  const byWorker = new Map<number, LaneSpan[]>();
  for (const span of placed) {
    const list = byWorker.get(span.worker);
    if (list) list.push(span);
    else byWorker.set(span.worker, [span]);
  }
  return [...byWorker.values()].map((list, i) => ({
    label: `worker ${i + 1}`,
    data: list.flatMap((s) => {
      const tip = `${seconds(s.start)}–${seconds(s.end)} s (${seconds(s.end - s.start)} s)`;
      return [
        { x: seconds(s.start), y: s.lane, unit: s.unitId, tip },
        { x: seconds(s.end), y: s.lane, unit: s.unitId, tip },
        { x: seconds(s.end), y: null },
      ];
    }),
    showLine: true,
    spanGaps: false,
    borderColor: color(i),
    backgroundColor: color(i),
    borderWidth: 10,
    borderCapStyle: 'butt',
    pointRadius: 0,
    pointHitRadius: 6,
  }));
}

/** Each unit's delivery as a bar from its start to its end, a row per worker (and per unit it ran at once). */
export function unitTimelineChart(data: RunReportData): ReportChart {
  const timed = timedUnits(data);
  const title = 'Units across workers over time';
  if (timed.length === 0)
    return {
      id: 'unit-timeline',
      title,
      caption: '',
      note: 'No unit has a recorded start and worker (unfinished, or run before Sluice recorded them).',
    };
  const spans: TimedSpan[] = timed.map(({ unit, start, end }) => ({
    unitId: unit.unitId,
    start,
    end,
    worker: unit.worker ?? 0,
  }));
  const { spans: placed, labels } = workerLanes(spans);
  const datasets = workerDatasets(placed);
  const busy = placed.reduce((sum, s) => sum + (s.end - s.start), 0);
  const last = Math.max(...placed.map((s) => s.end));
  return {
    id: 'unit-timeline',
    title,
    caption:
      `Each bar is a unit's delivery that completed it, from its start to its end in the worker (seconds since the run started at ${data.run.startedAt}); ` +
      `one row per worker (a Lambda execution environment, a local unit thread), more where a worker ran units at once. ` +
      `${placed.length} units on ${datasets.length} workers; last unit ended at ${fmt(seconds(last), 2)} s; ` +
      `summed unit time ${fmt(seconds(busy), 2)} s.${untimedNote(data, timed.length)}`,
    laneLabels: labels,
    height: heightFor(labels.length),
    config: {
      type: 'scatter',
      data: { datasets },
      options: {
        // Past a few workers the rows' labels say which is which; a legend would fill the chart.
        plugins: { legend: { display: datasets.length <= MAX_LEGEND_WORKERS } },
        scales: {
          x: axis('seconds since the run started', { beginAtZero: true }),
          // Rows are whole numbers with a margin row above and below; the page labels them.
          y: axis('worker', {
            reverse: true,
            min: -1,
            max: labels.length,
            ticks: { stepSize: 1, autoSkip: false },
            grid: { display: false },
          }),
        },
      },
    },
  };
}
