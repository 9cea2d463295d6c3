import type { SQSEvent } from 'aws-lambda';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ModelServer, startModelServer } from '../../cli/model-server/server.ts';
import { createWorkHandler } from '../../functions/work.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { BreakableEmbedder } from '../support/breakable-embedder.ts';
import { someCounts } from '../support/run-fixtures.ts';
import {
  aLambdaContext,
  anEnvironment,
  anSqsRecord,
  aPipeline,
  aWorkEvent,
  eventSample,
  localPorts,
  sqsEventOf,
  storeRunOf,
  testObservability,
  watchPorts,
} from './factories.ts';

const MAX_RECEIVE_COUNT = 3;
const SOURCE_KEY = 'incoming/docs/my report 2026.jsonl';
/** The unit of `events/sqs-work-unit.json`. */
const sampleUnit = (): WorkUnit =>
  JSON.parse(eventSample<SQSEvent>('sqs-work-unit.json').Records[0]!.body) as WorkUnit;

const SOURCE = [
  '{"id":"a","text":"Alpha bravo charlie."}',
  `{"id":"b","text":"${'Long document sentence with several words in it. '.repeat(20).trim()}"}`,
  'not json at all',
  '{"id":"c","text":"Delta echo foxtrot."}',
].join('\n');

/**
 * The work handler over local ports: the run in a LocalRunStore, the source and parts in
 * memory, the recorded work and finalize queues and redelivery, and the deployed
 * SageMaker adapters calling the local model server. Assertions read the ports' state.
 */
