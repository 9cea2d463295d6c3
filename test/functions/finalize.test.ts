import type { SQSEvent } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { comparisonDeadline, createFinalizeHandler } from '../../functions/finalize.ts';
import { emptyCounts, type RunSummary, type UnitCounts } from '../../shared/domain/types.ts';
import { runRowKey, runSummaryKey } from '../../shared/output/keys.ts';
import { runReportKey } from '../../shared/report/load-run-report.ts';
import { aRun, aUnit } from '../support/run-fixtures.ts';
import {
  aFinalizeEvent,
  aLambdaContext,
  anSqsRecord,
  eventSample,
  localPorts,
  sqsEventOf,
  testObservability,
  watchPorts,
} from './factories.ts';

const NOW = new Date('2026-03-01T10:00:42.000Z');
/** The run of `events/sqs-finalize.json`. */
const sampleEvent = () => eventSample<SQSEvent>('sqs-finalize.json');
const RUN_ID = (JSON.parse(sampleEvent().Records[0]!.body) as { runId: string }).runId;
const SOURCE_KEY = 'incoming/docs/my report 2026.jsonl';

type UnitEnd =
  | { readonly status: 'succeeded'; readonly counts: Partial<UnitCounts> }
  | { readonly status: 'failed'; readonly lastError: string }
  | { readonly status: 'running' };

/**
 * The finalize handler over local ports: the run in a LocalRunStore, summary and parts in
 * memory, capacity leases and the control plane local. Assertions read the stored run,
 * its summary and the objects written.
 */
