import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { ChunkIndex, IndexedDoc } from '../../shared/ports/chunk-index.ts';
import type { RunStore } from '../../shared/ports/run-store.ts';
import { deadLetterUnit } from '../../shared/work/dead-letter-unit.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { crashingOnce, DAY_MS, dailyRunId, HashModel, hashVector, T0 } from '../support/hash-model.ts';
import { MemoryChunkIndex } from '../support/memory-chunk-index.ts';
import { RecordingQueue, stopAfterAsks } from './factories.ts';

const DIMENSION = 16;

/**
 * An index whose first record call writes some of its entries and then fails (a partial
 * BatchWriteItem): the first `kept`, or with `skip` all but the first `skip` (DynamoDB's
 * unprocessed items of a batch may be any of its 25).
 */
function recordingPartly(index: MemoryChunkIndex, kept: number, skip = 0): ChunkIndex {
  let fail = true;
  return {
    lookupDocs: (pipeline, ids) => index.lookupDocs(pipeline, ids),
    async record(pipeline: string, docs: readonly IndexedDoc[]) {
      if (!fail) return index.record(pipeline, docs);
      fail = false;
      await index.record(pipeline, skip > 0 ? docs.slice(skip) : docs.slice(0, kept));
      throw new Error('unprocessed items left after retries');
    },
  };
}

const config = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
});
const smallUnits = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
  planning: { targetUnitTokens: 20 },
});
const docs = Array.from({ length: 60 }, (_, i) => ({
  id: `d${i}`,
  text: `document ${i} says ${'something rather long '.repeat(1 + (i % 5))}`,
}));
/** Run 1's input: some documents edited, d3 shorter, d33 gone. */
const changed = docs
  .filter((d) => d.id !== 'd33')
  .map((d, i) =>
    d.id === 'd3'
      ? { ...d, text: 'document d3 is short now' }
      : i % 7 === 0
        ? { ...d, text: `${d.text} and one more sentence for run two` }
        : d,
  );

/** One store, run store, index and model: a pipeline's world. */
class World {
  readonly store = new MemoryObjectStore(97);
  readonly queue = new RecordingQueue();
  readonly index = new MemoryChunkIndex();
  readonly model = new HashModel(DIMENSION);
  constructor(readonly runs: LocalRunStore) {}

  deps(over: { runs?: RunStore; chunkIndex?: ChunkIndex } = {}) {
    return {
      store: this.store,
      runs: over.runs ?? this.runs,
      queue: this.queue,
      endpoint: this.model,
      tokenCounter: new EstimatingTokenCounter(),
      chunkIndex: over.chunkIndex ?? this.index,
    };
  }

  async plan(n: number, files: Record<string, readonly unknown[]>, cfg = config): Promise<WorkUnit[]> {
    for (const [name, records] of Object.entries(files))
      await this.store.put(`incoming/docs/${name}`, jsonl(records));
    const { units } = await planRun({ store: this.store, runs: this.runs, queue: this.queue }, cfg, {
      runId: dailyRunId(n),
      trigger: 'local',
      keys: Object.keys(files).map((name) => `incoming/docs/${name}`),
      now: new Date(T0 + n * DAY_MS),
    });
    this.queue.units = [];
    return [...units].sort((x, y) => x.sourceKey.localeCompare(y.sourceKey));
  }

  finalize(n: number, cfg = config) {
    return finalizeRun(
      { store: this.store, runs: this.runs, chunkIndex: this.index, pipelines: new Map([['docs', cfg]]) },
      dailyRunId(n),
      new Date(T0 + n * DAY_MS + 60_000),
    );
  }

  async plainRun(n: number, files: Record<string, readonly unknown[]>, cfg = config) {
    for (const unit of await this.plan(n, files, cfg))
      await processUnit(this.deps(), cfg, unit, { isLastAttempt: false });
    return (await this.finalize(n, cfg))!;
  }

