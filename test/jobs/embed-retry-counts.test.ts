import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { dynamoItemBytes } from '../../shared/cost/dynamo-item-size.ts';
import { docIndexItem } from '../../shared/cost/dynamo-storage.ts';
import type { UnitCounts, WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { IndexedDoc } from '../../shared/ports/chunk-index.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { RecordingQueue, stopAfterAsks } from '../incremental/factories.ts';
import { crashingOnce, DAY_MS, dailyRunId, HashModel, T0 } from '../support/hash-model.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';

const DIMENSION = 8;

const config = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
});

/** Units of a few records: each small source its own unit. */
const smallUnits = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
  planning: { targetUnitTokens: 20 },
});

const docs = Array.from({ length: 40 }, (_, i) => ({
  id: `d${i}`,
  text: `document ${i} says ${'something rather long '.repeat(2 + (i % 4))}`,
}));
/** Run 1's input: d3 and d20 shrink to one chunk, d9 grows, d33 vanishes from the source. */
const changed = docs
  .filter((d) => d.id !== 'd33')
  .map((d) =>
    d.id === 'd3' || d.id === 'd20'
      ? { ...d, text: `document ${d.id} is short now` }
      : d.id === 'd9'
        ? { ...d, text: `${d.text} and a further sentence or two for the second run` }
        : d,
  );

/** What a unit reports, without its timing. */
const countsOf = ({ usage, ...counts }: UnitCounts) => ({
  ...counts,
  dynamoBytesAdded: usage?.dynamoBytesAdded,
  chunkIndexWriteUnits: usage?.chunkIndexWriteUnits,
});

/** How a unit's deliveries go: one that completes, or one that dies after recording its entries and then a retry. */
type Deliveries = 'clean' | 'crash-then-retry' | 'crash-then-checkpointed-retry';

