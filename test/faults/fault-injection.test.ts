import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { expectEveryRecordOnce } from './support/check-run.ts';
import { type FaultEndpoint, startFaultEndpoint } from './support/fault-endpoint.ts';
import {
  FAULT_PIPELINE,
  type FaultRunReport,
  type FaultScenario,
  runWithFaults,
  SLOW_CALLS,
} from './support/fault-harness.ts';
import { readTable } from './support/run-tables.ts';

const TEN_PERCENT = 0.1;

/**
 * Seeded runs over mixed inputs (a split JSONL with bad lines and id-less records, a CSV
 * with a quoted newline and a ragged row, small packed JSONL files, a gzipped JSONL, a
 * text document), each with some faults injected.
 */
const SCENARIOS: FaultScenario[] = [
  { seed: 1, store: 'memory' },
  { seed: 2, store: 'memory', crashBeforeWrite: 2 },
  { seed: 3, store: 'memory', crashAfterWrite: 2 },
  { seed: 4, store: 'fs', crashBeforeWrite: 1, crashAfterWrite: 2 },
  { seed: 5, store: 'memory', duplicateDelivery: true },
  { seed: 6, store: 'fs', duplicateDelivery: true, crashAfterWrite: 2 },
  { seed: 7, store: 'memory', lastTwoTogether: true },
  { seed: 8, store: 'memory', lastTwoTogether: true, duplicateDelivery: true },
  { seed: 9, store: 'memory', endpointFaultRate: TEN_PERCENT },
  { seed: 10, store: 'fs', endpointFaultRate: TEN_PERCENT, duplicateDelivery: true },
  { seed: 11, store: 'memory', slowEndpoint: true },
  { seed: 12, store: 'memory', slowEndpoint: true, endpointFaultRate: TEN_PERCENT },
  { seed: 13, store: 'fs', slowEndpoint: true, crashAfterWrite: 1 },
  { seed: 14, store: 'memory', dieEveryDelivery: true },
  { seed: 15, store: 'fs', dieEveryDelivery: true, duplicateDelivery: true },
  {
    seed: 16,
    store: 'memory',
    crashBeforeWrite: 1,
    crashAfterWrite: 1,
    duplicateDelivery: true,
    endpointFaultRate: TEN_PERCENT,
  },
  {
    seed: 17,
    store: 'memory',
    crashAfterWrite: 2,
    lastTwoTogether: true,
    endpointFaultRate: TEN_PERCENT,
    duplicateDelivery: true,
  },
  { seed: 18, store: 'fs', lastTwoTogether: true, endpointFaultRate: TEN_PERCENT },
  { seed: 19, store: 'memory', crashAfterWrite: 1, slowEndpoint: true, endpointFaultRate: TEN_PERCENT },
  {
    seed: 20,
    store: 'memory',
    splitRecords: 220,
    crashBeforeWrite: 2,
    crashAfterWrite: 2,
    duplicateDelivery: true,
    endpointFaultRate: TEN_PERCENT,
    slowEndpoint: true,
  },
  { seed: 21, store: 'memory', dieEveryDelivery: true, endpointFaultRate: TEN_PERCENT, crashBeforeWrite: 1 },
  {
    seed: 22,
    store: 'fs',
    splitRecords: 160,
    lastTwoTogether: true,
    crashBeforeWrite: 1,
    slowEndpoint: true,
  },
];

function describeScenario(s: FaultScenario): string {
  const faults = [
    s.crashBeforeWrite && `crash before write x${s.crashBeforeWrite}`,
    s.crashAfterWrite && `crash after write x${s.crashAfterWrite}`,
    s.duplicateDelivery && 'duplicate deliveries',
    s.lastTwoTogether && 'last two units at once',
    s.endpointFaultRate && `${s.endpointFaultRate * 100}% throttles and 5xx`,
    s.slowEndpoint && 'slow endpoint past the visibility timeout, the unit delivered again meanwhile',
    s.dieEveryDelivery && 'a worker dies on every delivery, then redrive',
  ].filter(Boolean);
  return `seed ${s.seed} (${s.store}): ${faults.length > 0 ? faults.join(', ') : 'no faults'}`;
}

