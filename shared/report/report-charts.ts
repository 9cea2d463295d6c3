import type { ReportUnit, RunReportData } from './run-report-data.ts';
import { ratesOverTime, type TimedSpan, workerLanes } from './timeline.ts';

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
const heightFor = (rows: number) => Math.max(340, Math.min(4000, 110 + 24 * rows));

const COLORS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#dc2626', '#0891b2', '#ca8a04', '#db2777'];
const color = (i: number) => COLORS[i % COLORS.length]!;

const axis = (title: string, extra: Record<string, unknown> = {}) => ({
  title: { display: true, text: title },
  ...extra,
});

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));

/** The charts of a run report, in page order. */
export function reportCharts(data: RunReportData): ReportChart[] {
  return [
    unitCostChart(data),
    unitTimelineChart(data),
    throughputChart(data),
    paddingChart(data),
    latencyChart(data),
    rejectsChart(data),
    costChart(data),
  ];
}

/** What a unit's cost counts: the planner's measure for the pipeline's kind. */
function costMeasure(data: RunReportData): string {
  if (data.run.task === 'fit') return 'records';
  return data.units.some((u) => u.realTokens > 0) || (data.summary?.stats.realTokens ?? 0) > 0
    ? 'tokens'
    : 'rows × features';
}

function unitCostChart(data: RunReportData): ReportChart {
  const measured = data.units.filter((u) => u.actualCost !== null);
  const measure = costMeasure(data);
  const title = 'Unit cost: estimated vs actual';
  if (measured.length === 0)
    return { id: 'unit-cost', title, caption: '', note: 'No unit has finished yet: nothing measured.' };
  const estimated = measured.reduce((s, u) => s + u.estCost, 0);
  const actual = measured.reduce((s, u) => s + u.actualCost!, 0);
  const mean = actual / measured.length;
  const max = Math.max(...measured.map((u) => u.actualCost!));
  const top = Math.max(max, ...measured.map((u) => u.estCost));
  return {
    id: 'unit-cost',
    title,
    caption:
      `Each point is a unit: the planner's estimate (x) against the work it measured (y), in ${measure}. ` +
      `${measured.length} units: estimated ${fmt(estimated)}, measured ${fmt(actual)} ` +
      `(measured/estimated ${fmt(estimated > 0 ? actual / estimated : 0, 2)}); ` +
      `largest unit / mean ${fmt(mean > 0 ? max / mean : 0, 2)} (near 1 means balanced units).`,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          {
            label: 'units',
            data: measured.map((u) => ({
              x: u.estCost,
              y: u.actualCost,
              unit: u.unitId,
              tip: `estimated ${fmt(u.estCost)}, measured ${fmt(u.actualCost!)} ${measure}`,
            })),
            backgroundColor: color(0),
            pointRadius: 4,
          },
          {
            label: 'measured = estimated',
            data: [
              { x: 0, y: 0 },
              { x: top, y: top },
            ],
            showLine: true,
            borderColor: '#9ca3af',
            borderDash: [6, 4],
            pointRadius: 0,
          },
        ],
      },
      options: {
        scales: {
          x: axis(`estimated (${measure})`, { beginAtZero: true }),
          y: axis(`measured (${measure})`, { beginAtZero: true }),
        },
      },
    },
  };
}

/** Units whose usage says when they ran, on the run's clock (ms since the run started). */
function timedUnits(data: RunReportData): { unit: ReportUnit; start: number; end: number }[] {
  const origin = Date.parse(data.run.startedAt);
  return data.units
    .filter((u) => u.startedAt !== undefined && u.workerMs !== undefined)
    .map((unit) => {
      const start = Math.max(0, unit.startedAt! - origin);
      return { unit, start, end: start + unit.workerMs! };
    });
}

const untimedNote = (data: RunReportData, timed: number) =>
  timed === data.units.length
    ? ''
    : ` ${data.units.length - timed} of ${data.units.length} units have no recorded start (unfinished, or run before Sluice recorded it).`;

