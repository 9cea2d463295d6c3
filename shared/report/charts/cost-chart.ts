import type { RunReportData } from '../run-report-data.ts';
import { axis, color, type ReportChart } from './chart-spec.ts';

const COST_PARTS = ['endpoint', 'lambda', 'requests', 'storage'] as const;

/** The run summary's cost, part by part. */
export function costChart(data: RunReportData): ReportChart {
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
