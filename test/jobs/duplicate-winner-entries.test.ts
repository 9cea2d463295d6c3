import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { LocalChunkIndex } from '../../shared/adapters/local/local-chunk-index.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { resolveDuplicateIds } from '../../shared/duplicates/resolve-duplicate-ids.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import { type ChunkIndex, type IndexedDoc, indexFingerprint } from '../../shared/ports/chunk-index.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { RecordingQueue } from '../incremental/factories.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { DAY_MS, dailyRunId, HashModel, hashVector, T0 } from '../support/hash-model.ts';

const DIMENSION = 8;

/** Units of a few records: each small source its own unit. */
const config = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
  planning: { targetUnitTokens: 20 },
});

/**
 * Units of several records, each record its own window: b.jsonl's first three records in one
 * unit, its last two and a.jsonl (packed) in the other (the test checks it).
 */
const packedConfig = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 1 },
  planning: { targetUnitTokens: 120 },
});

/** A small file one unit, of windows of `sortWindow` records (a window's ids are looked up, and recorded, together). */
const oneUnitConfig = (sortWindow: number) =>
  pipelineConfig({
    endpoint: { name: 'test-embed', dimension: DIMENSION },
    chunking: { maxTokens: 16, overlapTokens: 4 },
    batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow },
    planning: { targetUnitTokens: 4000 },
  });
const windowConfig = oneUnitConfig(16);

const A = 'incoming/docs/a.jsonl';
const B = 'incoming/docs/b.jsonl';
/** a.jsonl's record of `dup`: the rule rejects it whenever b.jsonl has one (docs/decisions.md, "Duplicate ids"). */
const loser = { id: 'dup', text: 'the earlier record of the duplicated id, in a.jsonl' };
/** b.jsonl's record of `dup`, kept. */
const winner = {
  id: 'dup',
  text: 'the later record of the duplicated id, kept, in b.jsonl, with a sentence or two more than the earlier one had',
};
/** Another document beside each, which never changes. */
const other = (file: string) => ({
  id: `only-${file}`,
  text: `a document only ${file} has, always the same`,
});

type Order = 'a first' | 'b first';
type Files = Readonly<Record<string, readonly unknown[]>>;

const dynalite = useDynaliteTables();

/** The two indexes the fix must hold for: the local one (LevelDB) and the deployed one (DynamoDB, on dynalite). */
const INDEXES: Record<string, (dir: string) => Promise<ChunkIndex & { close?: () => Promise<void> }>> = {
  local: async (dir) => new LocalChunkIndex(path.join(dir, 'chunk-index')),
  dynamo: async () => new DynamoChunkIndex({ doc: dynalite.doc, tableName: await dynalite.newTable() }),
};

