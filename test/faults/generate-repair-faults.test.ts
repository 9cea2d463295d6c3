import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RulesChatBackend } from '../../cli/model-server/rules-chat-backend.ts';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { runSummaryKey } from '../../shared/output/keys.ts';
import { type FaultEndpoint, startFaultEndpoint } from './support/fault-endpoint.ts';
import { type FaultRunReport, type FaultScenario, runWithFaults } from './support/fault-harness.ts';
import {
  GENERATE_FAULT_JOB,
  GENERATE_FAULT_PIPELINE as PIPELINE,
  promptCacheOf,
  type TicketInputs,
  ticketInputs,
} from './support/generate-tickets.ts';
import { readTable } from './support/run-tables.ts';

/** The backend breaks this share of JSON answers (a repair is a new draw) and throttles this share of requests. */
const INVALID_JSON_RATE = 0.3;
const THROTTLE_RATE = 0.1;
/** 1 + output.maxRepairs of the fault pipeline. */
const MAX_ATTEMPTS = 3;
const INVALID_AFTER_REPAIRS = new RegExp(`^invalid JSON output after ${MAX_ATTEMPTS} attempts: \\S`);

/** `<key>:<line>` -> ticket id, for every line that is a ticket that can be asked. */
function ticketLines(inputs: TicketInputs): Map<string, string> {
  const lines = new Map<string, string>();
  for (const file of inputs.files) {
    new TextDecoder()
      .decode(file.body)
      .split('\n')
      .forEach((line, i) => {
        try {
          const id = (JSON.parse(line) as { id?: string }).id;
          if (id !== undefined && inputs.good.has(id)) lines.set(`${file.key}:${i + 1}`, id);
        } catch {
          // A malformed line: one of the input's bad records.
        }
      });
  }
  return lines;
}

/** A table's rows without the run id, in a stable order. */
const withoutRunId = (rows: readonly Record<string, unknown>[]) =>
  rows
    .map(({ run_id: _run, ...row }) =>
      JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)),
    )
    .sort();

/**
 * Every ticket ends exactly once: in `generations` with a schema-valid answer and its
 * attempts (1 to 3; 0 when carried from an earlier run's cache) counted, or in `rejects` with the last validation error after the last
 * repair (tickets the backend always breaks among them); bad input records in `rejects`
 * with their reason. The summary, `summary.json` and the `runs` row count what the tables hold.
 */
