import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHome } from '../../cli/home.ts';
import { sampleDocuments } from '../../events/generate-samples.ts';
import type { RunSummary } from '../../shared/domain/types.ts';
import type { StoredUnit } from '../../shared/ports/run-store.ts';
import { writeRunReport } from '../../shared/report/load-run-report.ts';
import { jsonl } from '../core/factories.ts';
import { sluice } from '../support/cli.ts';

/** Debian's `chromium` package; CI installs it (.ci/run) and sets CI_REQUIRE_CHROMIUM. */
const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const NO_CHROMIUM = `${CHROMIUM} is missing: the report is not rendered here (install it with: apt-get install -y chromium)`;

/** What a chart holds in the page, as Chart.js keeps it. */
interface DrawnChart {
  labels: string[];
  datasets: { label: string; data: unknown[] }[];
  /** Pixels of the canvas whose colour is not a grey: the data marks, not axes, grid or text. */
  coloured: number;
  width: number;
}

/**
 * Runs in the page (a string: this project's TypeScript has no DOM types): each canvas's
 * chart data as Chart.js holds it, and how many of its pixels are coloured.
 */
const DRAWN_CHARTS = `(() => {
  const out = {};
  for (const canvas of document.querySelectorAll('canvas')) {
    const chart = Chart.getChart(canvas);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      const r = pixels[i], g = pixels[i + 1], b = pixels[i + 2], a = pixels[i + 3];
      if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured += 1;
    }
    out[canvas.id] = chart && {
      labels: chart.data.labels ?? [],
      datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
      coloured,
      width: canvas.width,
    };
  }
  return out;
})()`;

const sum = (values: readonly number[]) => values.reduce((s, v) => s + v, 0);

