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
import type { RunStore } from '../../shared/ports/run-store.ts';
import { retractUnitParts } from '../../shared/work/dead-letter-unit.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { crashingOnce, DAY_MS, dailyRunId, HashModel, hashVector, T0 } from '../support/hash-model.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';
import { RecordingQueue, stopAfterAsks } from './factories.ts';

const DIMENSION = 16;

describe('carried vectors through retries, checkpoints and retracted parts', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let index: MemoryChunkIndex;
  let model: HashModel;
  const config = pipelineConfig({
    endpoint: { name: 'test-embed', dimension: DIMENSION },
    chunking: { maxTokens: 16, overlapTokens: 4 },
    batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
  });
  const docs = Array.from({ length: 60 }, (_, i) => ({
    id: `d${i}`,
    text: `document ${i} says ${'something rather long '.repeat(1 + (i % 5))}`,
  }));
  const edited = (ids: readonly number[]) =>
    docs.map((d, i) => (ids.includes(i) ? { ...d, text: `${d.text} and one more sentence for run two` } : d));

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-carry-units-'));
    store = new MemoryObjectStore(97);
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    index = new MemoryChunkIndex();
    model = new HashModel(DIMENSION);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const deps = (runStore: RunStore = runs) => ({
    store,
    runs: runStore,
    queue,
    endpoint: model,
    tokenCounter: new EstimatingTokenCounter(),
    chunkIndex: index,
  });

  async function plan(n: number, records: readonly unknown[]): Promise<WorkUnit> {
    await store.put('incoming/docs/a.jsonl', jsonl(records));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: dailyRunId(n),
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date(T0 + n * DAY_MS),
    });
    queue.units = [];
    expect(units).toHaveLength(1);
    return units[0]!;
  }

  const finalize = (n: number) =>
    finalizeRun(
      { store, runs, chunkIndex: index, pipelines: new Map([['docs', config]]) },
      dailyRunId(n),
      new Date(T0 + n * DAY_MS + 60_000),
    );

  /** Runs `records` start to end in one delivery and finalizes it. */
  async function plainRun(n: number, records: readonly unknown[]) {
    const unit = await plan(n, records);
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    return finalize(n);
  }

  /** Every row of run `n`'s embeddings: each vector must be the model's of its own chunk text. */
  async function rowsOf(n: number) {
    const rows: Record<string, unknown>[] = [];
    for (const [key, body] of store.objects) {
      if (!key.startsWith('results/embeddings/') || !key.includes(dailyRunId(n))) continue;
      rows.push(...(await parquetReadObjects({ file: (body as Uint8Array).slice().buffer })));
    }
    return rows;
  }
  async function expectTrueVectors(n: number, chunks: number) {
    const rows = await rowsOf(n);
    expect(rows).toHaveLength(chunks);
    for (const row of rows)
      expect(Array.from(row.embedding as ArrayLike<number>), String(row.chunk_id)).toEqual(
        hashVector(String(row.chunk_text), DIMENSION),
      );
  }

  it('a delivery that died after recording its entries: the retry writes true vectors, and the next run carries them', async () => {
    const first = await plainRun(0, docs);
    const chunks = first!.counts.chunks;
    const unit = await plan(1, edited([3, 30]));
    await expect(
      processUnit(deps(crashingOnce(runs)), config, unit, { isLastAttempt: false }),
    ).rejects.toThrow('worker killed');
    const retried = await processUnit(deps(), config, unit, { isLastAttempt: false });
    expect(retried.status).toBe('succeeded');
    const second = await finalize(1);
    expect(second!.counts.embedded + second!.counts.skippedUnchanged).toBe(second!.counts.chunks);
    await expectTrueVectors(1, second!.counts.chunks);

    const before = model.chunks;
    const third = await plainRun(2, edited([3, 30]));
    expect(third!.counts).toMatchObject({ chunks: second!.counts.chunks, embedded: 0 });
    expect(model.chunks).toBe(before);
    await expectTrueVectors(2, third!.counts.chunks);
    expect(chunks).toBeGreaterThan(60);
  });

  it('an id twice in one window, the earlier record carried and the later embedded: counts say which', async () => {
    await plainRun(0, docs);
    const before = model.chunks;
    // A second record of d7, next to the first (one window), with a new text: embedded.
    const twice = [
      ...docs.slice(0, 8),
      { id: 'd7', text: 'A wholly new text for the seventh document.' },
      ...docs.slice(8),
    ];
    const second = await plainRun(1, twice);
    const embeddedNow = model.chunks - before;
    expect(embeddedNow).toBeGreaterThan(0);
    // Before, the new record's chunks were counted carried (they share chunk ids with the
    // carried one): embedded 0 though the model was called.
    expect(second!.counts).toMatchObject({ records: 61, rejected: 1, embedded: embeddedNow });
    expect(second!.counts.embedded + second!.counts.skippedUnchanged).toBe(second!.counts.chunks);
    await expectTrueVectors(1, second!.counts.chunks);
  });

  /** Runs the sources `files` (key under incoming/docs/ to records) in one run, every unit one delivery. */
  async function runSources(n: number, files: Record<string, readonly unknown[]>) {
    const keys = Object.keys(files).map((name) => `incoming/docs/${name}`);
    for (const [name, records] of Object.entries(files))
      await store.put(`incoming/docs/${name}`, jsonl(records));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: dailyRunId(n),
      trigger: 'local',
      keys,
      now: new Date(T0 + n * DAY_MS),
    });
    queue.units = [];
    for (const unit of units) await processUnit(deps(), config, unit, { isLastAttempt: false });
    return finalize(n);
  }

  it('a document that moves to another source is carried and its entry follows it; one deleted then added again is embedded anew', async () => {
    const [x, y, z] = [docs[10]!, docs[11]!, docs[12]!];
    const first = await runSources(0, { 'a.jsonl': [x, y], 'b.jsonl': [z] });
    const entry = (id: string) => index.docs.get(`docs#${id}`);
    expect(entry(x.id)?.sourceKey).toBe('incoming/docs/a.jsonl');

    let before = model.chunks;
    const moved = await runSources(1, { 'a.jsonl': [y], 'b.jsonl': [z, x] });
    expect(moved!.counts).toMatchObject({
      embedded: 0,
      skippedUnchanged: first!.counts.chunks,
      removedDocuments: 0,
    });
    expect(model.chunks).toBe(before);
    expect(entry(x.id)).toMatchObject({
      sourceKey: 'incoming/docs/b.jsonl',
      chunks: { at: { runId: dailyRunId(1) } },
    });
    await expectTrueVectors(1, moved!.counts.chunks);

    const deleted = await runSources(2, { 'a.jsonl': [y], 'b.jsonl': [z] });
    expect(deleted!.counts).toMatchObject({ embedded: 0, removedDocuments: 1 });
    expect(entry(x.id)).toEqual({ docId: x.id, chunkCount: 0 });

    before = model.chunks;
    const back = await runSources(3, { 'a.jsonl': [y, x], 'b.jsonl': [z] });
    const xChunks = (await rowsOf(3)).filter((r) => r.doc_id === x.id).length;
    expect(back!.counts).toMatchObject({ embedded: xChunks, removedDocuments: 0 });
    expect(model.chunks - before).toBe(xChunks);
    await expectTrueVectors(3, back!.counts.chunks);
  });

  it('a unit that checkpointed: both parts number their own rows, and the next run carries every chunk of both', async () => {
    await plainRun(0, docs);
    const unit = await plan(1, edited([5, 50]));
    const head = await processUnit(deps(), config, unit, { isLastAttempt: false, ...stopAfterAsks(24) });
    expect(head).toMatchObject({ status: 'succeeded', counts: { records: 25 } });
    const rest = queue.units.find((u) => u.unitId === `${unit.unitId}c`)!;
    await processUnit(deps(), config, rest, { isLastAttempt: false });
    const second = await finalize(1);
    expect(second!.counts.records).toBe(60);
    await expectTrueVectors(1, second!.counts.chunks);
    // Each edited document's entry names its own part, rows counted from that part's start.
    const at = (id: string) => index.docs.get(`docs#${id}`)?.chunks?.at;
    expect(at('d5')).toMatchObject({ runId: dailyRunId(1), unitId: unit.unitId });
    expect(at('d50')).toMatchObject({ runId: dailyRunId(1), unitId: rest.unitId });
    const restRows = (await rowsOf(1)).filter((r) => Number(String(r.doc_id).slice(1)) >= 25);
    expect(restRows.findIndex((r) => r.doc_id === 'd50')).toBe(at('d50')!.firstRow);

    const before = model.chunks;
    const third = await plainRun(2, edited([5, 50]));
    expect(third!.counts).toMatchObject({ chunks: second!.counts.chunks, embedded: 0 });
    expect(model.chunks).toBe(before);
    await expectTrueVectors(2, third!.counts.chunks);
  });

  it('a retry that checkpoints sooner than the delivery that died: entries past its end miss, never mislead', async () => {
    await plainRun(0, docs);
    // Every document edited, so every entry points at this run's part once the first delivery records.
    const all = docs.map((_, i) => i);
    const unit = await plan(1, edited(all));
    await expect(
      processUnit(deps(crashingOnce(runs)), config, unit, { isLastAttempt: false }),
    ).rejects.toThrow('worker killed');
    const head = await processUnit(deps(), config, unit, { isLastAttempt: false, ...stopAfterAsks(19) });
    expect(head).toMatchObject({ status: 'succeeded', counts: { records: 20 } });
    const rest = queue.units.find((u) => u.unitId === `${unit.unitId}c`)!;
    await processUnit(deps(), config, rest, { isLastAttempt: false });
    const second = await finalize(1);
    expect(second!.counts).toMatchObject({ records: 60, chunks: (await rowsOf(1)).length });
    await expectTrueVectors(1, second!.counts.chunks);

    const third = await plainRun(2, edited(all));
    expect(third!.counts).toMatchObject({ chunks: second!.counts.chunks, embedded: 0 });
    await expectTrueVectors(2, third!.counts.chunks);
  });

  it('a unit whose parts were taken back after it recorded its entries: the next run embeds those documents again', async () => {
    await plainRun(0, docs);
    const unit = await plan(1, edited([1, 2, 40]));
    await processUnit(deps(), config, unit, { isLastAttempt: false });
    // As the dead-letter step does when the completion lost to it.
    expect(await retractUnitParts(store, unit)).not.toEqual([]);
    const before = model.chunks;
    const third = await plainRun(2, edited([1, 2, 40]));
    // Only the chunks of documents whose entries name the emptied part are embedded again
    // (the three edited ones; the others kept their run-0 entries), and none fails the run.
    for (const id of ['d1', 'd2', 'd40'])
      expect(index.docs.get(`docs#${id}`)?.chunks?.at.runId).toBe(dailyRunId(2));
    expect(third!.counts.embedded).toBeGreaterThan(0);
    expect(third!.counts.embedded).toBe(model.chunks - before);
    expect(third!.counts.embedded).toBeLessThanOrEqual(
      (await rowsOf(2)).filter((r) => ['d1', 'd2', 'd40'].includes(String(r.doc_id))).length,
    );
    await expectTrueVectors(2, third!.counts.chunks);
  });
});
