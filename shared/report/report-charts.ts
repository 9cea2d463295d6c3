import type { ReportChart } from './charts/chart-spec.ts';
import { costChart } from './charts/cost-chart.ts';
import { latencyChart } from './charts/latency-chart.ts';
import { paddingChart } from './charts/padding-chart.ts';
import { rejectsChart } from './charts/rejects-chart.ts';
import { throughputChart } from './charts/throughput-chart.ts';
import { unitCostChart } from './charts/unit-cost-chart.ts';
import { unitTimelineChart } from './charts/unit-timeline-chart.ts';
import type { RunReportData } from './run-report-data.ts';

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