describe('sluice report', () => {
  let work: string;
  let home: string;
  let summary: RunSummary;
  let units: StoredUnit[];
  let file: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'sluice-report-'));
    home = path.join(work, 'home');
    const pipelines = path.join(work, 'pipelines');
    await mkdir(pipelines);
    // Small units, so the run has several on two threads.
    const config = JSON.parse(await readFile(path.join('pipelines', 'docs.json'), 'utf8'));
    await writeFile(
      path.join(pipelines, 'docs.json'),
      JSON.stringify({ ...config, planning: { ...config.planning, targetUnitTokens: 6000 } }),
    );
    const input = path.join(work, 'in');
    await mkdir(input);
    await writeFile(path.join(input, 'docs.jsonl'), jsonl(sampleDocuments(160, 19)));
    // Malformed lines, records without text and ids the other file holds too: rejects of several kinds.
    await copyFile('events/data/docs-bad-lines.jsonl', path.join(input, 'bad.jsonl'));
    const run = await sluice(
      'run',
      input,
      '--pipeline',
      'docs',
      '--pipelines',
      pipelines,
      '--home',
      home,
      '--threads',
      '2',
      '--json',
    );
    expect(run.code, run.err.join('\n')).toBe(0);
    summary = run.json<RunSummary>();
    units = await openHome(home).runs.listUnits(summary.runId);
    file = path.join(work, 'out', 'report.html');
    const report = await sluice('report', summary.runId, '--home', home, '--out', file);
    expect(report, report.err.join('\n')).toMatchObject({ code: 0, out: [file] });
  }, 180_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('ran a run worth drawing: several units on two workers, rejects of several kinds, a cost', () => {
    expect(summary.counts.units).toBeGreaterThanOrEqual(4);
    expect(summary.counts.rejected).toBeGreaterThanOrEqual(5);
    expect(summary.cost?.total).toBeGreaterThan(0);
    expect(new Set(units.map((u) => u.counts?.usage?.worker)).size).toBe(2);
    for (const unit of units) expect(unit.counts?.usage?.startedAt).toBeGreaterThan(0);
  });

  it('writes the report beside summary.json without --out, as writeRunReport does for finalize', async () => {
    const key = `runs/docs/${summary.runId}/report.html`;
    const result = await sluice('report', summary.runId, '--home', home);
    expect(result).toMatchObject({ code: 0, out: [path.join(home, 'bucket', key)] });
    const fromCli = await readFile(path.join(home, 'bucket', key), 'utf8');
    expect(fromCli).toContain(`<title>Sluice run ${summary.runId} (docs)</title>`);
    const home2 = openHome(home);
    expect(await writeRunReport(home2, summary.runId, { chartJs: '/* chart */' })).toBe(key);
    expect(await readFile(path.join(home, 'bucket', key), 'utf8')).toContain('<script>/* chart */');
  });

  it('refuses an unknown run or a missing RUN_ID in one line, exit 2', async () => {
    expect(await sluice('report', 'r-20200101T000000Z-000000', '--home', home)).toEqual({
      code: 2,
      out: [],
      err: [
        `sluice report: no run r-20200101T000000Z-000000 in ${path.resolve(home)} (list runs with: sluice status)`,
      ],
    });
    expect((await sluice('report', '--home', home)).err).toEqual([
      'sluice report: give one RUN_ID (list runs with: sluice status)',
    ]);
  });

  it('renders offline in headless Chromium, every chart drawn with the run’s numbers', async (context) => {
    if (!HAVE_CHROMIUM) {
      if (process.env.CI_REQUIRE_CHROMIUM) throw new Error(NO_CHROMIUM);
      console.warn(`skipped: ${NO_CHROMIUM}`);
      context.skip(NO_CHROMIUM);
    }
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const offFile: string[] = [];
      const problems: string[] = [];
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        offFile.push(url);
        return route.abort();
      });
      page.on('request', (request) => {
        if (!request.url().startsWith('file:')) offFile.push(request.url());
      });
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      await page.waitForSelector('html[data-charts-drawn]');

      const drawn = (await page.evaluate(DRAWN_CHARTS)) as Record<string, DrawnChart | undefined>;
      const chart = (id: string) => {
        const found = drawn[id];
        expect(found, `chart ${id}`).toBeDefined();
        // Bars, points and lines in the data's colours, not an empty frame.
        expect(found!.coloured, `coloured pixels of ${id}`).toBeGreaterThan(300);
        return found!;
      };
      expect(Object.keys(drawn).sort()).toEqual(
        ['cost', 'latency', 'padding', 'rejects', 'throughput', 'unit-cost', 'unit-timeline'].sort(),
      );

      const byId = new Map(units.map((u) => [u.unitId, u]));
      // Unit cost: one point per unit at (estimate, measured).
      const unitCost = chart('unit-cost').datasets[0]!.data as { x: number; y: number; unit: string }[];
      expect(unitCost.map((p) => [p.unit, p.x, p.y]).sort()).toEqual(
        units.map((u) => [u.unitId, u.estCost, u.actualCost]).sort(),
      );

      // Timeline: one segment per unit, from its start to its end on the run's clock, a dataset per worker.
      const origin = Date.parse(summary.startedAt);
      const timeline = chart('unit-timeline');
      expect(timeline.datasets).toHaveLength(2);
      const segments = new Map<string, number[]>();
      for (const dataset of timeline.datasets)
        for (const p of dataset.data as { x: number; unit?: string }[])
          if (p.unit) segments.set(p.unit, [...(segments.get(p.unit) ?? []), p.x]);
      expect(segments.size).toBe(units.length);
      for (const [unitId, [start, end]] of segments) {
        const usage = byId.get(unitId)!.counts!.usage!;
        expect(start).toBeCloseTo((usage.startedAt! - origin) / 1000, 3);
        expect(end).toBeCloseTo((usage.startedAt! + usage.workerMs - origin) / 1000, 3);
      }

      // Throughput: the rates over the bins add up to the run's records and tokens.
      const report = JSON.parse(
        await page.evaluate("document.getElementById('sluice-report-data').textContent"),
      ) as { charts: { id: string; binSeconds?: number }[] };
      const binSeconds = report.charts.find((c) => c.id === 'throughput')!.binSeconds!;
      const [records, tokens] = chart('throughput').datasets.map((d) =>
        sum((d.data as { y: number }[]).map((p) => p.y * binSeconds)),
      );
      expect(records).toBeCloseTo(summary.counts.records, 0);
      expect(tokens! / summary.stats.realTokens).toBeCloseTo(1, 5);

      // Padding: real tokens and padding per unit add up to the summary's real and padded tokens.
      const padding = chart('padding');
      const [real, pad] = padding.datasets.map((d) => sum(d.data as number[]));
      expect(real).toBe(summary.stats.realTokens);
      expect(real! + pad!).toBe(summary.stats.paddedTokens);

      // Latency: each unit's mean call, and the throttles and retries adding up to the summary's.
      const latency = chart('latency');
      const series = (label: string) => latency.datasets.find((d) => d.label === label)!.data as number[];
      expect(latency.labels.slice().sort()).toEqual(units.map((u) => u.unitId).sort());
      latency.labels.forEach((unitId, i) => {
        const usage = byId.get(unitId)!.counts!.usage!;
        expect(series('mean call ms')[i]).toBeCloseTo(usage.endpointCallMs / usage.endpointCalls!, 2);
        expect(series('longest call ms')[i]).toBe(usage.endpointMaxCallMs);
      });
      expect(sum(series('throttled'))).toBe(summary.stats.throttled);
      expect(sum(series('retries'))).toBe(summary.stats.retries);

      // Rejects: the kinds add up to the run's rejected records, as the rejects table has them.
      const rejects = chart('rejects');
      expect(sum(rejects.datasets[0]!.data as number[])).toBe(summary.counts.rejected);
      const table = (
        await sluice(
          'query',
          `select count(*) as n from rejects where run_id = '${summary.runId}'`,
          '--home',
          home,
          '--json',
        )
      ).json<{ n: number }[]>();
      expect(Number(table[0]!.n)).toBe(summary.counts.rejected);
      expect(rejects.labels).toEqual(expect.arrayContaining(['malformed JSON', 'duplicate id "…"']));

      // Cost: the summary's four parts, adding up to its total.
      const cost = chart('cost');
      expect(cost.labels).toEqual(['endpoint', 'lambda', 'requests', 'storage']);
      expect(cost.datasets[0]!.data).toEqual([
        summary.cost!.endpoint,
        summary.cost!.lambda,
        summary.cost!.requests,
        summary.cost!.storage,
      ]);
      expect(sum(cost.datasets[0]!.data as number[])).toBeCloseTo(summary.cost!.total, 6);

      expect(offFile).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
