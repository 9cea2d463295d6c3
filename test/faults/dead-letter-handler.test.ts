import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDeadLetterHandler } from '../../functions/dead-letter.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import {
  aLambdaContext,
  anSqsRecord,
  eventSample,
  localPorts,
  sqsEventOf,
  storeRunOf,
  testObservability,
  watchPorts,
} from '../functions/factories.ts';

/** The unit of `events/sqs-work-unit.json`, as it arrives in the work DLQ. */
const sampleUnit = (): WorkUnit =>
  JSON.parse(eventSample<{ Records: [{ body: string }] }>('sqs-work-unit.json').Records[0].body) as WorkUnit;
const deadLetter = (body = JSON.stringify(sampleUnit())) =>
  anSqsRecord(body, { receiveCount: 1, queue: 'sluice-work-dlq' });

/** The dead-letter handler over local ports: the run in a LocalRunStore, parts in memory, the recorded finalize queue. */
describe('dead-letter handler (work DLQ consumer)', () => {
  let ports: Awaited<ReturnType<typeof localPorts>>;
  const unit = sampleUnit();

  beforeEach(async () => {
    ports = await localPorts();
  });
  afterEach(() => ports.close());

  /**
   * The runs table as it is when a dead letter arrives: the unit is `running` (its worker
   * died) or already `failed`, and `terminalBefore` of `totalUnits` units are terminal
   * (the failed unit among them).
   */
  async function runsTable(options: {
    unit: 'running' | 'failed';
    terminalBefore: number;
    totalUnits: number;
  }) {
    const othersBefore = options.terminalBefore - (options.unit === 'failed' ? 1 : 0);
    await storeRunOf(ports.runs, unit, {
      totalUnits: options.totalUnits,
      othersEnded: Array.from({ length: othersBefore }, () => 'succeeded' as const),
    });
    await ports.runs.startUnit(unit.runId, unit.unitId);
    if (options.unit === 'failed')
      await ports.runs.failUnit(unit.runId, unit.unitId, 'endpoint sluice-docs-embed failed 2 attempts');
  }

  function setup() {
    const observability = testObservability();
    const handler = createDeadLetterHandler(ports, observability);
    return { handler, observability, ...watchPorts(ports) };
  }

  const storedUnit = async () => (await ports.runs.getUnit(unit.runId, unit.unitId))!;
  const storedRun = async () => (await ports.runs.getRun(unit.runId))!;

  it('marks failed a unit whose worker died on its last delivery and asks for finalize when that ends the run', async () => {
    await runsTable({ unit: 'running', terminalBefore: 2, totalUnits: 3 });
    const { handler, observability, runCalls, storeCalls } = setup();

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(runCalls().filter((c) => c === 'failUnit')).toHaveLength(1);
    // Marked failed and counted toward the run, once (failUnit is conditional on a unit not yet terminal).
    expect(await storedUnit()).toMatchObject({
      status: 'failed',
      lastError: expect.stringContaining(
        'the worker stopped on its last delivery without reporting an error',
      ),
    });
    expect(await storedRun()).toMatchObject({ status: 'running', doneUnits: 2, failedUnits: 1 });
    expect(ports.queue.finalizeRequests).toEqual([unit.runId]);
    expect(storeCalls()).not.toContain('put');
    expect(observability.metricTotals()).toMatchObject({ UnitsDeadLettered: 1 });
  });

  it('replaces a part the dead attempt wrote with an empty one, so its records are in no table', async () => {
    await runsTable({ unit: 'running', terminalBefore: 0, totalUnits: 3 });
    const embeddings = unitPartKey('embeddings', 'docs', unit.runId, unit.unitId);
    await ports.store.put(embeddings, new Uint8Array(4096));
    const { handler } = setup();
    const put = vi.spyOn(ports.store, 'put');

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(put).toHaveBeenCalledTimes(1);
    expect(put.mock.calls[0]![0]).toBe(embeddings);
    const body = ports.store.objects.get(embeddings)!;
    expect(await parquetReadObjects({ file: body.slice().buffer })).toEqual([]);
    expect(ports.queue.finalizeRequests).toEqual([]);
  });

  it('changes nothing for a unit its last delivery already marked failed', async () => {
    await runsTable({ unit: 'failed', terminalBefore: 1, totalUnits: 3 });
    const { handler, observability } = setup();

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ports.queue.finalizeRequests).toEqual([]);
    expect(await storedUnit()).toMatchObject({
      status: 'failed',
      lastError: 'endpoint sluice-docs-embed failed 2 attempts',
    });
    expect(await storedRun()).toMatchObject({ doneUnits: 0, failedUnits: 1 });
    expect(observability.metricTotals().UnitsDeadLettered).toBeUndefined();
    expect(observability.logged('info').join('\n')).toContain('already terminal');
  });

  it('drops a dead letter whose unit is not in the runs table (failUnit needs the unit to exist)', async () => {
    const { handler, observability } = setup();

    const response = await handler(sqsEventOf(deadLetter()), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(await ports.runs.getRun(unit.runId)).toBeUndefined();
    expect(ports.queue.isEmpty).toBe(true);
    expect(observability.logged('warn').join('\n')).toContain('not in the runs table');
  });

  it('logs a message that is not a unit whole, counts it and drops it', async () => {
    const { handler, observability, runCalls } = setup();
    const bad = deadLetter('{"kind":"something else"}');

    const response = await handler(sqsEventOf(bad), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(runCalls()).toEqual([]);
    expect(observability.metricTotals()).toMatchObject({ DeadLettersUnreadable: 1 });
    expect(observability.logged('error').join('\n')).toContain('{\\"kind\\":\\"something else\\"}');
  });

  it('reports the message for another try when the runs table cannot be updated', async () => {
    await runsTable({ unit: 'running', terminalBefore: 0, totalUnits: 3 });
    const { handler } = setup();
    vi.spyOn(ports.runs, 'failUnit').mockRejectedValue(
      new Error('Rate exceeded (ProvisionedThroughputExceededException, simulated)'),
    );
    const record = deadLetter();

    const response = await handler(sqsEventOf(record), aLambdaContext('sluice-dead-letter'));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
  });
});