  /** Every row of run `n`'s embeddings parts. */
  async rowsOf(n: number) {
    const rows: Record<string, unknown>[] = [];
    for (const [key, body] of this.store.objects) {
      if (!key.startsWith('results/embeddings/') || !key.includes(dailyRunId(n))) continue;
      rows.push(...(await parquetReadObjects({ file: (body as Uint8Array).slice().buffer })));
    }
    return rows;
  }

  /** Run `n`'s rows, each vector checked against a fresh embedding of its text. */
  async expectTrueVectors(n: number, chunks: number) {
    const rows = await this.rowsOf(n);
    expect(rows).toHaveLength(chunks);
    for (const row of rows)
      expect(Array.from(row.embedding as ArrayLike<number>), String(row.chunk_id)).toEqual(
        hashVector(String(row.chunk_text), DIMENSION),
      );
    return rows;
  }
}

/** The counts two runs' summaries must share to be one clean delivery. */
const countsOf = (c: Record<string, unknown>) => {
  const { records, chunks, embedded, skippedUnchanged, removedChunks, removedDocuments, rejected } = c;
  return { records, chunks, embedded, skippedUnchanged, removedChunks, removedDocuments, rejected };
};

describe('review: retries, redrives and dead letters around the replaced entries (b086d46, 648d859)', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  async function world(): Promise<World> {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-retry-review-'));
    dirs.push(dir);
    return new World(new LocalRunStore(dir));
  }

  /** Run 0 of `docs` and run 1 of `changed`, every delivery clean. */
  async function cleanWorld() {
    const w = await world();
    await w.plainRun(0, { 'a.jsonl': docs });
    const second = await w.plainRun(1, { 'a.jsonl': changed });
    return { w, second };
  }

  for (const kept of [0, 7, 40])
    it(`a delivery whose record wrote ${kept} entries and failed: the retry counts, records and carries as one clean delivery`, async () => {
      const clean = await cleanWorld();
      const w = await world();
      await w.plainRun(0, { 'a.jsonl': docs });
      const [unit] = await w.plan(1, { 'a.jsonl': changed });
      const first = w.deps({ chunkIndex: recordingPartly(w.index, kept) });
      await expect(processUnit(first, config, unit!, { isLastAttempt: false })).rejects.toThrow(
        'unprocessed',
      );
      await processUnit(w.deps(), config, unit!, { isLastAttempt: false });
      const second = (await w.finalize(1))!;
      expect(countsOf(second.counts)).toEqual(countsOf(clean.second.counts));
      expect(second.counts.removedChunks).toBeGreaterThan(0);
      expect(new Map(w.index.docs)).toEqual(new Map(clean.w.index.docs));
      await w.expectTrueVectors(1, second.counts.chunks);

      const before = w.model.chunks;
      const third = await w.plainRun(2, { 'a.jsonl': changed });
      expect(third.counts).toMatchObject({ chunks: second.counts.chunks, embedded: 0, removedChunks: 0 });
      expect(w.model.chunks).toBe(before);
      await w.expectTrueVectors(2, third.counts.chunks);
    });

  it('a delivery whose record left its first entries unwritten, retried to a sooner checkpoint: the continuation still finds the entries they replaced', async () => {
    // Past the refresh horizon every document gets an entry, so the first window's are all updates.
    const clean = await world();
    await clean.plainRun(0, { 'a.jsonl': docs });
    const cleanRun = await clean.plainRun(9, { 'a.jsonl': changed });
    const w = await world();
    await w.plainRun(0, { 'a.jsonl': docs });
    const [unit] = await w.plan(9, { 'a.jsonl': changed });
    // The first 16 entries (the retry's whole range) unwritten, every later one written.
    const first = w.deps({ chunkIndex: recordingPartly(w.index, 0, 16) });
    await expect(processUnit(first, config, unit!, { isLastAttempt: false })).rejects.toThrow('unprocessed');
    const head = await processUnit(w.deps(), config, unit!, { isLastAttempt: false, ...stopAfterAsks(15) });
    expect(head).toMatchObject({ status: 'succeeded', counts: { records: 16 } });
    const rest = w.queue.units.find((u) => u.unitId === `${unit!.unitId}c`)!;
    await processUnit(w.deps(), config, rest, { isLastAttempt: false });
    const second = (await w.finalize(9))!;
    await w.expectTrueVectors(9, second.counts.chunks);
    expect(countsOf(second.counts)).toEqual(countsOf(cleanRun.counts));
  });

  it('a unit dead-lettered after recording: the failed run holds none of its rows, and the next run misses its entries and embeds true vectors', async () => {
    const w = await world();
    const zero = await w.plainRun(0, { 'a.jsonl': docs });
    const [unit] = await w.plan(1, { 'a.jsonl': changed });
    await expect(
      processUnit(w.deps({ runs: crashingOnce(w.runs) }), config, unit!, { isLastAttempt: true }),
    ).rejects.toThrow('worker killed');
    // The last delivery failed the unit itself; the dead letter takes its parts back.
    expect(await deadLetterUnit(w, unit!)).toMatchObject({
      status: 'already-terminal',
      unitStatus: 'failed',
    });
    await w.finalize(1);
    expect(await w.rowsOf(1)).toEqual([]);
    expect((await w.runs.getRun(dailyRunId(1)))?.status).toBe('failed');

    const before = w.model.chunks;
    const third = await w.plainRun(2, { 'a.jsonl': changed });
    // Only the changed documents' chunks: their entries name the emptied part (missed), the others' run 0's.
    const editedIds = new Set(
      changed.filter((d) => d.text !== docs.find((o) => o.id === d.id)!.text).map((d) => d.id),
    );
    const rows = await w.expectTrueVectors(2, third.counts.chunks);
    const editedChunks = rows.filter((r) => editedIds.has(String(r.doc_id))).length;
    expect(third.counts.embedded).toBe(w.model.chunks - before);
    expect(third.counts.embedded).toBe(editedChunks);
    expect(third.counts.records).toBe(changed.length);
    expect(third.counts.chunks).toBe(rows.length);
    expect(zero.counts.records).toBe(60);
  });

  it('a redriven unit reads its own earlier replaced entries: the redriven run counts and records as one clean delivery, the next run carries all', async () => {
    const clean = await cleanWorld();
    const w = await world();
    await w.plainRun(0, { 'a.jsonl': docs });
    const [unit] = await w.plan(1, { 'a.jsonl': changed });
    await expect(
      processUnit(w.deps({ runs: crashingOnce(w.runs) }), config, unit!, { isLastAttempt: true }),
    ).rejects.toThrow('worker killed');
    await deadLetterUnit(w, unit!);
    await w.finalize(1);
    const reopening = await w.runs.reopenFailedRun(dailyRunId(1));
    expect(reopening.units.map((u) => u.unitId)).toEqual([unit!.unitId]);
    await processUnit(w.deps(), config, reopening.units[0]!.descriptor ?? unit!, { isLastAttempt: false });
    const second = (await w.finalize(1))!;
    expect(countsOf(second.counts)).toEqual(countsOf(clean.second.counts));
    expect(new Map(w.index.docs)).toEqual(new Map(clean.w.index.docs));
    await w.expectTrueVectors(1, second.counts.chunks);

    const before = w.model.chunks;
    const third = await w.plainRun(2, { 'a.jsonl': changed });
    expect(third.counts).toMatchObject({ chunks: second.counts.chunks, embedded: 0 });
    expect(w.model.chunks).toBe(before);
    await w.expectTrueVectors(2, third.counts.chunks);
  });

  const loser = { id: 'dup', text: 'the earlier record of the duplicated id, in a.jsonl' };
  const winner = { id: 'dup', text: 'the later record of the duplicated id, kept, in b.jsonl' };
  const others = docs.slice(0, 6);
  const dupFiles = { 'a.jsonl': [loser], 'b.jsonl': [winner], 'c.jsonl': others };
  /** Run `n`'s units: a.jsonl's, b.jsonl's, and the rest (c.jsonl's, several at smallUnits). */
  async function dupUnits(w: World, n: number) {
    const units = await w.plan(n, dupFiles, smallUnits);
    const of = (name: string) => units.filter((u) => u.sourceKey === `incoming/docs/${name}`);
    expect(of('a.jsonl')).toHaveLength(1);
    expect(of('b.jsonl')).toHaveLength(1);
    return { a: of('a.jsonl')[0]!, b: of('b.jsonl')[0]!, rest: of('c.jsonl') };
  }

  it("an id in two units whose kept record's unit is dead-lettered after recording: the run keeps the other record, and later runs hold true vectors", async () => {
    const w = await world();
    await w.plainRun(0, dupFiles, smallUnits);
    const { a, b, rest } = await dupUnits(w, 1);
    for (const unit of [a, ...rest]) await processUnit(w.deps(), smallUnits, unit, { isLastAttempt: false });
    await expect(
      processUnit(w.deps({ runs: crashingOnce(w.runs) }), smallUnits, b!, { isLastAttempt: true }),
    ).rejects.toThrow('worker killed');
    await deadLetterUnit(w, b!);
    const failed = (await w.finalize(1, smallUnits))!;
    const rows1 = await w.expectTrueVectors(1, failed.counts.chunks);
    // b's records are in neither table: dup is a.jsonl's only (not rejected as a loser).
    expect(
      rows1
        .filter((r) => r.doc_id === 'dup')
        .map((r) => r.chunk_text)
        .join(' '),
    ).toContain('earlier');
    expect(failed.counts).toMatchObject({ records: 7, rejected: 0 });

    const second = await w.plainRun(2, dupFiles, smallUnits);
    expect(second.counts).toMatchObject({ records: 8, rejected: 1 });
    const rows2 = await w.expectTrueVectors(2, second.counts.chunks);
    expect(
      rows2
        .filter((r) => r.doc_id === 'dup')
        .map((r) => r.chunk_text)
        .join(' '),
    ).toContain('kept');
    const entry = w.index.docs.get('docs#dup')!;
    expect(entry.sourceKey).toBe('incoming/docs/b.jsonl');
    const third = await w.plainRun(3, dupFiles, smallUnits);
    await w.expectTrueVectors(3, third.counts.chunks);
    // The winner and the other documents carried; only the loser's chunks go to the model again.
    expect(third.counts.embedded).toBe(0);
  });

  for (const order of [
    'loser records while the winner embeds',
    'winner looks up, loser records, winner records',
  ] as const)
    it(`an id in two units racing (${order}): finalize leaves the winner's entry, and the next run carries it with true vectors`, async () => {
      const w = await world();
      await w.plainRun(0, dupFiles, smallUnits);
      const { a, b, rest } = await dupUnits(w, 1);
      for (const unit of rest) await processUnit(w.deps(), smallUnits, unit, { isLastAttempt: false });
      // b's lookups return before a records; b goes on (and records) only after a is done.
      let aDone!: () => void;
      const aFinished = new Promise<void>((resolve) => {
        aDone = resolve;
      });
      let looked!: () => void;
      const bLooked = new Promise<void>((resolve) => {
        looked = resolve;
      });
      const bIndex: ChunkIndex = {
        async lookupDocs(pipeline, ids) {
          const found = await w.index.lookupDocs(pipeline, ids);
          looked();
          await aFinished;
          return found;
        },
        record: (pipeline, entries) => w.index.record(pipeline, entries),
      };
      const bRun = processUnit(w.deps({ chunkIndex: bIndex }), smallUnits, b!, { isLastAttempt: false });
      if (order === 'winner looks up, loser records, winner records') await bLooked;
      await processUnit(w.deps(), smallUnits, a!, { isLastAttempt: false });
      aDone();
      await bRun;
      const second = (await w.finalize(1, smallUnits))!;
      await w.expectTrueVectors(1, second.counts.chunks);
      expect(w.index.docs.get('docs#dup')).toMatchObject({ sourceKey: 'incoming/docs/b.jsonl' });
      const before = w.model.chunks;
      const third = await w.plainRun(2, dupFiles, smallUnits);
      await w.expectTrueVectors(2, third.counts.chunks);
      expect(third.counts.embedded).toBe(0);
      // Only the loser's chunks go to the model (its unit cannot know it loses): 2 at this chunking.
      expect(w.model.chunks - before).toBe(2);
    });

  it("documents after a loser's dropped rows in its part are carried with their own vectors on the next run", async () => {
    const w = await world();
    // One unit: the loser's rows come first in the part, and finalize drops them.
    const files = { 'a.jsonl': [loser, ...docs.slice(0, 20), winner, ...docs.slice(20, 30)] };
    const first = await w.plainRun(0, files);
    expect(first.counts.rejected).toBe(1);
    await w.expectTrueVectors(0, first.counts.chunks);
    const before = w.model.chunks;
    const second = await w.plainRun(1, files);
    await w.expectTrueVectors(1, second.counts.chunks);
    expect(second.counts.chunks).toBe(first.counts.chunks);
    // Finalize recorded the winner's entry; what the model saw again is the loser's alone.
    expect(second.counts.embedded).toBe(0);
    expect(w.model.chunks - before).toBeGreaterThan(0);
  });

  /** Run 2's input: other documents edited again, d3 back to its first text. */
  const changedAgain = changed.map((d, i) =>
    d.id === 'd3' ? docs[3]! : i % 5 === 0 ? { ...d, text: `${d.text} then a third edit` } : d,
  );

  for (const order of ['finalized in order', 'finalized the other way'] as const)
    it(`two runs of one pipeline overlapping (run 2's unit reads run 1's entries before run 1 finalizes; ${order}): every run's rows and the next runs' are true vectors`, async () => {
      const w = await world();
      await w.plainRun(0, { 'a.jsonl': docs });
      // Run 2 is planned once run 1's unit has read its source (a unit fails on a source changed since its plan).
      const [one] = await w.plan(1, { 'a.jsonl': changed });
      await processUnit(w.deps(), config, one!, { isLastAttempt: false });
      const [two] = await w.plan(2, { 'a.jsonl': changedAgain });
      await processUnit(w.deps(), config, two!, { isLastAttempt: false });
      let first: Awaited<ReturnType<World['finalize']>>;
      let second: Awaited<ReturnType<World['finalize']>>;
      if (order === 'finalized in order') {
        first = await w.finalize(1);
        second = await w.finalize(2);
      } else {
        second = await w.finalize(2);
        first = await w.finalize(1);
      }
      await w.expectTrueVectors(1, first!.counts.chunks);
      await w.expectTrueVectors(2, second!.counts.chunks);
      for (const summary of [first!, second!])
        expect(summary.counts.embedded + summary.counts.skippedUnchanged).toBe(summary.counts.chunks);

      const third = await w.plainRun(3, { 'a.jsonl': changedAgain });
      await w.expectTrueVectors(3, third.counts.chunks);
      expect(third.counts).toMatchObject({ records: changedAgain.length, chunks: second!.counts.chunks });
      const fourth = await w.plainRun(4, { 'a.jsonl': changedAgain });
      await w.expectTrueVectors(4, fourth.counts.chunks);
      expect(fourth.counts).toMatchObject({ embedded: 0, removedChunks: 0 });
    });
});