function unitTimelineChart(data: RunReportData): ReportChart {
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
  const byWorker = new Map<number, typeof placed>();
  for (const span of placed) {
    const list = byWorker.get(span.worker) ?? [];
    list.push(span);
    byWorker.set(span.worker, list);
  }
  const datasets = [...byWorker.values()].map((list, i) => ({
    label: `worker ${i + 1}`,
    // Two points per unit and a gap (y null) between units: one line segment per unit.
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
  const busy = placed.reduce((sum, s) => sum + (s.end - s.start), 0);
  const last = Math.max(...placed.map((s) => s.end));
  return {
    id: 'unit-timeline',
    title,
    caption:
      `Each bar is a unit's delivery that completed it, from its start to its end in the worker (seconds since the run started at ${data.run.startedAt}); ` +
      `one row per worker (a Lambda execution environment, a local unit thread), more where a worker ran units at once. ` +
      `${placed.length} units on ${byWorker.size} workers; last unit ended at ${fmt(seconds(last), 2)} s; ` +
      `summed unit time ${fmt(seconds(busy), 2)} s.${untimedNote(data, timed.length)}`,
    laneLabels: labels,
    height: heightFor(labels.length),
    config: {
      type: 'scatter',
      data: { datasets },
      options: {
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

function throughputChart(data: RunReportData): ReportChart {
  const timed = timedUnits(data);
  const title = 'Throughput over time';
  if (timed.length === 0)
    return {
      id: 'throughput',
      title,
      caption: '',
      note: 'No unit has a recorded start: no throughput to draw.',
    };
  const series = ratesOverTime(
    timed.map(({ unit, start, end }) => ({ start, end, amounts: [unit.records, unit.realTokens] })),
    2,
  );
  const [records, tokens] = series.rates as [number[], number[]];
  const totalRecords = timed.reduce((s, t) => s + t.unit.records, 0);
  const totalTokens = timed.reduce((s, t) => s + t.unit.realTokens, 0);
  const last = Math.max(...timed.map((t) => t.end));
  const point = (values: number[]) => values.map((y, i) => ({ x: series.at[i]!, y: Number(y.toFixed(3)) }));
  const datasets: Record<string, unknown>[] = [
    {
      label: 'records/s',
      data: point(records),
      yAxisID: 'y',
      borderColor: color(0),
      backgroundColor: color(0),
      pointRadius: 0,
      tension: 0.2,
    },
  ];
  if (totalTokens > 0)
    datasets.push({
      label: 'tokens/s',
      data: point(tokens),
      yAxisID: 'y1',
      borderColor: color(1),
      backgroundColor: color(1),
      pointRadius: 0,
      tension: 0.2,
    });
  return {
    id: 'throughput',
    title,
    caption:
      `Records${totalTokens > 0 ? ' and tokens' : ''} per second in ${series.at.length} bins of ${fmt(series.binSeconds, 3)} s, ` +
      `each unit's work spread evenly over its time in the worker (units report totals, not a stream). ` +
      `${fmt(totalRecords)} records${totalTokens > 0 ? ` and ${fmt(totalTokens)} tokens` : ''} in ${fmt(seconds(last), 2)} s: ` +
      `${fmt(last > 0 ? totalRecords / (last / 1000) : 0, 1)} records/s` +
      `${totalTokens > 0 ? `, ${fmt(last > 0 ? totalTokens / (last / 1000) : 0, 0)} tokens/s` : ''} from the run's start.${untimedNote(data, timed.length)}`,
    binSeconds: series.binSeconds,
    config: {
      type: 'line',
      data: { datasets },
      options: {
        scales: {
          x: axis('seconds since the run started', { type: 'linear', beginAtZero: true }),
          y: axis('records/s', { beginAtZero: true, position: 'left' }),
          ...(totalTokens > 0 && {
            y1: axis('tokens/s', { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } }),
          }),
        },
      },
    },
  };
}

/** Units in the order they started (unit id where no start was recorded). */
function unitsInOrder(data: RunReportData): ReportUnit[] {
  return [...data.units].sort(
    (a, b) =>
      (a.startedAt ?? Number.POSITIVE_INFINITY) - (b.startedAt ?? Number.POSITIVE_INFINITY) ||
      (a.unitId < b.unitId ? -1 : a.unitId > b.unitId ? 1 : 0),
  );
}

function paddingChart(data: RunReportData): ReportChart {
  const title = 'Batch padding';
  const real = data.summary?.stats.realTokens ?? data.units.reduce((s, u) => s + u.realTokens, 0);
  const padded = data.summary?.stats.paddedTokens ?? data.units.reduce((s, u) => s + u.paddedTokens, 0);
  if (padded === 0)
    return {
      id: 'padding',
      title,
      caption: '',
      note: 'No token batches in this run (scoring sends CSV rows, which carry no padding).',
    };
  const units = unitsInOrder(data).filter((u) => u.paddedTokens > 0);
  return {
    id: 'padding',
    title,
    caption:
      `Tokens each unit sent to the model (real) and the padding its batches added (every input of a batch is padded to the batch's longest). ` +
      `Run: ${fmt(real)} real, ${fmt(padded)} padded tokens: ${fmt(padded > 0 ? ((padded - real) / padded) * 100 : 0, 1)} % padding.`,
    config: {
      type: 'bar',
      data: {
        labels: units.map((u) => u.unitId),
        datasets: [
          { label: 'real tokens', data: units.map((u) => u.realTokens), backgroundColor: color(0) },
          {
            label: 'padding tokens',
            data: units.map((u) => u.paddedTokens - u.realTokens),
            backgroundColor: color(1),
          },
        ],
      },
      options: {
        scales: {
          x: axis('unit (in the order they started)', { stacked: true }),
          y: axis('tokens', { stacked: true, beginAtZero: true }),
        },
      },
    },
  };
}

function latencyChart(data: RunReportData): ReportChart {
  const title = 'Endpoint latency and throttles';
  const units = unitsInOrder(data).filter((u) => u.endpointCalls > 0);
  if (units.length === 0)
    return {
      id: 'latency',
      title,
      caption: '',
      note: 'No endpoint calls in this run (the model ran in the worker, or no unit finished).',
    };
  const mean = (u: ReportUnit) =>
    u.endpointCallMs === undefined ? null : Number((u.endpointCallMs / u.endpointCalls).toFixed(2));
  const calls = data.summary?.stats.endpointCalls ?? units.reduce((s, u) => s + u.endpointCalls, 0);
  const throttled = data.summary?.stats.throttled ?? units.reduce((s, u) => s + u.throttled, 0);
  const retries = data.summary?.stats.retries ?? units.reduce((s, u) => s + u.retries, 0);
  const callMs = units.reduce((s, u) => s + (u.endpointCallMs ?? 0), 0);
  const hasMax = units.some((u) => u.endpointMaxCallMs !== undefined);
  const datasets: Record<string, unknown>[] = [
    {
      type: 'line',
      label: 'mean call ms',
      data: units.map(mean),
      yAxisID: 'y',
      borderColor: color(0),
      backgroundColor: color(0),
      order: 0,
    },
  ];
  if (hasMax)
    datasets.push({
      type: 'line',
      label: 'longest call ms',
      data: units.map((u) => u.endpointMaxCallMs ?? null),
      yAxisID: 'y',
      borderColor: color(3),
      backgroundColor: color(3),
      borderDash: [4, 3],
      order: 1,
    });
  datasets.push(
    {
      label: 'throttled',
      data: units.map((u) => u.throttled),
      yAxisID: 'y1',
      backgroundColor: color(4),
      order: 2,
    },
    {
      label: 'retries',
      data: units.map((u) => u.retries),
      yAxisID: 'y1',
      backgroundColor: color(6),
      order: 3,
    },
  );
  return {
    id: 'latency',
    title,
    caption:
      `Per unit, in the order units started: the mean${hasMax ? ' and longest' : ''} endpoint call as the worker timed it ` +
      `(a call includes the client's retries and their backoff), and the calls the endpoint throttled and the retries. ` +
      `Run: ${fmt(calls)} calls, mean ${fmt(calls > 0 ? callMs / calls : 0, 1)} ms, ${fmt(throttled)} throttled, ${fmt(retries)} retries.`,
    config: {
      type: 'bar',
      data: { labels: units.map((u) => u.unitId), datasets },
      options: {
        scales: {
          x: axis('unit (in the order they started)'),
          y: axis('ms per call', { beginAtZero: true, position: 'left' }),
          y1: axis('throttled / retries', {
            beginAtZero: true,
            position: 'right',
            grid: { drawOnChartArea: false },
            ticks: { precision: 0 },
          }),
        },
      },
    },
  };
}

/** Reject kinds drawn as their own bar; the rest share one. */
export const MAX_REJECT_BARS = 25;

function rejectsChart(data: RunReportData): ReportChart {
  const title = 'Rejects by reason';
  const total = data.rejects.reduce((s, r) => s + r.count, 0);
  if (total === 0)
    return {
      id: 'rejects',
      title,
      caption: '',
      note: 'No rejected records: every record reached the results.',
    };
  // The most frequent kinds, the rest as one bar, so a run with odd reasons stays readable.
  const shown = data.rejects.slice(0, MAX_REJECT_BARS);
  const rest = data.rejects.slice(MAX_REJECT_BARS);
  const bars = [...shown.map((r) => ({ label: r.kind, count: r.count }))];
  if (rest.length > 0)
    bars.push({ label: `(${rest.length} other kinds)`, count: rest.reduce((s, r) => s + r.count, 0) });
  return {
    id: 'rejects',
    title,
    caption:
      `Rows of the rejects table for this run, grouped by reason (a record's own details, such as the parser's message or an id, taken out). ` +
      `${fmt(total)} rejected in ${data.rejects.length} kinds. Query them: sluice query "select reason, line, source_key from rejects where run_id = '${data.run.runId}'".`,
    height: heightFor(bars.length),
    config: {
      type: 'bar',
      data: {
        labels: bars.map((b) => b.label),
        datasets: [{ label: 'records', data: bars.map((b) => b.count), backgroundColor: color(4) }],
      },
      options: {
        indexAxis: 'y',
        scales: { x: axis('records', { beginAtZero: true, ticks: { precision: 0 } }) },
        plugins: { legend: { display: false } },
      },
    },
  };
}

const COST_PARTS = ['endpoint', 'lambda', 'requests', 'storage'] as const;

function costChart(data: RunReportData): ReportChart {
  const title = 'Cost';
  const cost = data.summary?.cost;
  if (!cost)
    return {
      id: 'cost',
      title,
      caption: '',
      note: data.summary?.costUnknown
        ? `No cost: ${data.summary.costUnknown}`
        : data.summary
          ? 'This run summary has no cost (written before Sluice priced runs).'
          : 'The run has not finished: its cost is priced when it does.',
    };
  const usd = (n: number) => `$${n.toFixed(6)}`;
  return {
    id: 'cost',
    title,
    caption:
      `The run summary's cost in USD${cost.estimate ? ', an estimate: a local run priced as if deployed' : ''} (${cost.region}): ` +
      `total ${usd(cost.total)} = ${COST_PARTS.map((p) => `${p} ${usd(cost[p])}`).join(' + ')}. ` +
      'How each part is counted is under the chart.',
    config: {
      type: 'bar',
      data: {
        labels: [...COST_PARTS],
        datasets: [
          {
            label: 'USD',
            data: COST_PARTS.map((p) => cost[p]),
            backgroundColor: COST_PARTS.map((_, i) => color(i)),
          },
        ],
      },
      options: {
        indexAxis: 'y',
        scales: { x: axis('USD', { beginAtZero: true }) },
        plugins: { legend: { display: false } },
      },
    },
  };
}
