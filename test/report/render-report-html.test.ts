import { describe, expect, it } from 'vitest';
import type { RunState, RunSummary } from '../../shared/domain/types.ts';
import { renderRunReportHtml, scriptJson } from '../../shared/report/render-report-html.ts';
import { reportCharts } from '../../shared/report/report-charts.ts';
import type { ReportUnit, RunReportData } from '../../shared/report/run-report-data.ts';

const run = (over: Partial<RunState> = {}): RunState => ({
  runId: 'r-20261207T050000Z-abc123',
  pipeline: 'docs',
  trigger: 'local',
  startedAt: '2026-12-07T05:00:00.000Z',
  inputs: ['incoming/docs/a.jsonl'],
  status: 'succeeded',
  finishedAt: '2026-12-07T05:00:10.000Z',
  totalUnits: 2,
  doneUnits: 2,
  failedUnits: 0,
  ...over,
});

const unit = (id: string, over: Partial<ReportUnit> = {}): ReportUnit => ({
  unitId: id,
  sourceKey: 'incoming/docs/a.jsonl',
  status: 'succeeded',
  attempts: 1,
  estCost: 1000,
  actualCost: 1100,
  records: 10,
  rejected: 0,
  realTokens: 1100,
  paddedTokens: 1300,
  endpointCalls: 4,
  throttled: 1,
  retries: 1,
  ...over,
});

const summary = (): RunSummary => ({
  runId: run().runId,
  pipeline: 'docs',
  status: 'succeeded',
  trigger: 'local',
  startedAt: run().startedAt,
  finishedAt: run().finishedAt!,
  counts: {
    records: 20,
    rejected: 0,
    units: 2,
    failedUnits: 0,
    chunks: 20,
    embedded: 20,
    skippedUnchanged: 0,
    removedChunks: 0,
    scored: 0,
  },
  stats: { realTokens: 2200, paddedTokens: 2600, endpointCalls: 8, throttled: 2, retries: 2 },
  failedUnits: [],
  timings: {},
});

const data = (over: Partial<RunReportData> = {}): RunReportData => ({
  run: run(),
  summary: summary(),
  units: [unit('u00000'), unit('u00001')],
  rejects: [],
  generatedAt: '2026-12-07T06:00:00.000Z',
  ...over,
});

const chart = (d: RunReportData, id: string) => reportCharts(d).find((c) => c.id === id)!;

describe('renderRunReportHtml', () => {
  it('keeps text from the run inert: a reason or name holding </script> cannot end a script', () => {
    const hostile = '</script><script>alert(1)</script><!--';
    const html = renderRunReportHtml(
      data({
        run: run({ pipeline: hostile }),
        rejects: [{ kind: hostile, count: 3, example: hostile }],
      }),
      '/* chart.js */',
    );
    // The data, the library and the page's own script: nothing else opens a script.
    expect(html.match(/<script/g)).toHaveLength(3);
    expect(html).not.toContain('<script>alert(1)');
    const json = /<script type="application\/json" id="sluice-report-data">(.*?)<\/script>/s.exec(html)![1]!;
    expect(
      JSON.parse(json).charts.find((c: { id: string }) => c.id === 'rejects').config.data.labels,
    ).toEqual([hostile]);
  });

  it('inlines the library without its source map comment and allows no request in the page', () => {
    const html = renderRunReportHtml(data(), 'window.Chart = 1;\n//# sourceMappingURL=chart.umd.min.js.map');
    expect(html).toContain('window.Chart = 1;');
    expect(html).not.toContain('sourceMappingURL');
    expect(html).toContain(`content="default-src 'none'; script-src 'unsafe-inline'`);
    expect(() => renderRunReportHtml(data(), 'var s = "</script>";')).toThrow(/cannot be inlined/);
  });

  it('escapes a string for script JSON so that it parses back the same', () => {
    const value = { a: '</script>\u2028<!-- & "quoted"' };
    expect(scriptJson(value)).not.toMatch(/<|\u2028/);
    expect(JSON.parse(scriptJson(value))).toEqual(value);
  });
});

describe('reportCharts', () => {
  it('says why a chart is missing instead of drawing nothing: usage from before start times, no cost, no rejects', () => {
    const d = data();
    for (const id of ['unit-timeline', 'throughput', 'rejects', 'cost']) {
      expect(chart(d, id).config, id).toBeUndefined();
      expect(chart(d, id).note, id).toMatch(/\w/);
    }
    expect(chart(d, 'unit-cost').config).toBeDefined();
    expect(chart(d, 'padding').config!.data.datasets[1]!.data).toEqual([200, 200]);
  });

  it('places units on the run’s clock and spreads their records over time', () => {
    const origin = Date.parse(run().startedAt);
    const d = data({
      units: [
        unit('u00000', { startedAt: origin + 1000, workerMs: 2000, worker: 9, endpointCallMs: 400 }),
        unit('u00001', { startedAt: origin + 2000, workerMs: 2000, worker: 9, endpointCallMs: 80 }),
      ],
    });
    const timeline = chart(d, 'unit-timeline');
    expect(timeline.laneLabels).toEqual(['w1·1', 'w1·2']);
    const points = timeline.config!.data.datasets[0]!.data as {
      x: number;
      y: number | null;
      unit?: string;
    }[];
    expect(points.filter((p) => p.unit).map((p) => [p.unit, p.x, p.y])).toEqual([
      ['u00000', 1, 0],
      ['u00000', 3, 0],
      ['u00001', 2, 1],
      ['u00001', 4, 1],
    ]);
    const throughput = chart(d, 'throughput');
    const records = throughput.config!.data.datasets[0]!.data as { x: number; y: number }[];
    expect(records.reduce((s, p) => s + p.y * throughput.binSeconds!, 0)).toBeCloseTo(20, 2);
    expect(chart(d, 'latency').config!.data.datasets[0]!.data).toEqual([100, 20]);
  });
});
