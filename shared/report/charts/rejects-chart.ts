import type { RunReportData } from '../run-report-data.ts';
import { axis, color, fmt, heightFor, type ReportChart } from './chart-spec.ts';

/** Reject kinds drawn as their own bar; the rest share one. */
export const MAX_REJECT_BARS = 25;

/** Rejected records by kind of reason (see rejectKindOf). */
export function rejectsChart(data: RunReportData): ReportChart {
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
