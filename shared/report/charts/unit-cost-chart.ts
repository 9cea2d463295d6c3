import type { RunReportData } from '../run-report-data.ts';
import { axis, color, fmt, type ReportChart } from './chart-spec.ts';

/** What a unit's cost counts: the planner's measure for the pipeline's kind. */
function costMeasure(data: RunReportData): string {
  if (data.run.task === 'fit') return 'records';
  return data.units.some((u) => u.realTokens > 0) || (data.summary?.stats.realTokens ?? 0) > 0
    ? 'tokens'
    : 'rows × features';
}

/** Each unit at (the planner's estimate, the work it measured), beside the line where they are equal. */
export function unitCostChart(data: RunReportData): ReportChart {
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