describe('review: an id in a checkpointed unit and its continuation', () => {
  /** The loser's chunks at this chunking. */
  const LOSER_CHUNKS = 2;
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  for (const crash of [false, true])
    it(`the loser in the parent, the kept record in the continuation${crash ? ', the parent retried after recording' : ''}: true vectors, and the kept record carried on the next run`, async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'sluice-retry-review-'));
      dirs.push(dir);
      const w = new World(new LocalRunStore(dir));
      const loser = { id: 'dup', text: 'the earlier record of the duplicated id, read by the parent' };
      const winner = {
        id: 'dup',
        text: 'the later record of the duplicated id, kept, read by the continuation',
      };
      const records = [loser, ...docs.slice(0, 30), winner, ...docs.slice(30)];
      await w.plainRun(0, { 'a.jsonl': records });
      for (const n of [1, 2]) {
        const before = w.model.chunks;
        const [unit] = await w.plan(n, { 'a.jsonl': records });
        if (crash)
          await expect(
            processUnit(w.deps({ runs: crashingOnce(w.runs) }), config, unit!, { isLastAttempt: false }),
          ).rejects.toThrow('worker killed');
        await processUnit(w.deps(), config, unit!, { isLastAttempt: false, ...stopAfterAsks(19) });
        const rest = w.queue.units.find((u) => u.unitId === `${unit!.unitId}c`)!;
        await processUnit(w.deps(), config, rest, { isLastAttempt: false });
        const summary = (await w.finalize(n))!;
        // The model saw the loser's chunks alone (its unit cannot know it loses), each delivery.
        expect(w.model.chunks - before).toBe((crash ? 2 : 1) * LOSER_CHUNKS);
        expect(summary.counts).toMatchObject({ records: 62, rejected: 1, embedded: 0 });
        const rows = await w.expectTrueVectors(n, summary.counts.chunks);
        expect(
          rows
            .filter((r) => r.doc_id === 'dup')
            .map((r) => r.chunk_text)
            .join(' '),
        ).toContain('kept');
        expect(w.index.docs.get('docs#dup')!.chunkCount).toBe(rows.filter((r) => r.doc_id === 'dup').length);
      }
    });
});