describe('an embed unit retried after it recorded its entries reports what its first delivery did', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let index: MemoryChunkIndex;
  let model: HashModel;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-retry-counts-'));
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

  /** Run `n` of `records` delivered as `how` says; its units' counts, the run's, and the index after it. */
  async function runAs(n: number, records: readonly unknown[], how: Deliveries) {
    const unit = await plan(n, records);
    if (how !== 'clean')
      await expect(
        processUnit(deps(crashingOnce(runs)), config, unit, { isLastAttempt: false }),
      ).rejects.toThrow('worker killed');
    const units = [unit];
    if (how === 'crash-then-checkpointed-retry') {
      await processUnit(deps(), config, unit, { isLastAttempt: false, ...stopAfterAsks(11) });
      const rest = queue.units.find((u) => u.unitId === `${unit.unitId}c`)!;
      units.push(rest);
      await processUnit(deps(), config, rest, { isLastAttempt: false });
    } else await processUnit(deps(), config, unit, { isLastAttempt: false });
    const summary = await finalize(n);
    const unitCounts = await Promise.all(
      units.map(async (u) => countsOf((await runs.getUnit(u.runId, u.unitId))!.counts!)),
    );
    return { summary: summary!.counts, unitCounts, entries: new Map(index.docs) };
  }

  /** The same two runs in a fresh store and index: run 0 clean, run `n` of `changed` as `how` says. */
  async function scenario(n: number, how: Deliveries) {
    await runAs(0, docs, 'clean');
    return runAs(n, changed, how);
  }

  async function cleanOf(n: number) {
    const saved = { dir, store, runs, queue, index, model };
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-retry-counts-'));
    store = new MemoryObjectStore(97);
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    index = new MemoryChunkIndex();
    model = new HashModel(DIMENSION);
    try {
      return await scenario(n, 'clean');
    } finally {
      await rm(dir, { recursive: true, force: true });
      ({ dir, store, runs, queue, index, model } = saved);
    }
  }

  for (const [day, when] of [
    [1, 'the next day (unchanged entries still fresh)'],
    [9, 'past the refresh horizon (every entry written again)'],
  ] as const) {
    it(`${when}: removed, carried and embedded chunks, and the index's storage, as one clean delivery counts them`, async () => {
      const clean = await cleanOf(day);
      expect(clean.summary.removedChunks).toBeGreaterThan(0);
      expect(clean.summary.skippedUnchanged).toBeGreaterThan(0);
      const retried = await scenario(day, 'crash-then-retry');
      expect(retried.unitCounts[0]).toEqual(clean.unitCounts[0]);
      expect(retried.summary).toMatchObject({
        records: clean.summary.records,
        chunks: clean.summary.chunks,
        embedded: clean.summary.embedded,
        skippedUnchanged: clean.summary.skippedUnchanged,
        removedChunks: clean.summary.removedChunks,
      });
      expect(retried.entries).toEqual(clean.entries);
    });
  }

  /**
   * What the index's storage grew by from `before` to `after` as DynamoDB bills it (a new
   * item: its size and 100 bytes; a replaced one: its change), but d33's entry, which
   * finalize forgets (finalize's meter counts that).
   */
  function storageAdded(before: Map<string, IndexedDoc>, after: Map<string, IndexedDoc>): number {
    const bytes = (doc: IndexedDoc) => dynamoItemBytes(docIndexItem('docs', doc));
    let added = 0;
    for (const [key, doc] of after) {
      const old = before.get(key);
      if (old === doc || key === 'docs#d33') continue;
      added += old ? bytes(doc) - bytes(old) : bytes(doc) + 100;
    }
    return added;
  }

  it('a retry that checkpoints sooner than the delivery that died, and its continuation, add up to the clean counts', async () => {
    const clean = await cleanOf(9);
    const { entries: before } = await runAs(0, docs, 'clean');
    const retried = await runAs(9, changed, 'crash-then-checkpointed-retry');
    expect(retried.unitCounts).toHaveLength(2);
    const sum = (key: 'embedded' | 'skippedUnchanged' | 'removedChunks' | 'chunks' | 'dynamoBytesAdded') =>
      retried.unitCounts.reduce((total, c) => total + (c[key] ?? 0), 0);
    for (const key of ['chunks', 'embedded', 'skippedUnchanged', 'removedChunks'] as const)
      expect(sum(key), key).toBe(clean.unitCounts[0]![key]);
    expect(retried.summary.removedChunks).toBe(clean.summary.removedChunks);
    // The continuation numbers its rows from its own part's start: entries of another size.
    expect(sum('dynamoBytesAdded')).toBe(storageAdded(before, retried.entries));
  });

  it('meters the index storage a run adds by the entries it replaced, whatever the deliveries', async () => {
    const { entries: before } = await runAs(0, docs, 'clean');
    const { unitCounts, entries: after } = await runAs(9, changed, 'crash-then-retry');
    expect(unitCounts[0]!.dynamoBytesAdded).toBe(storageAdded(before, after));
  });

  it('a unit of more documents than the meter remembers counts the entries it rewrites as replaced, not added', async () => {
    const many = Array.from({ length: 9_000 }, (_, i) => ({ id: `m${i}`, text: `short record ${i}` }));
    const { entries: before } = await runAs(0, many, 'clean');
    // Past the refresh horizon: every entry is written again, to point at this run's part.
    const { unitCounts, entries: after } = await runAs(9, many, 'clean');
    expect(unitCounts[0]).toMatchObject({ chunks: 9_000, embedded: 0, chunkIndexWriteUnits: 9_000 });
    // The run id in each entry is as long as before; rows keep their place: nothing added.
    expect(storageAdded(before, after)).toBe(0);
    expect(unitCounts[0]!.dynamoBytesAdded).toBe(0);
  }, 60_000);

  /**
   * One id in two sources of a run, each its own unit, with different texts: finalize keeps
   * b.jsonl's record (the last in source key order, docs/decisions.md "Duplicate ids") and
   * rejects a.jsonl's. `order` is the order the units run (deployed: any). Returns the
   * chunks the model embedded in each of runs 1 to 3, every one the same two files again,
   * and the summaries' `embedded` (the kept record's chunks only: the rule's counts).
   */
  /** Chunks of the two records of `dup` at `smallUnits`' chunking. */
  const LOSER_CHUNKS = 2;
  const WINNER_CHUNKS = 2;

  async function duplicateAcrossUnits(order: 'loser first' | 'winner first') {
    const loser = { id: 'dup', text: 'the earlier record of the duplicated id, in a.jsonl' };
    const winner = { id: 'dup', text: 'the later record of the duplicated id, kept, in b.jsonl' };
    const files = { 'a.jsonl': [loser], 'b.jsonl': [winner] };
    const modelChunks: number[] = [];
    const embedded: number[] = [];
    for (let n = 0; n < 4; n += 1) {
      const before = model.chunks;
      for (const [name, records] of Object.entries(files))
        await store.put(`incoming/docs/${name}`, jsonl(records));
      const { units } = await planRun({ store, runs, queue }, smallUnits, {
        runId: dailyRunId(n),
        trigger: 'local',
        keys: Object.keys(files).map((name) => `incoming/docs/${name}`),
        now: new Date(T0 + n * DAY_MS),
      });
      queue.units = [];
      expect(units).toHaveLength(2);
      const sorted = [...units].sort((x, y) => x.sourceKey.localeCompare(y.sourceKey));
      for (const unit of order === 'loser first' ? sorted : sorted.reverse())
        await processUnit(deps(), smallUnits, unit, { isLastAttempt: false });
      const summary = await finalizeRun(
        { store, runs, chunkIndex: index, pipelines: new Map([['docs', smallUnits]]) },
        dailyRunId(n),
        new Date(T0 + n * DAY_MS + 60_000),
      );
      expect(summary!.counts).toMatchObject({ rejected: 1 });
      if (n === 0) continue;
      modelChunks.push(model.chunks - before);
      embedded.push(summary!.counts.embedded);
    }
    return { modelChunks, embedded };
  }

  for (const order of ['loser first', 'winner first'] as const)
    it(`an id in two units of a run with two texts (${order}): the winner is carried on every later run, the loser embedded again`, async () => {
      // Units cannot know they lose: the rejected record's chunks are embedded on every run
      // (they differ from the winner's the entry holds, and its rows are dropped from its
      // part, so no entry of it can be carried from). Whichever unit records last, finalize
      // leaves the index with the winner's entry (shared/duplicates/winner-entries.ts), so
      // the winner is carried: before, with the winner's unit first, the loser's entry was
      // left and the winner embedded again on every run.
      const { modelChunks, embedded } = await duplicateAcrossUnits(order);
      expect(modelChunks).toEqual([LOSER_CHUNKS, LOSER_CHUNKS, LOSER_CHUNKS]);
      expect(embedded).toEqual([0, 0, 0]);
      const entry = index.docs.get('docs#dup')!;
      expect(entry).toMatchObject({ chunkCount: WINNER_CHUNKS, sourceKey: 'incoming/docs/b.jsonl' });
      // Its vectors' place: the winner's unit (of run 0, put back each run, or of a later run).
      const { runId, unitId } = entry.chunks!.at;
      expect((await runs.getUnit(runId, unitId))!.sourceKey).toBe('incoming/docs/b.jsonl');
    });
});