describe('work handler', () => {
  let backend: BreakableEmbedder;
  let model: ModelServer;
  let ports: Awaited<ReturnType<typeof localPorts>>;
  /** The sample unit, its range the whole source, pinned to the version the store holds. */
  let unit: WorkUnit;

  beforeAll(async () => {
    // 8 dimensions, as the pipeline says; while broken every call fails.
    backend = new BreakableEmbedder(8, { message: 'ServiceUnavailable (simulated)' });
    model = await startModelServer({ backend });
  });
  afterAll(() => model?.close());

  beforeEach(async () => {
    backend.broken = false;
    const env = anEnvironment([aPipeline('docs', { workers: { maxReceiveCount: MAX_RECEIVE_COUNT } })]);
    ports = await localPorts(env, model.url);
    await ports.store.put(SOURCE_KEY, SOURCE);
    const { version } = (await ports.store.head(SOURCE_KEY, { version: true }))!;
    unit = { ...sampleUnit(), byteEnd: Buffer.byteLength(SOURCE), sourceVersion: version! };
  });
  afterEach(() => ports.close());

  /**
   * The run as the unit's delivery finds it: `totalUnits` units, `terminalBefore` of the
   * others already done (the last of them failed when `lastFailed`), and this unit
   * `pending` or already `succeeded` by another delivery.
   */
  async function runsTable(options: {
    totalUnits: number;
    terminalBefore?: number;
    lastFailed?: boolean;
    unitStatus?: 'pending' | 'succeeded';
  }) {
    const terminal = options.terminalBefore ?? 0;
    const othersEnded = Array.from({ length: terminal }, (_, i) =>
      options.lastFailed && i === terminal - 1 ? ('failed' as const) : ('succeeded' as const),
    );
    await storeRunOf(ports.runs, unit, { totalUnits: options.totalUnits, othersEnded });
    if (options.unitStatus === 'succeeded')
      await ports.runs.completeUnit(unit.runId, unit.unitId, {
        counts: someCounts(),
        actualCost: 1,
        outputKeys: [],
      });
  }

  /** The handler, with every call it makes to the run store and the bucket watched from here on. */
  function setup() {
    const observability = testObservability();
    const handler = createWorkHandler(ports, observability);
    const { runCalls, storeCalls } = watchPorts(ports);
    const modelCallsBefore = model.stats().requests;
    const modelCalls = () => model.stats().requests - modelCallsBefore;
    return { handler, observability, runCalls, storeCalls, modelCalls };
  }

  const callsOf = (calls: () => string[], name: string) => calls().filter((c) => c === name);
  const storedUnit = async () => (await ports.runs.getUnit(unit.runId, unit.unitId))!;
  const storedRun = async () => (await ports.runs.getRun(unit.runId))!;

  async function partRows(key: string): Promise<Record<string, unknown>[]> {
    const body = ports.store.objects.get(key);
    expect(body, `part ${key}`).toBeDefined();
    const file = body!.buffer.slice(body!.byteOffset, body!.byteOffset + body!.byteLength) as ArrayBuffer;
    return parquetReadObjects({ file });
  }

  describe('when the unit succeeds', () => {
    it('writes one Parquet part per table, completes the unit and counts its records', async () => {
      await runsTable({ totalUnits: 3 });
      const { handler, observability, runCalls } = setup();
      const readRange = vi.spyOn(ports.store, 'readRange');
      const put = vi.spyOn(ports.store, 'put');

      const response = await handler(aWorkEvent([unit]), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      // The source is read at the version the unit was planned on.
      expect(readRange).toHaveBeenCalled();
      for (const [key, , , options] of readRange.mock.calls) {
        expect(key).toBe(SOURCE_KEY);
        expect(options).toMatchObject({ version: unit.sourceVersion });
      }
      const embeddingsKey = unitPartKey('embeddings', 'docs', unit.runId, unit.unitId);
      const rejectsKey = unitPartKey('rejects', 'docs', unit.runId, unit.unitId);
      expect(put).toHaveBeenCalledWith(
        embeddingsKey,
        expect.any(Uint8Array),
        'application/vnd.apache.parquet',
      );
      const rows = await partRows(embeddingsKey);
      expect([...new Set(rows.map((r) => r.doc_id))]).toEqual(['a', 'b', 'c']);
      expect(rows.filter((r) => r.doc_id === 'b').length).toBeGreaterThan(1);
      const rejects = await partRows(rejectsKey);
      expect(rejects).toEqual([
        expect.objectContaining({ line: 3n, reason: expect.stringContaining('malformed JSON') }),
      ]);

      expect(callsOf(runCalls, 'completeUnit')).toHaveLength(1);
      expect(await storedUnit()).toMatchObject({
        status: 'succeeded',
        counts: { records: 4 },
        outputKeys: [embeddingsKey, rejectsKey],
      });
      expect(await storedRun()).toMatchObject({ status: 'running', doneUnits: 1, failedUnits: 0 });
      expect(ports.queue.isEmpty).toBe(true);
      expect(observability.metricTotals()).toMatchObject({
        UnitsSucceeded: 1,
        RecordsProcessed: 4,
        RecordsRejected: 1,
        EndpointThrottled: 0,
      });
    });

    it('asks for finalize when its completion finishes the run', async () => {
      await runsTable({ totalUnits: 3, terminalBefore: 2 });
      const { handler, observability } = setup();
      const completeUnit = vi.spyOn(ports.runs, 'completeUnit');

      const response = await handler(aWorkEvent([unit]), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      // This completion is the one that claimed the run's finalize.
      expect(completeUnit).toHaveBeenCalledTimes(1);
      await expect(completeUnit.mock.results[0]!.value).resolves.toMatchObject({
        recorded: true,
        finishedRun: true,
      });
      expect(observability.logged('info').join('\n')).toContain('"finishedRun":true');
      expect(await storedRun()).toMatchObject({ status: 'running', doneUnits: 3 });
      expect(ports.queue.finalizeRequests).toEqual([unit.runId]);
      expect(ports.queue.sentUnits).toEqual([]);
      expect(ports.queue.sentLater).toEqual([]);
    });

    it('does nothing for a redelivery of a unit another delivery already finished', async () => {
      await runsTable({ totalUnits: 3, unitStatus: 'succeeded' });
      const { handler, observability, runCalls, storeCalls, modelCalls } = setup();

      const response = await handler(aWorkEvent([unit]), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(storeCalls()).toEqual([]);
      expect(modelCalls()).toBe(0);
      expect(callsOf(runCalls, 'completeUnit')).toHaveLength(0);
      expect(await storedRun()).toMatchObject({ doneUnits: 1, failedUnits: 0 });
      expect(ports.queue.isEmpty).toBe(true);
      expect(observability.logged('info').join('\n')).toContain('already finished');
    });

    it('asks for finalize again when a redelivery finds every unit done but the run still running', async () => {
      await runsTable({ totalUnits: 3, unitStatus: 'succeeded', terminalBefore: 2, lastFailed: true });
      expect(await storedRun()).toMatchObject({ status: 'running', doneUnits: 2, failedUnits: 1 });
      const { handler } = setup();

      const response = await handler(aWorkEvent([unit]), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [] });
      expect(ports.queue.finalizeRequests).toEqual([unit.runId]);
    });
  });

  describe('when the endpoint fails', () => {
    beforeEach(() => {
      backend.broken = true;
    });

    it('records the error and reports the message for redelivery on an attempt before the last', async () => {
      await runsTable({ totalUnits: 3 });
      const { handler, observability, runCalls, storeCalls } = setup();
      const event = aWorkEvent([unit], MAX_RECEIVE_COUNT - 1);

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(callsOf(runCalls, 'recordUnitError')).toHaveLength(1);
      expect((await storedUnit()).lastError).toContain('endpoint sluice-docs-embed failed 2 attempts');
      expect(callsOf(runCalls, 'failUnit')).toHaveLength(0);
      expect(await storedUnit()).toMatchObject({ status: 'running', attempts: 1 });
      expect(callsOf(storeCalls, 'put')).toEqual([]);
      expect(ports.queue.isEmpty).toBe(true);
      // It comes back after its backoff (receive count 2: 60 s), not the hour-long visibility timeout.
      const record = event.Records[0]!;
      expect(ports.redelivery.postponed).toEqual([
        { queueArn: record.eventSourceARN, receiptHandle: record.receiptHandle, receiveCount: 2 },
      ]);
      expect(observability.logged('info').join('\n')).toContain('"retryInSeconds":60');
      expect(observability.metricTotals()).toMatchObject({ UnitAttemptsFailed: 1 });
      expect(observability.logged('warn').join('\n')).toContain('SQS will redeliver');
    });

    it.each([MAX_RECEIVE_COUNT, MAX_RECEIVE_COUNT + 1])(
      'marks the unit failed on the last delivery (receive count %i) and asks for finalize when that ends the run',
      async (receiveCount) => {
        await runsTable({ totalUnits: 3, terminalBefore: 2 });
        const { handler, observability, runCalls } = setup();
        const event = aWorkEvent([unit], receiveCount);

        const response = await handler(event, aLambdaContext());

        expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
        expect(callsOf(runCalls, 'failUnit')).toHaveLength(1);
        expect((await storedUnit()).status).toBe('failed');
        // Counted toward the run: a failed unit and every unit terminal.
        expect(await storedRun()).toMatchObject({ status: 'running', doneUnits: 2, failedUnits: 1 });
        expect(ports.queue.finalizeRequests).toEqual([unit.runId]);
        expect(observability.metricTotals()).toMatchObject({ UnitAttemptsFailed: 1, UnitsFailed: 1 });
        expect(observability.logged('error').join('\n')).toContain('last delivery');
      },
    );
  });

  describe('when the source changed since the run was planned', () => {
    it('fails the unit on its first delivery, naming the change, and asks for finalize when that ends the run', async () => {
      await runsTable({ totalUnits: 3, terminalBefore: 2 });
      // The pinned version is gone (deleted, or the object replaced with versioning suspended).
      ports.store.objects.delete(SOURCE_KEY);
      const { handler, runCalls, modelCalls } = setup();
      const event = aWorkEvent([unit], 1);

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(callsOf(runCalls, 'failUnit')).toHaveLength(1);
      // How S3 names it (s3://bucket/key) is the S3 adapter's test.
      expect(await storedUnit()).toMatchObject({
        status: 'failed',
        lastError: expect.stringContaining(`${SOURCE_KEY} was deleted since the run was planned`),
      });
      expect(modelCalls()).toBe(0);
      expect(ports.queue.finalizeRequests).toEqual([unit.runId]);
    });
  });

  describe('when a port fails', () => {
    it('reports the message when the runs table cannot be updated', async () => {
      await runsTable({ totalUnits: 3 });
      const { handler, storeCalls } = setup();
      vi.spyOn(ports.runs, 'startUnit').mockRejectedValue(
        new Error('ProvisionedThroughputExceededException (simulated)'),
      );
      const event = aWorkEvent([unit]);

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(storeCalls()).toEqual([]);
    });

    it('records the error when a Parquet part cannot be written, and reports the message', async () => {
      await runsTable({ totalUnits: 3 });
      const { handler, runCalls } = setup();
      vi.spyOn(ports.store, 'put').mockRejectedValue(new Error('SlowDown (simulated)'));
      const event = aWorkEvent([unit]);

      const response = await handler(event, aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[0]!.messageId }] });
      expect(callsOf(runCalls, 'recordUnitError')).toHaveLength(1);
      expect(callsOf(runCalls, 'completeUnit')).toHaveLength(0);
      expect(await storedUnit()).toMatchObject({
        status: 'running',
        lastError: expect.stringContaining('SlowDown'),
      });
      expect(await storedRun()).toMatchObject({ doneUnits: 0, failedUnits: 0 });
    });
  });

  describe('when a message is not a unit', () => {
    it.each([
      ['not JSON', () => '{"runId": ', 'work unit message: body is not JSON'],
      ['missing fields', () => '{"runId":"r-20260301T100002Z-3f9a1c"}', 'work unit message: unitId:'],
      [
        'a bad run id',
        () => JSON.stringify({ ...sampleUnit(), runId: 'yesterday' }),
        'work unit message: runId: must be a run id',
      ],
      [
        'an unknown pipeline',
        () => JSON.stringify({ ...sampleUnit(), pipeline: 'nightly' }),
        'pipeline nightly is not configured (known: docs)',
      ],
    ])('fails only that message (%s) and logs why', async (_case, body, reason) => {
      await runsTable({ totalUnits: 3 });
      const { handler, observability, runCalls } = setup();
      const bad = anSqsRecord(body());
      const good = aWorkEvent([unit]).Records[0]!;

      const response = await handler(sqsEventOf(bad, good), aLambdaContext());

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: bad.messageId }] });
      expect(callsOf(runCalls, 'completeUnit')).toHaveLength(1);
      expect(await storedRun()).toMatchObject({ doneUnits: 1 });
      const errors = observability.logged('error').join('\n');
      expect(errors).toContain('work message is not a unit this deployment can run');
      expect(errors).toContain(reason);
      expect(errors).toContain(bad.messageId);
    });
  });
});