async function expectEveryTicketOnce(report: FaultRunReport, label: string, fromCache = false) {
  const inputs = report.inputs as TicketInputs;
  const { store, runId, summary } = report;
  const generations = await readTable(store, 'generations', PIPELINE, runId);
  const rejects = await readTable(store, 'rejects', PIPELINE, runId);
  const lines = ticketLines(inputs);

  const answered = generations.map((row) => String(row.record_id));
  expect(answered.length, `${label}: no ticket answered twice`).toBe(new Set(answered).size);
  for (const row of generations) {
    const attempts = Number(row.attempts);
    // An answer carried from an earlier run's cache cost no attempt in this one.
    if (fromCache) expect(attempts, `${label}: attempts of ${row.record_id}`).toBe(0);
    else {
      expect(attempts, `${label}: attempts of ${row.record_id}`).toBeGreaterThanOrEqual(1);
      expect(attempts, `${label}: attempts of ${row.record_id}`).toBeLessThanOrEqual(MAX_ATTEMPTS);
    }
    expect(JSON.parse(String(row.output_json)), `${label}: answer of ${row.record_id}`).toEqual({
      priority: expect.stringMatching(/^(low|normal|high)$/),
      category: expect.stringMatching(/^(billing|account|bug|other)$/),
      summary: expect.any(String),
    });
    expect(row.source_key, `${label}: source of ${row.record_id}`).toBe(
      inputs.good.get(String(row.record_id)),
    );
  }

  const invalid: string[] = [];
  const rejected = new Set<string>();
  for (const row of rejects) {
    const at = `${row.source_key}:${Number(row.line)}`;
    expect(rejected.has(at), `${label}: ${at} rejected once`).toBe(false);
    rejected.add(at);
    const ticket = lines.get(at);
    if (ticket === undefined) {
      expect(String(row.reason), `${label}: reason of ${at}`).toContain(inputs.bad.get(at));
      continue;
    }
    expect(String(row.reason), `${label}: reason of ticket ${ticket}`).toMatch(INVALID_AFTER_REPAIRS);
    invalid.push(ticket);
  }
  expect(
    [...inputs.bad.keys()].filter((at) => !rejected.has(at)),
    `${label}: bad records rejected`,
  ).toEqual([]);
  expect(
    [...answered, ...invalid].sort(),
    `${label}: every ticket once, answered or rejected after its repairs`,
  ).toEqual([...inputs.good.keys()].sort());
  for (const ticket of inputs.alwaysInvalid)
    expect(invalid, `${label}: ${ticket} is always broken`).toContain(ticket);

  expect(summary.status, `${label}: status`).toBe('succeeded');
  expect(summary.counts, `${label}: summary counts`).toMatchObject({
    records: inputs.good.size + inputs.bad.size,
    rejected: rejects.length,
    failedUnits: 0,
  });
  expect((summary.counts.generated ?? 0) + (summary.counts.cached ?? 0), `${label}: answered`).toBe(
    generations.length,
  );
  const stored = JSON.parse(new TextDecoder().decode(await store.get(runSummaryKey(PIPELINE, runId))));
  const { finishedAt: _f, timings: _t, ...same } = summary;
  expect(stored, `${label}: summary.json`).toMatchObject(same);
  const runRows = await readTable(store, 'runs', PIPELINE, runId);
  expect(
    runRows.map((r) => [r.status, Number(r.records), Number(r.rejected)]),
    `${label}: runs row`,
  ).toEqual([['succeeded', summary.counts.records, summary.counts.rejected]]);
  return { generations, rejects, invalid };
}

const SCENARIOS: FaultScenario[] = [
  {
    seed: 301,
    store: 'memory',
    duplicateDelivery: true,
    crashBeforeWrite: 1,
    crashAfterWrite: 1,
    endpointFaultRate: 0.05,
  },
  { seed: 302, store: 'memory', duplicateDelivery: true, dieEveryDelivery: true, endpointFaultRate: 0.05 },
];

function describeScenario(s: FaultScenario): string {
  const faults = [
    s.duplicateDelivery && 'duplicate deliveries',
    s.crashBeforeWrite && `crash before write x${s.crashBeforeWrite}`,
    s.crashAfterWrite && `crash after write x${s.crashAfterWrite}`,
    s.endpointFaultRate && `${s.endpointFaultRate * 100}% throttles and 5xx at the endpoint`,
    s.dieEveryDelivery && 'a worker dies on every delivery, then redrive',
  ].filter(Boolean);
  return `seed ${s.seed}: ${faults.join(', ')}, then a re-run from the prompt cache`;
}