describe('finalize handler', () => {
  let ports: Awaited<ReturnType<typeof localPorts>>;

  beforeEach(async () => {
    ports = await localPorts();
  });
  afterEach(() => ports.close());

  /** The run of the sample request, its two units ended as given (by default both succeeded). */
  async function runsTable(
    units: readonly [UnitEnd, UnitEnd] = [
      { status: 'succeeded', counts: { records: 40, rejected: 2, chunks: 55, embedded: 55 } },
      { status: 'succeeded', counts: { records: 21, rejected: 3, chunks: 30, embedded: 30 } },
    ],
  ) {
    const run = aRun({
      runId: RUN_ID,
      startedAt: '2026-03-01T10:00:02.000Z',
      inputs: [SOURCE_KEY],
      totalUnits: units.length,
    });
    const descriptors = units.map((_, i) =>
      aUnit(RUN_ID, i, {
        unitId: `u0000${i}`,
        sourceKey: SOURCE_KEY,
        byteStart: 0,
        byteEnd: 100,
        estCost: 25,
      }),
    );
    await ports.runs.createRun(run, descriptors);
    for (const [i, end] of units.entries()) {
      const unitId = descriptors[i]!.unitId;
      await ports.runs.startUnit(RUN_ID, unitId);
      if (end.status === 'succeeded')
        await ports.runs.completeUnit(RUN_ID, unitId, {
          counts: { ...emptyCounts(), ...end.counts },
          actualCost: 25,
          outputKeys: [],
        });
      if (end.status === 'failed') await ports.runs.failUnit(RUN_ID, unitId, end.lastError);
    }
    return run;
  }

  function setup() {
    const observability = testObservability();
    const handler = createFinalizeHandler(ports, { ...observability, now: () => NOW });
    return { handler, observability, ...watchPorts(ports) };
  }

  const writtenSummary = (): RunSummary => {
    const body = ports.store.objects.get(runSummaryKey('docs', RUN_ID));
    expect(body, 'summary.json').toBeDefined();
    return JSON.parse(new TextDecoder().decode(body)) as RunSummary;
  };
  /** The run store calls that change something (reads left out). */
  const writesIn = (calls: string[]) => calls.filter((c) => !/^(get|list)/.test(c));

  it('merges the units into the summary, writes summary.json and the runs row, and marks the run succeeded', async () => {
    await runsTable();
    const { handler, observability, runCalls } = setup();
    const put = vi.spyOn(ports.store, 'put');

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(writtenSummary()).toMatchObject({
      runId: RUN_ID,
      status: 'succeeded',
      finishedAt: NOW.toISOString(),
      counts: { records: 61, rejected: 5, units: 2, failedUnits: 0, chunks: 85, embedded: 85 },
    });
    expect(put).toHaveBeenCalledWith(
      runRowKey('docs', RUN_ID),
      expect.any(Uint8Array),
      'application/vnd.apache.parquet',
    );
    // The run moved from running to succeeded once, with the summary written.
    expect(writesIn(runCalls())).toEqual(['finishRun']);
    expect(await ports.runs.getRun(RUN_ID)).toMatchObject({
      status: 'succeeded',
      finishedAt: NOW.toISOString(),
    });
    expect(await ports.runs.getSummary(RUN_ID)).toEqual(writtenSummary());
    expect(observability.metricTotals()).toEqual({ RunsSucceeded: 1 });
    expect(observability.logged('info').join('\n')).toContain('run succeeded');
  });

  it('writes the run report beside summary.json once the run is finished', async () => {
    await runsTable();
    const { handler, observability } = setup();

    await handler(sampleEvent(), aLambdaContext());

    const key = runReportKey('docs', RUN_ID);
    expect(key).toBe(runSummaryKey('docs', RUN_ID).replace('summary.json', 'report.html'));
    const html = new TextDecoder().decode(ports.store.objects.get(key));
    expect(html).toContain('<canvas');
    expect(html).toContain(RUN_ID);
    expect(observability.logged('info').join('\n')).toContain('run report written');
  });

  it('finishes the run when the report cannot be written, and says so', async () => {
    await runsTable();
    // The store's own put, before setup() watches it.
    const put = ports.store.put.bind(ports.store);
    const { handler, observability } = setup();
    vi.spyOn(ports.store, 'put').mockImplementation(async (...args: Parameters<typeof put>) => {
      if (args[0].endsWith('report.html')) throw new Error('AccessDenied: s3:PutObject');
      return put(...args);
    });

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(await ports.runs.getRun(RUN_ID)).toMatchObject({ status: 'succeeded' });
    expect(observability.metricTotals()).toEqual({ RunsSucceeded: 1 });
    expect(observability.logged('warn').join('\n')).toContain('could not write the run report');
  });

  it('marks the run failed, naming the failed units, when a unit was dead-lettered', async () => {
    await runsTable([
      { status: 'succeeded', counts: { records: 40 } },
      { status: 'failed', lastError: 'endpoint sluice-docs-embed failed 7 attempts' },
    ]);
    const { handler, observability } = setup();

    await handler(sampleEvent(), aLambdaContext());

    expect(writtenSummary()).toMatchObject({
      status: 'failed',
      counts: { records: 40, failedUnits: 1 },
      failedUnits: [{ unitId: 'u00001', lastError: 'endpoint sluice-docs-embed failed 7 attempts' }],
    });
    expect(await ports.runs.getRun(RUN_ID)).toMatchObject({ status: 'failed' });
    expect(observability.metricTotals()).toEqual({ RunsFailed: 1 });
  });

  it('does nothing for a repeated request of a run that is already finished', async () => {
    await runsTable();
    const first = createFinalizeHandler(ports, { ...testObservability(), now: () => NOW });
    expect(await first(sampleEvent(), aLambdaContext())).toEqual({ batchItemFailures: [] });
    const bucketBefore = new Map(ports.store.objects);
    const { handler, observability, runCalls, storeCalls } = setup();
    const put = vi.spyOn(ports.store, 'put');

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    // Nothing is counted, moved or merged again: the run's files are only put back as the move
    // stored them (a finalize that lost the move may have written its own copy over them).
    expect(writesIn(runCalls())).toEqual([]);
    expect(storeCalls().filter((c) => c !== 'put')).toEqual([]);
    expect(put.mock.calls.map(([key]) => key).sort()).toEqual(
      [runSummaryKey('docs', RUN_ID), runRowKey('docs', RUN_ID)].sort(),
    );
    expect(new Map(ports.store.objects)).toEqual(bucketBefore);
    expect(observability.metricTotals()).toEqual({});
    expect(observability.logged('info').join('\n')).toContain('already finished');
  });

  it('counts nothing when another finalize moved the run first (the conditional write lost)', async () => {
    await runsTable();
    const { handler, observability } = setup();
    const finishRun = ports.runs.finishRun.bind(ports.runs);
    // Another delivery of the request moves the run just before this one tries.
    vi.spyOn(ports.runs, 'finishRun').mockImplementationOnce(async (runId, summary) => {
      expect(await finishRun(runId, summary)).toBe(true);
      return finishRun(runId, summary);
    });

    const response = await handler(sampleEvent(), aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [] });
    expect(observability.metricTotals()).toEqual({});
  });

  it('reports the request for redelivery while a unit is still open', async () => {
    await runsTable([{ status: 'succeeded', counts: { records: 40 } }, { status: 'running' }]);
    const { handler, observability, runCalls, storeCalls } = setup();
    const event = sampleEvent();

    const response = await handler(event, aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
    expect(storeCalls()).toEqual([]);
    expect(writesIn(runCalls())).toEqual([]);
    expect(await ports.runs.getRun(RUN_ID)).toMatchObject({ status: 'running' });
    expect(observability.logged('error').join('\n')).toContain('still has 1 unfinished units');
  });

  it.each([
    ['the run store read of the run', 'getRun'],
    ['the run store listing of the units', 'listUnits'],
    ['the object store write', 'put'],
    ['the run store move of the run', 'finishRun'],
  ] as const)('reports only the affected request when %s fails', async (_call, method) => {
    await runsTable();
    const { handler } = setup();
    const port = method === 'put' ? ports.store : ports.runs;
    vi.spyOn(port as unknown as Record<string, () => Promise<unknown>>, method).mockRejectedValue(
      new Error(`${method} failed (simulated)`),
    );
    const event = sampleEvent();

    const response = await handler(event, aLambdaContext());

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
  });

  it('fails a malformed request and a request for a run that does not exist, and logs why', async () => {
    await runsTable();
    const { handler, observability } = setup();
    const malformed = anSqsRecord('{"kind":"finalise","runId":"r-1"}', { queue: 'sluice-finalize' });
    const missing = aFinalizeEvent('r-20260301T000000Z-000000').Records[0]!;
    const good = sampleEvent().Records[0]!;

    const response = await handler(sqsEventOf(malformed, missing, good), aLambdaContext());

    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(
      [malformed.messageId, missing.messageId].sort(),
    );
    const errors = observability.logged('error').join('\n');
    expect(errors).toContain('finalize message is malformed');
    expect(errors).toContain('finalize message: kind:');
    expect(errors).toContain('run r-20260301T000000Z-000000 does not exist');
    expect(observability.metricTotals()).toEqual({ RunsSucceeded: 1 });
  });
});

describe('comparisonDeadline', () => {
  const contextWith = (remaining: number) => ({
    ...aLambdaContext(),
    getRemainingTimeInMillis: () => remaining,
  });

  it('leaves a third of the remaining time, at least two minutes, after the last source comparison starts', () => {
    const before = Date.now();
    const fifteenMinutes = comparisonDeadline(contextWith(900_000))!;
    expect(fifteenMinutes - before).toBeGreaterThanOrEqual(600_000);
    expect(fifteenMinutes - Date.now()).toBeLessThanOrEqual(600_000);
    const threeMinutes = comparisonDeadline(contextWith(180_000))!;
    expect(threeMinutes - Date.now()).toBeLessThanOrEqual(60_000);
    expect(threeMinutes - before).toBeGreaterThanOrEqual(60_000);
  });

  it('sets none without a Lambda context', () => {
    expect(comparisonDeadline(undefined)).toBeUndefined();
  });
});