for (const [name, open] of Object.entries(INDEXES)) {
  describe(`an id in two units of a run: finalize records the kept record's entry (${name} index)`, () => {
    let dir: string;
    let store: MemoryObjectStore;
    let runs: LocalRunStore;
    let queue: RecordingQueue;
    let index: ChunkIndex & { close?: () => Promise<void> };
    let model: HashModel;

    beforeEach(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'sluice-dup-winner-'));
      store = new MemoryObjectStore(97);
      runs = new LocalRunStore(dir);
      queue = new RecordingQueue();
      index = await open(dir);
      model = new HashModel(DIMENSION);
    });
    afterEach(async () => {
      await index.close?.();
      await rm(dir, { recursive: true, force: true });
    });

    const deps = () => ({
      store,
      runs,
      queue,
      endpoint: model,
      tokenCounter: new EstimatingTokenCounter(),
      chunkIndex: index,
    });

    /** Run `n` of `files`, its units in `order` (`unitCount` of them, where given); the chunks the model embedded, per document, and the summary. */
    async function runOf(n: number, files: Files, order: Order, pipeline = config, unitCount?: number) {
      const before = model.texts.length;
      for (const [key, records] of Object.entries(files)) await store.put(key, jsonl(records));
      const { units } = await planRun({ store, runs, queue }, pipeline, {
        runId: dailyRunId(n),
        trigger: 'local',
        keys: Object.keys(files),
        now: new Date(T0 + n * DAY_MS),
      });
      queue.units = [];
      // A unit or more per file (each record its own, at this target), or `unitCount` exactly.
      if (unitCount !== undefined) expect(units).toHaveLength(unitCount);
      else expect(units.length).toBeGreaterThanOrEqual(Object.keys(files).length);
      const sorted = [...units].sort(
        (x, y) => x.sourceKey.localeCompare(y.sourceKey) || x.byteStart - y.byteStart,
      );
      for (const unit of order === 'a first' ? sorted : sorted.reverse())
        await processUnit(deps(), pipeline, unit, { isLastAttempt: false });
      // Finalize's index traffic: ids looked up, entries recorded.
      const finalizeIndex = { read: 0, written: 0 };
      const counted: ChunkIndex = {
        lookupDocs: (...args: Parameters<ChunkIndex['lookupDocs']>) => {
          finalizeIndex.read += args[1].length;
          return index.lookupDocs(...args);
        },
        record: (...args: Parameters<ChunkIndex['record']>) => {
          finalizeIndex.written += args[1].length;
          return index.record(...args);
        },
      };
      const summary = await finalizeRun(
        { store, runs, chunkIndex: counted, pipelines: new Map([['docs', pipeline]]) },
        dailyRunId(n),
        new Date(T0 + n * DAY_MS + 60_000),
      );
      const texts = model.texts.slice(before);
      return { texts, counts: summary!.counts, units, finalizeIndex };
    }

    /** The rows of a unit's `embeddings` part. */
    async function partRows(runId: string, unitId: string): Promise<Record<string, unknown>[]> {
      const body = await store.get(unitPartKey('embeddings', 'docs', runId, unitId));
      if (!body) return [];
      const file = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
      return parquetReadObjects({ file, metadata: parquetMetadata(file) });
    }

    /** `dup`'s rows in run `n`'s parts: every one of them the winner's, each with the vector of its text. */
    async function dupRowsOf(n: number) {
      const stored = await runs.listUnits(dailyRunId(n));
      const rows = (await Promise.all(stored.map((u) => partRows(dailyRunId(n), u.unitId)))).flat();
      const dup = rows.filter((row) => row.doc_id === 'dup');
      for (const row of dup) {
        expect(row.source_key).toBe(B);
        expect(Array.from(row.embedding as Float32Array)).toEqual(
          hashVector(String(row.chunk_text), DIMENSION),
        );
      }
      return dup;
    }

    /**
     * `dup`'s entry: the winner's chunks, naming rows of a part that holds them, `movedUp` rows
     * further up where the entry was recorded before a rewrite dropped a loser's rows in front.
     */
    async function expectWinnerEntry(n: number, movedUp = 0): Promise<IndexedDoc> {
      const dup = await dupRowsOf(n);
      const entry = (await index.lookupDocs('docs', ['dup'])).get('dup');
      expect(entry).toBeDefined();
      expect(entry!).toMatchObject({ chunkCount: dup.length, sourceKey: B });
      const fingerprints = Buffer.concat(dup.map((row) => indexFingerprint(String(row.text_sha256))));
      expect(Buffer.from(entry!.chunks!.fingerprints).equals(fingerprints)).toBe(true);
      const { runId, unitId, firstRow } = entry!.chunks!.at;
      const named = (await partRows(runId, unitId)).slice(
        firstRow - movedUp,
        firstRow - movedUp + dup.length,
      );
      expect(named.map((row) => [row.doc_id, row.chunk_index, row.text_sha256])).toEqual(
        dup.map((row) => ['dup', row.chunk_index, row.text_sha256]),
      );
      return entry!;
    }

    const embeddedOf = (texts: readonly string[], record: { text: string }) =>
      texts.filter((text) => record.text.includes(text)).length;

    for (const order of ['a first', 'b first'] as const) {
      it(`${order}: unchanged re-runs embed none of the winner's chunks; the loser's are embedded each run`, async () => {
        const files = { [A]: [other('a'), loser], [B]: [winner, other('b')] };
        const first = await runOf(0, files, order);
        expect(first.counts).toMatchObject({ rejected: 1 });
        await expectWinnerEntry(0);
        const winnerChunks = embeddedOf(first.texts, winner);
        const loserChunks = embeddedOf(first.texts, loser);
        expect(loserChunks).toBeGreaterThan(1);
        expect(winnerChunks).toBeGreaterThan(loserChunks);
        for (let n = 1; n <= 3; n += 1) {
          const again = await runOf(n, files, order);
          // Before the fix, with b's unit first, the winner's chunks were embedded here every run.
          expect(embeddedOf(again.texts, winner), `run ${n}`).toBe(0);
          // The rejected record's unit cannot know it loses: its chunks differ from the entry's.
          expect(again.texts, `run ${n}`).toHaveLength(loserChunks);
          expect(again.counts).toMatchObject({ rejected: 1, embedded: 0 });
          // Not fixed: the loser's unit counts the winner's extra chunks as removed, each run.
          expect(again.counts.removedChunks, `run ${n}`).toBe(winnerChunks - loserChunks);
          await expectWinnerEntry(n);
        }
      });

      it(`${order}: the kept record only from the second run on (b.jsonl new): carried from then on`, async () => {
        const onlyA = await runOf(0, { [A]: [other('a'), loser] }, order);
        expect(onlyA.counts.rejected).toBe(0);
        const files = { [A]: [other('a'), loser], [B]: [winner, other('b')] };
        const arrives = await runOf(1, files, order);
        expect(embeddedOf(arrives.texts, winner)).toBeGreaterThan(1);
        await expectWinnerEntry(1);
        const loserChunks = embeddedOf(onlyA.texts, loser);
        for (let n = 2; n <= 3; n += 1) {
          const again = await runOf(n, files, order);
          expect(embeddedOf(again.texts, winner), `run ${n}`).toBe(0);
          expect(again.texts, `run ${n}`).toHaveLength(loserChunks);
          await expectWinnerEntry(n);
        }
      });

      it(`${order}: the same text in both files: nothing is embedded again, and a finalize retried writes no entry`, async () => {
        const files = { [A]: [other('a'), { ...winner }], [B]: [winner, other('b')] };
        const first = await runOf(0, files, order);
        expect(first.counts).toMatchObject({ rejected: 1 });
        for (let n = 1; n <= 2; n += 1) {
          const again = await runOf(n, files, order);
          expect(again.texts, `run ${n}`).toEqual([]);
          await expectWinnerEntry(n);
        }
        const units = (await runs.listUnits(dailyRunId(2))).map((u) => u.unitId);
        const retried = await resolveDuplicateIds(
          store,
          { pipeline: 'docs', runId: dailyRunId(2) },
          'embeddings',
          units,
          index,
        );
        expect(retried).toMatchObject({ rejected: 1, partsRewritten: 0, indexEntries: 0 });
      });

      it(`${order}: losers before and after the winner in its own unit: the entry names the winner's rows where the rewrite moved them`, async () => {
        const r = (id: string, w: string) => ({
          id,
          text: `the record ${w} of the files, a few words long here`,
        });
        const files = {
          [A]: [r('a0', 'a0'), r('dup', 'a1')],
          [B]: [r('b0', 'b0'), r('dup', 'b1'), r('b2', 'b2'), r('dup', 'b3'), r('dup', 'b4')],
        };
        const kept = r('dup', 'b4');
        const first = await runOf(0, files, order, packedConfig);
        // b0..b2 in one unit; b3, b4 and a.jsonl in the other: the winner's unit records a
        // loser's entry after the winner's (a.jsonl is read after its range).
        expect(first.units.map((u) => [u.sourceKey, u.packed?.map((p) => p.key) ?? []])).toEqual([
          [B, []],
          [B, [A]],
        ]);
        expect(first.counts).toMatchObject({ rejected: 3 });
        const entry = await expectWinnerEntry(0);
        // b3's rows were dropped from in front of the winner's.
        expect(entry.chunks!.at.firstRow).toBe(0);
        for (let n = 1; n <= 2; n += 1) {
          const again = await runOf(n, files, order, packedConfig);
          expect(embeddedOf(again.texts, kept), `run ${n}`).toBe(0);
          // Only the three losers' chunks are embedded again (every other document is carried).
          const losers = ['a1', 'b1', 'b3'].map((w) => embeddedOf(again.texts, r('dup', w)));
          expect(again.texts).toHaveLength(losers.reduce((sum, c) => sum + c, 0));
          expect(Math.min(...losers)).toBeGreaterThan(0);
          await expectWinnerEntry(n);
        }
      });
    }

    it(`an id twice in one window of one unit: unchanged re-runs embed none of the kept record's chunks`, async () => {
      const files = { [B]: [other('b'), loser, winner] };
      const first = await runOf(0, files, 'a first', windowConfig, 1);
      expect(first.counts).toMatchObject({ rejected: 1 });
      const winnerChunks = embeddedOf(first.texts, winner);
      const loserChunks = embeddedOf(first.texts, loser);
      expect(loserChunks).toBeGreaterThan(1);
      expect(winnerChunks).toBeGreaterThan(loserChunks);
      // The unit records `dup` without fingerprints (it cannot tell which record wins): finalize records the kept one's.
      await expectWinnerEntry(0);
      for (let n = 1; n <= 3; n += 1) {
        const again = await runOf(n, files, 'a first', windowConfig, 1);
        // Before the fix, every one of the kept record's chunks was embedded here every run.
        expect(embeddedOf(again.texts, winner), `run ${n}`).toBe(0);
        // The rejected record's chunks differ from the entry's (chunk for chunk): embedded again.
        expect(again.texts, `run ${n}`).toHaveLength(loserChunks);
        expect(again.counts).toMatchObject({ rejected: 1, embedded: 0, removedChunks: 0 });
        // The unit records `dup` without fingerprints again each run: finalize reads it and writes the kept record's.
        expect(again.finalizeIndex, `run ${n}`).toEqual({ read: 1, written: 1 });
        await expectWinnerEntry(n);
      }
    });

    it(`an id twice in one unit, in two windows, the kept record's last: finalize reads its entry, and writes it where a loser's stands`, async () => {
      const files = { [B]: [other('b'), loser, winner] };
      const first = await runOf(0, files, 'a first', oneUnitConfig(1), 1);
      expect(first.counts).toMatchObject({ rejected: 1 });
      expect(first.finalizeIndex).toEqual({ read: 1, written: 0 });
      const winnerChunks = embeddedOf(first.texts, winner);
      const loserChunks = embeddedOf(first.texts, loser);
      // The winner's window recorded it (right: finalize writes none), before the rewrite dropped the loser's rows in front of its own.
      const entry = await expectWinnerEntry(0, loserChunks);
      expect(entry.chunks!.at).toMatchObject({ runId: dailyRunId(0) });
      for (let n = 1; n <= 2; n += 1) {
        const again = await runOf(n, files, 'a first', oneUnitConfig(1), 1);
        expect(embeddedOf(again.texts, winner), `run ${n}`).toBe(0);
        expect(again.texts, `run ${n}`).toHaveLength(loserChunks);
        // The loser's window records its entry over the winner's, and the unit leaves it (its
        // winner's window, carried whole, does not put the entry back): finalize writes the winner's.
        expect(again.finalizeIndex, `run ${n}`).toEqual({ read: 1, written: 1 });
        // Not fixed: the loser's window counts the winner's extra chunks as removed, each run.
        expect(again.counts.removedChunks, `run ${n}`).toBe(winnerChunks - loserChunks);
        // Finalize's entry counts rows in the rewritten part.
        expect((await expectWinnerEntry(n)).chunks!.at).toMatchObject({ runId: dailyRunId(n) });
      }
    });
  });
}