describe('fault injection: every record once in results or rejects, every run finished once', () => {
  let model: ModelServer;
  let endpoint: FaultEndpoint;
  const totals = { throttled: 0, failed: 0, slowed: 0, crashes: 0, heldTogether: 0, deaths: 0, redriven: 0 };

  beforeAll(async () => {
    model = await startModelServer({ backend: new HashEmbedder(16) });
    endpoint = await startFaultEndpoint(model.url);
  });
  afterAll(async () => {
    await endpoint?.close();
    await model?.close();
  });

  it.each(SCENARIOS.map((s) => [describeScenario(s), s] as const))('%s', async (_name, scenario) => {
    const report: FaultRunReport = await runWithFaults(scenario, endpoint);
    try {
      const label = `seed ${scenario.seed}`;
      totals.throttled += endpoint.counts.throttled;
      totals.failed += endpoint.counts.failed;
      totals.slowed += report.injected.slowAnswers.held;
      totals.crashes += report.injected.crashes;
      totals.heldTogether += report.injected.heldTogether;
      totals.deaths += report.injected.deaths;
      expect(report.units.length, `${label}: the drop is cut into several units`).toBeGreaterThanOrEqual(3);
      // Each slow answer came only after its delivery's message had been delivered again.
      const slowCalls = scenario.slowEndpoint ? SLOW_CALLS : 0;
      expect(report.injected.slowAnswers, `${label}: slow answers`).toEqual({
        held: slowCalls,
        deliveredAgain: slowCalls,
        deadLettered: 0,
      });
      if (scenario.slowEndpoint) expect(report.deliveries).toBeGreaterThan(report.units.length);

      if (scenario.dieEveryDelivery) {
        totals.redriven += 1;
        // Before the redrive: failed, the dead unit listed with why, its records in neither table.
        const failed = report.failedSummary!;
        expect(failed.status).toBe('failed');
        expect(failed.failedUnits).toEqual([
          {
            unitId: expect.any(String),
            lastError: expect.stringContaining('worker stopped on its last delivery'),
          },
        ]);
        expect(report.tablesBeforeRedrive).toEqual({
          embeddings: failed.counts.chunks,
          rejects: failed.counts.rejected,
        });
        expect(failed.counts.records).toBeLessThan(report.inputs.good.size + report.inputs.bad.size);
        expect(report.finalizeMovesAfterRedrive, `${label}: finalize after the redrive`).toBe(1);
        expect(report.finishClaims, `${label}: finish claims (run, then redrive)`).toBe(2);
      } else {
        expect(report.finishClaims, `${label}: finish claims`).toBe(1);
        expect(report.deadLetters, `${label}: dead letters`).toBe(0);
      }
      expect(report.finalizeMoves, `${label}: finalize moved the run once`).toBe(1);
      if (scenario.duplicateDelivery)
        expect(report.deliveries).toBeGreaterThanOrEqual(2 * report.units.length);

      await expectEveryRecordOnce({
        runId: report.runId,
        pipeline: FAULT_PIPELINE,
        store: report.store,
        inputs: report.inputs,
        summary: report.summary,
        units: report.units.length,
        label,
      });
      if (report.failedSummary) {
        // The redrive did not write the healthy units again: their rows are as many as before.
        const embeddings = await readTable(report.store, 'embeddings', FAULT_PIPELINE, report.runId);
        expect(embeddings.length).toBeGreaterThan(report.tablesBeforeRedrive!.embeddings);
      }
    } finally {
      await report.cleanup();
    }
  });

  it('injected every kind of fault across the runs', () => {
    expect(totals.throttled).toBeGreaterThan(0);
    expect(totals.failed).toBeGreaterThan(0);
    expect(totals.slowed).toBe(SLOW_CALLS * SCENARIOS.filter((s) => s.slowEndpoint).length);
    expect(totals.crashes).toBeGreaterThanOrEqual(
      SCENARIOS.reduce((n, s) => n + (s.crashBeforeWrite ?? 0) + (s.crashAfterWrite ?? 0), 0),
    );
    expect(totals.heldTogether).toBeGreaterThanOrEqual(2);
    expect(totals.deaths).toBeGreaterThanOrEqual(5 * SCENARIOS.filter((s) => s.dieEveryDelivery).length);
    expect(totals.redriven).toBe(SCENARIOS.filter((s) => s.dieEveryDelivery).length);
  });
});
