import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RulesChatBackend } from '../../cli/model-server/rules-chat-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { runSummaryKey } from '../../shared/output/keys.ts';
import { type FaultEndpoint, startFaultEndpoint } from './support/fault-endpoint.ts';
import { type FaultRunReport, type FaultScenario, runWithFaults } from './support/fault-harness.ts';
import { GENERATE_FAULT_JOB, GENERATE_FAULT_PIPELINE, promptCacheOf } from './support/generate-tickets.ts';
import { readTable } from './support/run-tables.ts';

const PIPELINE = GENERATE_FAULT_PIPELINE;
const TEN_PERCENT = 0.1;

/**
 * Every good ticket is in `generations` once (with a schema-valid answer), every bad one in
 * `rejects` once with its reason, nothing else in either; the summary, `summary.json` and
 * the `runs` row count what the tables hold.
 */
async function expectEveryTicketOnce(report: FaultRunReport, label: string) {
  const { inputs, summary, store, runId } = report;
  const generations = await readTable(store, 'generations', PIPELINE, runId);
  const rejects = await readTable(store, 'rejects', PIPELINE, runId);

  const ids = generations.map((row) => String(row.record_id));
  expect(ids.length, `${label}: no ticket answered twice`).toBe(new Set(ids).size);
  expect([...ids].sort(), `${label}: tickets in generations`).toEqual([...inputs.good.keys()].sort());
  for (const row of generations) {
    expect(row.source_key, `${label}: source of ${row.record_id}`).toBe(
      inputs.good.get(String(row.record_id)),
    );
    expect(JSON.parse(String(row.output_json)), `${label}: answer of ${row.record_id}`).toMatchObject({
      priority: expect.any(String),
      category: expect.any(String),
    });
  }

  const rejected = rejects.map((row) => `${row.source_key}:${Number(row.line)}`);
  expect(rejected.length, `${label}: no record rejected twice`).toBe(new Set(rejected).size);
  expect([...rejected].sort(), `${label}: records in rejects`).toEqual([...inputs.bad.keys()].sort());
  for (const row of rejects) {
    const key = `${row.source_key}:${Number(row.line)}`;
    expect(String(row.reason), `${label}: reason of ${key}`).toContain(inputs.bad.get(key));
  }

  expect(summary.status, `${label}: status`).toBe('succeeded');
  expect(summary.failedUnits).toEqual([]);
  expect(summary.counts, `${label}: summary counts`).toMatchObject({
    records: inputs.good.size + inputs.bad.size,
    rejected: rejects.length,
    units: report.units.length,
    failedUnits: 0,
  });
  expect((summary.counts.generated ?? 0) + (summary.counts.cached ?? 0), `${label}: answered`).toBe(
    generations.length,
  );
  const stored = JSON.parse(new TextDecoder().decode(await store.get(runSummaryKey(PIPELINE, runId))));
  const { finishedAt: _f, timings: _t, ...same } = summary;
  expect(stored, `${label}: summary.json`).toMatchObject(same);
  const rows = await readTable(store, 'runs', PIPELINE, runId);
  expect(
    rows.map((r) => ({ status: r.status, records: Number(r.records), rejected: Number(r.rejected) })),
  ).toEqual([{ status: 'succeeded', records: summary.counts.records, rejected: summary.counts.rejected }]);
  return generations;
}

const SCENARIOS: FaultScenario[] = [
  {
    seed: 101,
    store: 'memory',
    duplicateDelivery: true,
    crashBeforeWrite: 1,
    crashAfterWrite: 2,
    endpointFaultRate: TEN_PERCENT,
  },
  { seed: 102, store: 'fs', crashAfterWrite: 2, lastTwoTogether: true, endpointFaultRate: TEN_PERCENT },
  { seed: 104, store: 'memory', dieEveryDelivery: true, endpointFaultRate: TEN_PERCENT },
  {
    seed: 103,
    store: 'memory',
    dieEveryDelivery: true,
    duplicateDelivery: true,
    endpointFaultRate: TEN_PERCENT,
  },
];

function describeScenario(s: FaultScenario): string {
  const faults = [
    s.crashBeforeWrite && `crash before write x${s.crashBeforeWrite}`,
    s.crashAfterWrite && `crash after write x${s.crashAfterWrite}`,
    s.duplicateDelivery && 'duplicate deliveries',
    s.lastTwoTogether && 'last two units at once',
    s.endpointFaultRate && `${s.endpointFaultRate * 100}% throttles and 5xx`,
    s.dieEveryDelivery && 'a worker dies on every delivery, then redrive',
  ].filter(Boolean);
  return `seed ${s.seed} (${s.store}): ${faults.join(', ')}`;
}

