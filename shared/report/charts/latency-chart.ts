import type { ReportUnit, RunReportData } from '../run-report-data.ts';
import { axis, color, fmt, type ReportChart, unitsInOrder } from './chart-spec.ts';

const meanCallMs = (u: ReportUnit) =>
  u.endpointCallMs === undefined ? null : Number((u.endpointCallMs / u.endpointCalls).toFixed(2));

/** Lines of the calls' time on the left axis, bars of throttles and retries on the right. */
function latencyDatasets(units: readonly ReportUnit[], hasMax: boolean): Record<string, unknown>[] {
  const line = (label: string, data: (number | null)[], i: number, extra: Record<string, unknown> = {}) => ({
    type: 'line',
    label,
    data,
    yAxisID: 'y',
    borderColor: color(i),
    backgroundColor: color(i),
    ...extra,
  });
  const bars = (label: string, data: number[], i: number) => ({
    label,
    data,
    yAxisID: 'y1',
    backgroundColor: color(i),
  });
  return [
    line('mean call ms', units.map(meanCallMs), 0, { order: 0 }),
    ...(hasMax
      ? [
          line(
            'longest call ms',
            units.map((u) => u.endpointMaxCallMs ?? null),
            3,
            {
              borderDash: [4, 3],
              order: 1,
            },
          ),
        ]
      : []),
    {
      ...bars(
        'throttled',
        units.map((u) => u.throttled),
        4,
      ),
      order: 2,
    },
    {
      ...bars(
        'retries',
        units.map((u) => u.retries),
        6,
      ),
      order: 3,
    },
  ];
}

/** Per unit: its endpoint calls' mean and longest time, and the throttles and retries it met. */
export function latencyChart(data: RunReportData): ReportChart {
  const title = 'Endpoint latency and throttles';
  const units = unitsInOrder(data).filter((u) => u.endpointCalls > 0);
  if (units.length === 0)
    return {
      id: 'latency',
      title,
      caption: '',
      note: 'No endpoint calls in this run (the model ran in the worker, or no unit finished).',
    };
  const total = (pick: (u: ReportUnit) => number) => units.reduce((s, u) => s + pick(u), 0);
  const calls = data.summary?.stats.endpointCalls ?? total((u) => u.endpointCalls);
  const throttled = data.summary?.stats.throttled ?? total((u) => u.throttled);
  const retries = data.summary?.stats.retries ?? total((u) => u.retries);
  const callMs = total((u) => u.endpointCallMs ?? 0);
  const hasMax = units.some((u) => u.endpointMaxCallMs !== undefined);
  return {
    id: 'latency',
    title,
    caption:
      `Per unit, in the order units started: the mean${hasMax ? ' and longest' : ''} endpoint call as the worker timed it ` +
      `(a call includes the client's retries and their backoff), and the calls the endpoint throttled and the retries. ` +
      `Run: ${fmt(calls)} calls, mean ${fmt(calls > 0 ? callMs / calls : 0, 1)} ms, ${fmt(throttled)} throttled, ${fmt(retries)} retries.`,
    config: {
      type: 'bar',
      data: { labels: units.map((u) => u.unitId), datasets: latencyDatasets(units, hasMax) },
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
