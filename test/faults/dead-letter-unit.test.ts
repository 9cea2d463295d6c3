import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { deadLetterUnit } from '../../shared/work/dead-letter-unit.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';

class RecordingQueue implements WorkQueue {
  finalizeRequests: string[] = [];
  async sendUnits() {}
  async requestFinalize(runId: string) {
    this.finalizeRequests.push(runId);
  }
}

/** Embeds every input as a fixed vector; `hold` keeps calls waiting until released. */
class StubEndpoint implements EmbeddingEndpoint {
  hold: Promise<void> | undefined;
  onCall: (() => void) | undefined;
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    stats.endpointCalls += 1;
    this.onCall?.();
    if (this.hold) await this.hold;
    return inputs.map((t) => [t.length, 1, 0, 0]);
  }
}

const RUN_ID = 'r-20261128T120000Z-dead01';
const config = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: 4 },
  workers: { maxReceiveCount: 2 },
});
const rowsOf = async (store: MemoryObjectStore, key: string) =>
  parquetReadObjects({ file: (store.objects.get(key)! as Uint8Array).slice().buffer });

describe('deadLetterUnit', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let endpoint: StubEndpoint;
  let units: readonly WorkUnit[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-dead-'));
    store = new MemoryObjectStore();
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    endpoint = new StubEndpoint();
    await store.put('incoming/docs/a.jsonl', jsonl([{ id: 'a', text: 'alpha beta' }, '{"broken']));
    await store.put('incoming/docs/b.jsonl', jsonl([{ id: 'b', text: 'gamma delta' }]));
    ({ units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl', 'incoming/docs/b.jsonl'],
      now: new Date('2026-11-28T12:00:00Z'),
    }));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const deps = () => ({ store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() });
  const unitOf = async (unitId: string) => (await runs.listUnits(RUN_ID)).find((u) => u.unitId === unitId)!;

  it('fails a unit whose worker died on its last delivery, and asks for finalize when that ends the run', async () => {
    for (const unit of units.slice(1)) await processUnit(deps(), config, unit, { isLastAttempt: false });
    const dying = units[0]!;
    // Two deliveries that died without reporting anything: the unit is left `running`.
    await runs.startUnit(RUN_ID, dying.unitId);
    await runs.startUnit(RUN_ID, dying.unitId);
    queue.finalizeRequests = [];

    const outcome = await deadLetterUnit(deps(), dying, { receiveCount: 2 });

    expect(outcome).toEqual({ status: 'failed', finishedRun: true });
    expect(queue.finalizeRequests).toEqual([RUN_ID]);
    expect(await unitOf(dying.unitId)).toMatchObject({
      status: 'failed',
      attempts: 2,
      lastError: expect.stringContaining('dead-lettered after 2 deliveries: the worker stopped'),
    });
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:05:00Z'));
    expect(summary).toMatchObject({ status: 'failed', counts: { failedUnits: 1 } });
    expect(summary?.failedUnits).toEqual([
      { unitId: dying.unitId, lastError: expect.stringContaining('stopped') },
    ]);
  });

  it('takes back the parts an attempt wrote before it died, so the failed unit is in neither table', async () => {
    const unit = units[0]!;
    // The attempt wrote its parts, then died before completing the unit.
    const written = await processUnit({ ...deps(), runs: withCompleteUnitCrashing(runs) }, config, unit, {
      isLastAttempt: false,
    }).catch((error: Error) => error.message);
    expect(written).toBe('worker killed after writing its parts');
    const embeddingsKey = unitPartKey('embeddings', 'docs', RUN_ID, unit.unitId);
    expect((await rowsOf(store, embeddingsKey)).length).toBeGreaterThan(0);

    await deadLetterUnit(deps(), unit, { receiveCount: 2 });

    expect(await rowsOf(store, embeddingsKey)).toEqual([]);
    expect(await rowsOf(store, unitPartKey('rejects', 'docs', RUN_ID, unit.unitId))).toEqual([]);
  });

  it('leaves a unit that its last delivery already failed as it is, with its own error', async () => {
    const unit = units[0]!;
    await runs.startUnit(RUN_ID, unit.unitId);
    await runs.failUnit(RUN_ID, unit.unitId, 'EndpointUnavailable: 503 on every attempt');

    expect(await deadLetterUnit(deps(), unit, { receiveCount: 2 })).toEqual({
      status: 'already-terminal',
      unitStatus: 'failed',
    });
    expect(await unitOf(unit.unitId)).toMatchObject({
      lastError: 'EndpointUnavailable: 503 on every attempt',
    });
    expect((await runs.getRun(RUN_ID))?.failedUnits).toBe(1);
  });

  it('leaves a unit that succeeded (a late delivery) with its parts', async () => {
    const unit = units[0]!;
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    const key = unitPartKey('embeddings', 'docs', RUN_ID, unit.unitId);
    const before = await rowsOf(store, key);

    expect(await deadLetterUnit(deps(), unit)).toEqual({
      status: 'already-terminal',
      unitStatus: 'succeeded',
    });
    expect(await rowsOf(store, key)).toEqual(before);
    expect(await unitOf(unit.unitId)).toMatchObject({ status: 'succeeded', lastError: null });
  });

  it('asks for finalize again when the run is stranded (the worker that finished it died before asking)', async () => {
    for (const unit of units) await runs.failUnit(RUN_ID, unit.unitId, 'dead-lettered');
    queue.finalizeRequests = [];

    await deadLetterUnit(deps(), units[0]!);

    expect(queue.finalizeRequests).toEqual([RUN_ID]);
  });

  it('ignores a dead letter of a unit or run that does not exist', async () => {
    expect(await deadLetterUnit(deps(), { runId: RUN_ID, unitId: 'u99999', pipeline: 'docs' })).toEqual({
      status: 'unknown',
    });
    expect(
      await deadLetterUnit(deps(), {
        runId: 'r-20261128T120000Z-ffffff',
        unitId: 'u00000',
        pipeline: 'docs',
      }),
    ).toEqual({ status: 'unknown' });
  });

  it('takes back the parts of a delivery that completes after its unit was dead-lettered', async () => {
    const unit = units[0]!;
    let release!: () => void;
    endpoint.hold = new Promise((resolve) => {
      release = resolve;
    });
    const called = new Promise<void>((resolve) => {
      endpoint.onCall = resolve;
    });
    const slow = processUnit(deps(), config, unit, { isLastAttempt: false });
    await called;
    // While the slow delivery waits on the endpoint, its message is dead-lettered.
    await deadLetterUnit(deps(), unit, { reason: 'still running after the visibility timeout' });
    release();

    expect(await slow).toEqual({ status: 'duplicate' });
    expect(await rowsOf(store, unitPartKey('embeddings', 'docs', RUN_ID, unit.unitId))).toEqual([]);
    expect(await unitOf(unit.unitId)).toMatchObject({
      status: 'failed',
      lastError: 'still running after the visibility timeout',
    });
  });
});

/** The run store of a worker that is killed right after its parts are written. */
function withCompleteUnitCrashing(runs: LocalRunStore): LocalRunStore {
  return new Proxy(runs, {
    get(target, property, receiver) {
      if (property === 'completeUnit')
        return async () => {
          throw new Error('worker killed after writing its parts');
        };
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