describe('review: an id twice in one window, its unit retried after recording', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  async function world(): Promise<World> {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-retry-review-'));
    dirs.push(dir);
    return new World(new LocalRunStore(dir));
  }
  // d4 (5 chunks at run 0) read twice in one window at run 1, each record one chunk.
  const twice = [
    ...docs.slice(0, 5),
    { id: 'd4', text: 'd4 is short now' },
    { id: 'd4', text: 'd4 is short again' },
    ...docs.slice(5).filter((d) => d.id !== 'd4'),
  ].filter((d, i) => !(d.id === 'd4' && i === 4));

  it('counts as one clean delivery, and the next run holds true vectors', async () => {
    const clean = await world();
    await clean.plainRun(0, { 'a.jsonl': docs });
    const cleanRun = await clean.plainRun(1, { 'a.jsonl': twice });
    const w = await world();
    await w.plainRun(0, { 'a.jsonl': docs });
    const [unit] = await w.plan(1, { 'a.jsonl': twice });
    await expect(
      processUnit(w.deps({ runs: crashingOnce(w.runs) }), config, unit!, { isLastAttempt: false }),
    ).rejects.toThrow('worker killed');
    await processUnit(w.deps(), config, unit!, { isLastAttempt: false });
    const second = (await w.finalize(1))!;
    await w.expectTrueVectors(1, second.counts.chunks);
    expect(cleanRun.counts.removedChunks).toBeGreaterThan(0);
    expect(countsOf(second.counts)).toEqual(countsOf(cleanRun.counts));
    const third = await w.plainRun(2, { 'a.jsonl': twice });
    await w.expectTrueVectors(2, third.counts.chunks);
    expect(third.counts).toMatchObject({ embedded: 0 });
  });
});