describe('generate with invalid-JSON repairs and throttling under faults', () => {
  let model: ModelServer;
  let endpoint: FaultEndpoint;
  let inputs: TicketInputs;
  let reference: FaultRunReport;
  let expected: Awaited<ReturnType<typeof expectEveryTicketOnce>>;

  beforeAll(async () => {
    model = await startModelServer({
      backend: new RulesChatBackend({ invalidJsonRate: INVALID_JSON_RATE, throttleRate: THROTTLE_RATE }),
    });
    endpoint = await startFaultEndpoint(model.url);
    inputs = ticketInputs(31, {
      prefix: `incoming/${PIPELINE}/`,
      splitRecords: 96,
      alwaysInvalidShare: 0.05,
    });
    reference = await runWithFaults({ seed: 300, store: 'memory' }, endpoint, {
      job: GENERATE_FAULT_JOB,
      inputs,
    });
    expected = await expectEveryTicketOnce(reference, 'fault-free run');
  }, 60_000);
  afterAll(async () => {
    await reference?.cleanup();
    await endpoint?.close();
    await model?.close();
  });

  it('has a reference with repairs that succeeded, tickets rejected after their last repair, and throttles', () => {
    const attempts = expected.generations.map((row) => Number(row.attempts));
    expect(attempts.filter((a) => a > 1).length).toBeGreaterThan(5);
    expect(expected.invalid.length).toBeGreaterThan(inputs.alwaysInvalid.size);
    expect(inputs.alwaysInvalid.size).toBeGreaterThan(0);
    expect(reference.units.length).toBeGreaterThanOrEqual(3);
    expect(reference.summary.stats.throttled).toBeGreaterThan(0);
    console.log(
      `reference: ${inputs.good.size} tickets, ${attempts.filter((a) => a > 1).length} answered after a repair, ` +
        `${expected.invalid.length} rejected after ${MAX_ATTEMPTS} attempts (${inputs.alwaysInvalid.size} always broken), ` +
        `${reference.summary.stats.throttled} throttled, ${reference.units.length} units`,
    );
  });

  it.each(SCENARIOS.map((s) => [describeScenario(s), s] as const))('%s', async (name, scenario) => {
    const label = name.split(':')[0]!;
    const report = await runWithFaults(scenario, endpoint, { job: GENERATE_FAULT_JOB, inputs });
    let rerun: FaultRunReport | undefined;
    try {
      expect(report.redrive, `${label}: redriven`).toBe(scenario.dieEveryDelivery ? 'failed-units' : 'none');
      const got = await expectEveryTicketOnce(report, label);
      // Retries, crashes and duplicates change neither an answer, nor its attempts, nor a reject's last error.
      expect(withoutRunId(got.generations), `${label}: generations`).toEqual(
        withoutRunId(expected.generations),
      );
      expect(withoutRunId(got.rejects), `${label}: rejects`).toEqual(withoutRunId(expected.rejects));
      expect(report.summary.counts, `${label}: counts`).toEqual(reference.summary.counts);
      // Tokens of every attempt, repairs and rejected tickets included, each counted once.
      expect(report.summary.stats.realTokens, `${label}: tokens`).toBe(reference.summary.stats.realTokens);
      expect(report.summary.counts.generated, `${label}: generated`).toBe(got.generations.length);

      // The cache holds each valid answer once, with its attempts; a rejected prompt is not cached.
      const cache = await promptCacheOf(report.store);
      expect([...cache.keys()].sort(), `${label}: prompt cache`).toEqual(
        got.generations.map((row) => String(row.prompt_sha256)).sort(),
      );
      for (const row of got.generations)
        expect(cache.get(String(row.prompt_sha256)), `${label}: cache of ${row.record_id}`).toMatchObject({
          output: row.output,
          attempts: Number(row.attempts),
          runId: report.runId,
        });

      // The same drop again: every answer from the cache, only the rejected tickets asked (and rejected) again.
      rerun = await runWithFaults({ seed: scenario.seed + 1_000, store: 'memory' }, endpoint, {
        job: GENERATE_FAULT_JOB,
        store: report.store,
        inputs,
      });
      const again = await expectEveryTicketOnce(rerun, `${label} re-run`, true);
      expect(rerun.summary.counts, `${label}: re-run counts`).toMatchObject({
        generated: 0,
        cached: got.generations.length,
        rejected: got.rejects.length,
      });
      expect(again.invalid.sort(), `${label}: rejected again`).toEqual(got.invalid.sort());
      const answeredTokens = got.generations.reduce(
        (sum, row) => sum + Number(row.prompt_tokens) + Number(row.completion_tokens),
        0,
      );
      expect(
        rerun.summary.stats.realTokens,
        `${label}: re-run spends only the rejected tickets' tokens`,
      ).toBe(report.summary.stats.realTokens - answeredTokens);
      expect((await promptCacheOf(report.store)).size, `${label}: cache after the re-run`).toBe(cache.size);
    } finally {
      await rerun?.cleanup();
      await report.cleanup();
    }
  });
});