describe('generate under faults: every ticket once in generations or rejects, one cache entry per answer', () => {
  let model: ModelServer;
  let endpoint: FaultEndpoint;
  const totals = { throttled: 0, failed: 0, crashes: 0, deaths: 0, redriven: 0 };

  beforeAll(async () => {
    model = await startModelServer({ backend: new RulesChatBackend() });
    endpoint = await startFaultEndpoint(model.url);
  });
  afterAll(async () => {
    await endpoint?.close();
    await model?.close();
  });

  it.each(SCENARIOS.map((s) => [describeScenario(s), s] as const))('%s', async (_name, scenario) => {
    const label = `seed ${scenario.seed}`;
    const report = await runWithFaults(scenario, endpoint, { job: GENERATE_FAULT_JOB });
    let rerun: FaultRunReport | undefined;
    try {
      totals.throttled += endpoint.counts.throttled;
      totals.failed += endpoint.counts.failed;
      totals.crashes += report.injected.crashes;
      totals.deaths += report.injected.deaths;
      expect(report.units.length, `${label}: the drop is cut into several units`).toBeGreaterThanOrEqual(3);
      expect(report.finalizeMoves, `${label}: finalize moved the run once`).toBe(1);
      if (scenario.dieEveryDelivery) {
        totals.redriven += 1;
        const failed = report.failedSummary!;
        expect(failed.status).toBe('failed');
        expect(failed.failedUnits).toHaveLength(1);
        expect(report.resultRowsBeforeRedrive, `${label}: generations before the redrive`).toBe(
          (failed.counts.generated ?? 0) + (failed.counts.cached ?? 0),
        );
        expect(report.tablesBeforeRedrive?.rejects, `${label}: rejects before the redrive`).toBe(
          failed.counts.rejected,
        );
        expect(report.finalizeMovesAfterRedrive, `${label}: finalize after the redrive`).toBe(1);
        expect(report.finishClaims, `${label}: finish claims (run, then redrive)`).toBe(2);
      } else {
        expect(report.finishClaims, `${label}: finish claims`).toBe(1);
        expect(report.deadLetters, `${label}: dead letters`).toBe(0);
      }
      if (scenario.duplicateDelivery)
        expect(report.deliveries).toBeGreaterThanOrEqual(2 * report.units.length);

      const generations = await expectEveryTicketOnce(report, label);
      // A first run over a fresh store: every answer was generated, none came from an earlier run.
      expect(report.summary.counts.generated, `${label}: generated`).toBe(generations.length);
      expect(report.summary.counts.cached ?? 0, `${label}: cached`).toBe(0);

      // One cache entry per generated prompt: crashes and duplicates neither lost nor doubled one.
      const cache = await promptCacheOf(report.store);
      expect([...cache.keys()].sort(), `${label}: prompt cache`).toEqual(
        generations.map((row) => String(row.prompt_sha256)).sort(),
      );
      for (const row of generations) {
        const entry = cache.get(String(row.prompt_sha256))!;
        expect(entry, `${label}: cache entry of ${row.record_id}`).toMatchObject({
          output: row.output,
          runId: report.runId,
        });
      }

      // The same drop again, no faults: nothing is generated, every answer comes from the cache.
      rerun = await runWithFaults({ seed: scenario.seed + 1_000, store: 'memory' }, endpoint, {
        job: GENERATE_FAULT_JOB,
        store: report.store,
        inputs: report.inputs,
      });
      expect(endpoint.counts.calls, `${label}: endpoint calls of the re-run`).toBe(0);
      const again = await expectEveryTicketOnce(rerun, `${label} re-run`);
      expect(rerun.summary.counts, `${label}: re-run counts`).toMatchObject({
        generated: 0,
        cached: report.inputs.good.size,
        rejected: report.inputs.bad.size,
      });
      expect(again.every((row) => Number(row.attempts) === 0)).toBe(true);
      expect((await promptCacheOf(report.store)).size, `${label}: cache after the re-run`).toBe(cache.size);
    } finally {
      await rerun?.cleanup();
      await report.cleanup();
    }
  });

  it('injected every kind of fault across the runs', () => {
    expect(totals.throttled).toBeGreaterThan(0);
    expect(totals.failed).toBeGreaterThan(0);
    expect(totals.crashes).toBeGreaterThanOrEqual(
      SCENARIOS.reduce((n, s) => n + (s.crashBeforeWrite ?? 0) + (s.crashAfterWrite ?? 0), 0),
    );
    expect(totals.deaths).toBeGreaterThanOrEqual(5);
    expect(totals.redriven).toBe(SCENARIOS.filter((s) => s.dieEveryDelivery).length);
  });
});
