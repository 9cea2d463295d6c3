import type { ReportUnit, RunReportData } from '../run-report-data.ts';
import { axis, color, fmt, type ReportChart } from './chart-spec.ts';

/** What a unit's cost counts: the planner's measure for its stage (a fit pass counts records). */
function measureOf(stage: string | undefined, units: readonly ReportUnit[], data: RunReportData): string {
  if (stage === 'fit' || (stage === undefined && data.run.task === 'fit')) return 'records';
  return units.some((u) => u.realTokens > 0) || (data.summary?.stats.realTokens ?? 0) > 0
    ? 'tokens'
    : 'rows × features';
}

/** The finished units by stage, in the run's stage order (one group without a name for older runs). */
function byStage(units: readonly ReportUnit[]): [string | undefined, ReportUnit[]][] {
  const groups = new Map<string | undefined, ReportUnit[]>();
  for (const unit of units) {
    const group = groups.get(unit.stage);
    if (group) group.push(unit);
    else groups.set(unit.stage, [unit]);
  }
  return [...groups];
}

/** Each unit at (the planner's estimate, the work it measured), beside the line where they are equal. */
export function unitCostChart(data: RunReportData): ReportChart {
  const measured = data.units.filter((u) => u.actualCost !== null);
  const title = 'Unit cost: estimated vs actual';
  if (measured.length === 0)
    return { id: 'unit-cost', title, caption: '', note: 'No unit has finished yet: nothing measured.' };
  const stages = byStage(measured).map(
    ([stage, units]) => [stage, units, measureOf(stage, units, data)] as const,
  );
  // One measure on the axes, or each stage's in its own legend entry.
  const measure = stages.length === 1 ? stages[0]![2] : 'each stage’s measure';
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
          ...stages.map(([stage, units, unitMeasure], i) => ({
            label: stages.length > 1 ? `${stage ?? 'other'} units (${unitMeasure})` : 'units',
            data: units.map((u) => ({
              x: u.estCost,
              y: u.actualCost,
              unit: u.unitId,
              tip: `estimated ${fmt(u.estCost)}, measured ${fmt(u.actualCost!)} ${unitMeasure}`,
            })),
            backgroundColor: color(i),
            pointRadius: 4,
          })),
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
