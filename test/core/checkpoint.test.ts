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
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { stopAfterAsks } from '../incremental/factories.ts';
import { lengthVector } from '../support/length-vector.ts';
import { jsonl, pipelineConfig } from './factories.ts';

const RUN_ID = 'r-20261128T120000Z-c0ffee';

class EchoEndpoint implements EmbeddingEndpoint {
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    stats.endpointCalls += 1;
    return inputs.map((t) => lengthVector(t));
  }
}

class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  finalizeRequests: string[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize(runId: string) {
    this.finalizeRequests.push(runId);
  }
}

describe('checkpoints before the time limit', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  const config = pipelineConfig({ batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 } });
  const docs = Array.from({ length: 120 }, (_, i) => ({
    id: `d${i}`,
    text: `document ${i} `.repeat(1 + (i % 7)),
  }));

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-ckpt-'));
    store = new MemoryObjectStore(97);
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const deps = (overrides: { runs?: RunStore } = {}) => ({
    store,
    runs: overrides.runs ?? runs,
    queue,
    endpoint: new EchoEndpoint(),
    tokenCounter: new EstimatingTokenCounter(),
  });

  async function plan(files: Record<string, unknown[]>) {
    const keys = Object.keys(files);
    for (const key of keys) await store.put(key, jsonl(files[key]!));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys,
      now: new Date('2026-11-28T12:00:00Z'),
    });
    queue.units = [];
    return units;
  }

  async function embeddedDocIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const [key, body] of store.objects) {
      if (!key.startsWith('results/embeddings/')) continue;
      for (const row of await parquetReadObjects({ file: (body as Uint8Array).slice().buffer })) {
        if (row.chunk_index === 0) ids.push(String(row.doc_id));
      }
    }
    return ids.sort();
  }

  it('stops mid-range, hands the rest on as a new unit, and the run counts every record once', async () => {
    const [unit] = await plan({ 'incoming/docs/a.jsonl': docs });
    const first = await processUnit(deps(), config, unit!, { isLastAttempt: false, ...stopAfterAsks(39) });
    expect(first).toMatchObject({ status: 'succeeded', finishedRun: false, counts: { records: 40 } });
    expect(queue.units).toHaveLength(1);
    const continuation = queue.units[0]!;
    expect(continuation).toMatchObject({
      unitId: `${unit!.unitId}c`,
      sourceKey: unit!.sourceKey,
      firstLine: 41,
      byteEnd: unit!.byteEnd,
    });
    expect((await runs.getRun(RUN_ID))?.totalUnits).toBe(2);

    const second = await processUnit(deps(), config, continuation, { isLastAttempt: false });
    expect(second).toMatchObject({ status: 'succeeded', finishedRun: true, counts: { records: 80 } });
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:05:00Z'));
    expect(summary?.counts).toMatchObject({ records: 120, units: 2, rejected: 0 });
    expect(await embeddedDocIds()).toEqual(docs.map((d) => d.id).sort());
  });

  it('a retry after a crash ends where the first attempt handed on, wherever its own clock stops', async () => {
    const [unit] = await plan({ 'incoming/docs/a.jsonl': docs });
    let crash = true;
    const crashing = new Proxy(runs, {
      get(target, prop, receiver) {
        if (prop === 'completeUnit' && crash) {
          return async () => {
            crash = false;
            throw new Error('worker killed after checkpointing');
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    await expect(
      processUnit(deps({ runs: crashing }), config, unit!, { isLastAttempt: false, ...stopAfterAsks(29) }),
    ).rejects.toThrow('worker killed');
    // The retry's clock would stop later (at 90): it must end at record 30 all the same.
    const retry = await processUnit(deps(), config, unit!, { isLastAttempt: false, ...stopAfterAsks(89) });
    expect(retry).toMatchObject({ status: 'succeeded', counts: { records: 30 } });
    const sent = queue.units.filter((u) => u.unitId === `${unit!.unitId}c`);
    expect(sent.length).toBeGreaterThanOrEqual(1);
    expect(new Set(sent.map((u) => u.byteStart)).size).toBe(1);
    await processUnit(deps(), config, sent[0]!, { isLastAttempt: false });
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:05:00Z'));
    expect(summary?.counts).toMatchObject({ records: 120, units: 2 });
    expect(await embeddedDocIds()).toEqual(docs.map((d) => d.id).sort());
  });

  it('stops between packed files and hands the remaining files on', async () => {
    const files: Record<string, unknown[]> = {};
    for (let f = 0; f < 6; f += 1) files[`incoming/docs/small-${f}.jsonl`] = docs.slice(f * 20, f * 20 + 20);
    const units = await plan(files);
    expect(units).toHaveLength(1);
    const [unit] = units;
    expect(unit!.packed.length).toBe(5);
    // 19 questions inside the first file (records 2 to 20), the 20th before the next file.
    const first = await processUnit(deps(), config, unit!, { isLastAttempt: false, ...stopAfterAsks(19) });
    expect(first).toMatchObject({ status: 'succeeded', counts: { records: 20 } });
    const continuation = queue.units[0]!;
    expect(continuation.sourceKey).toBe(unit!.packed[0]!.key);
    expect(continuation.packed.map((p) => p.key)).toEqual(unit!.packed.slice(1).map((p) => p.key));
    await processUnit(deps(), config, continuation, { isLastAttempt: false });
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-28T12:05:00Z'));
    expect(summary?.counts).toMatchObject({ records: 120, units: 2 });
    expect(await embeddedDocIds()).toEqual(docs.map((d) => d.id).sort());
  });
});
