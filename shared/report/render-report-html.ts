import type { ReportChart } from './charts/chart-spec.ts';
import { reportCharts } from './report-charts.ts';
import type { RunReportData } from './run-report-data.ts';

/** Text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * JSON that is safe inside a `<script>` element: no `</script>` or `<!--` can end or bend
 * it, since every `<` is written as its escape (JSON.parse reads it back unchanged).
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * Script text to inline: a `</script` inside it would end the element early, and a
 * `sourceMappingURL` would have developer tools fetch a file the page does not carry.
 */
function inlineScript(source: string): string {
  if (/<\/script/i.test(source))
    throw new Error('the charting library contains "</script" and cannot be inlined as is');
  return source.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

// Runs in the page: builds every chart from its JSON config, adding the callbacks that JSON
// cannot carry. Animation is off so a chart is drawn when its constructor returns (printing,
// and the headless test that reads the canvases at once).
const PAGE_SCRIPT = `
(function () {
  var report = JSON.parse(document.getElementById('sluice-report-data').textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  report.charts.forEach(function (spec) {
    if (!spec.config) return;
    var config = spec.config;
    var options = config.options;
    options.plugins = options.plugins || {};
    options.plugins.tooltip = options.plugins.tooltip || {};
    options.plugins.tooltip.callbacks = {
      label: function (context) {
        var raw = context.raw;
        if (raw && typeof raw === 'object' && raw.unit) return raw.unit + ': ' + raw.tip;
        return context.dataset.label + ': ' + context.formattedValue;
      },
    };
    if (spec.laneLabels) {
      options.scales.y.ticks.callback = function (value) {
        return spec.laneLabels[value] === undefined ? '' : spec.laneLabels[value];
      };
    }
    new Chart(document.getElementById(spec.id), config);
  });
  document.documentElement.setAttribute('data-charts-drawn', String(report.charts.filter(function (c) { return c.config; }).length));
})();
`;

const STYLE = `
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #111827; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin: 2rem 0 .3rem; }
  .sub { color: #4b5563; margin-top: 0; } .caption { color: #374151; font-size: .9rem; margin: .2rem 0 .6rem; }
  .note { color: #6b7280; font-style: italic; }
  .chart { position: relative; height: 340px; }
  table { border-collapse: collapse; font-size: .9rem; } td, th { border-bottom: 1px solid #e5e7eb; padding: .25rem .8rem .25rem 0; text-align: left; vertical-align: top; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .6rem; margin: 1rem 0; }
  .kpi { background: #f3f4f6; border-radius: 6px; padding: .5rem .7rem; } .kpi b { display: block; font-size: 1.15rem; }
  .failed { color: #b91c1c; } details { font-size: .85rem; color: #374151; margin-top: .5rem; }
  code { font-size: .85em; }
`;

const num = (n: number) => n.toLocaleString('en-US');

/** The headline numbers: from the summary when the run finished, else from its state. */
function kpis(data: RunReportData): [string, string][] {
  const { run, summary } = data;
  const started = Date.parse(run.startedAt);
  const finished = run.finishedAt ? Date.parse(run.finishedAt) : undefined;
  const rows: [string, string][] = [
    ['status', run.status],
    [
      'units',
      `${num(summary?.counts.units ?? run.totalUnits)}${run.failedUnits ? ` (${run.failedUnits} failed)` : ''}`,
    ],
  ];
  if (finished !== undefined) rows.push(['duration', `${((finished - started) / 1000).toFixed(2)} s`]);
  if (summary) {
    rows.push(['records', num(summary.counts.records)], ['rejected', num(summary.counts.rejected)]);
    if (summary.counts.chunks > 0 || summary.stats.realTokens > 0)
      rows.push(
        ['chunks embedded', num(summary.counts.embedded)],
        ['unchanged (skipped)', num(summary.counts.skippedUnchanged)],
        ['tokens', num(summary.stats.realTokens)],
      );
    if (summary.counts.scored > 0) rows.push(['scored', num(summary.counts.scored)]);
    rows.push(
      ['endpoint calls', num(summary.stats.endpointCalls)],
      ['throttled', num(summary.stats.throttled)],
    );
    if (summary.cost)
      rows.push(['cost (USD)', `$${summary.cost.total.toFixed(6)}${summary.cost.estimate ? ' est.' : ''}`]);
  } else {
    rows.push(['units done', `${num(run.doneUnits)} of ${num(run.totalUnits)}`]);
  }
  return rows;
}

function chartSection(chart: ReportChart, data: RunReportData): string {
  const body = chart.config
    ? `<p class="caption">${escapeHtml(chart.caption)}</p><div class="chart"${chart.height ? ` style="height: ${chart.height}px"` : ''}><canvas id="${escapeHtml(chart.id)}" role="img" aria-label="${escapeHtml(chart.title)}"></canvas></div>`
    : `<p class="note" id="${escapeHtml(chart.id)}-note">${escapeHtml(chart.note ?? '')}</p>`;
  let extra = '';
  if (chart.id === 'rejects' && data.rejects.length > 0)
    extra = `<details><summary>An example of each kind</summary><table><tr><th>kind</th><th>records</th><th>example reason</th></tr>${data.rejects
      .map(
        (r) =>
          `<tr><td>${escapeHtml(r.kind)}</td><td class="n">${num(r.count)}</td><td>${escapeHtml(r.example)}</td></tr>`,
      )
      .join('')}</table></details>`;
  const cost = data.summary?.cost;
  if (chart.id === 'cost' && cost)
    extra = `<details><summary>How each part is counted</summary><table>${(
      ['endpoint', 'lambda', 'requests', 'storage'] as const
    )
      .map((p) => `<tr><th>${p}</th><td>${escapeHtml(cost.basis[p])}</td></tr>`)
      .join('')}</table></details>`;
  return `<section id="section-${escapeHtml(chart.id)}"><h2>${escapeHtml(chart.title)}</h2>${body}${extra}</section>`;
}

/**
 * The run report as one self-contained HTML page: the charting library and the run's numbers
 * are inline, and the page's Content-Security-Policy allows no request at all, so it opens
 * the same from a laptop, an S3 download or an air-gapped machine.
 * @param chartJs the source of Chart.js's UMD build (see readChartJsUmd).
 */
export function renderRunReportHtml(data: RunReportData, chartJs: string): string {
  const charts = reportCharts(data);
  const { run, summary } = data;
  const failed = summary?.failedUnits ?? [];
  const failedBlock =
    failed.length === 0
      ? ''
      : `<section><h2 class="failed">Failed units</h2><table><tr><th>unit</th><th>last error</th></tr>${failed
          .map((f) => `<tr><td>${escapeHtml(f.unitId)}</td><td>${escapeHtml(f.lastError ?? '')}</td></tr>`)
          .join('')}</table></section>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sluice report">
<title>Sluice run ${escapeHtml(run.runId)} (${escapeHtml(run.pipeline)})</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Run ${escapeHtml(run.runId)}</h1>
<p class="sub">pipeline <b>${escapeHtml(run.pipeline)}</b> · trigger ${escapeHtml(run.trigger)} · started ${escapeHtml(run.startedAt)}${run.finishedAt ? ` · finished ${escapeHtml(run.finishedAt)}` : ' · still running'} · report made ${escapeHtml(data.generatedAt)}</p>
<div class="kpis">${kpis(data)
    .map(([k, v]) => `<div class="kpi">${escapeHtml(k)}<b>${escapeHtml(v)}</b></div>`)
    .join('')}</div>
${failedBlock}
${charts.map((c) => chartSection(c, data)).join('\n')}
<script type="application/json" id="sluice-report-data">${scriptJson({ runId: run.runId, charts })}</script>
<script>${inlineScript(chartJs)}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
