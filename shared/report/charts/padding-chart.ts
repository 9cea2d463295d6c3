import type { RunReportData } from '../run-report-data.ts';
import { axis, color, fmt, type ReportChart, unitsInOrder } from './chart-spec.ts';

/** Per unit, the real tokens sent and the padding its batches added. */
export function paddingChart(data: RunReportData): ReportChart {
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
