import type { RunReportData } from '../run-report-data.ts';
import { ratesOverTime } from '../timeline.ts';
import { axis, color, fmt, type ReportChart, seconds, timedUnits, untimedNote } from './chart-spec.ts';

/** One measure's rate as a line over the bins' middles. */
const rateLine = (
  label: string,
  rates: readonly number[],
  at: readonly number[],
  yAxisID: string,
  i: number,
) => ({
  label,
  data: rates.map((y, bin) => ({ x: at[bin]!, y: Number(y.toFixed(3)) })),
  yAxisID,
  borderColor: color(i),
  backgroundColor: color(i),
  pointRadius: 0,
  tension: 0.2,
});

/** Records and tokens per second over the run, from the units' totals spread over their time. */
export function throughputChart(data: RunReportData): ReportChart {
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
  const datasets = [rateLine('records/s', records, series.at, 'y', 0)];
  if (totalTokens > 0) datasets.push(rateLine('tokens/s', tokens, series.at, 'y1', 1));
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
