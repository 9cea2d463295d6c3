import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  compareSourceManifests,
  type SourceManifestOptions,
} from '../../shared/incremental/compare-source-manifests.ts';
import { writeDeletedSources } from '../../shared/incremental/deleted-sources.ts';
import { compareDocIds } from '../../shared/incremental/doc-lines.ts';
import { ManifestWriter, readManifestPointer } from '../../shared/incremental/source-manifest.ts';
import {
  sourceManifestPointerKey,
  sourceManifestSegmentKey,
  unitDocListKey,
} from '../../shared/output/keys.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { StoredUnit } from '../../shared/ports/run-store.ts';
import {
  A,
  aRun,
  B,
  C,
  COMPARED_AT,
  chunksOf,
  currentManifest,
  PIPELINE,
  runIdOf,
  SMALL,
  someDocs,
  startedAtOf,
  type UnitSpec,
} from './factories.ts';

const compare = (
  store: ObjectStore,
  runId: string,
  units: readonly StoredUnit[],
  options: Partial<SourceManifestOptions> = {},
  startedAt = startedAtOf(runId),
) =>
  compareSourceManifests(store, { runId, pipeline: PIPELINE, startedAt }, units, COMPARED_AT, {
    ...SMALL,
    ...options,
  });

/** Splits docs over `n` units in interleaved order, as byte ranges of one big file would not, to test the merge. */
function spread(source: string, docs: [string, number][], n: number, prefix = 'u'): UnitSpec[] {
  return Array.from({ length: n }, (_, u) => ({
    unitId: `${prefix}${u}`,
    docs: { [source]: docs.filter((_, i) => i % n === u) },
  }));
}

/** A store that fails every put under `prefix` once armed: a finalize that crashes there. */
class CrashingStore extends MemoryObjectStore {
  crashOn: ((key: string) => boolean) | undefined;
  override async put(key: string, body: Uint8Array | string): Promise<void> {
    if (this.crashOn?.(key)) throw new Error(`crash before writing ${key}`);
    await super.put(key, body);
  }
}

describe('compareSourceManifests', () => {
  it('removes nothing on a source first run and stores its merged documents in segments', async () => {
    const store = new MemoryObjectStore(16);
    const docs = someDocs('d', 11);
    const result = await compare(store, runIdOf(1), await aRun(store, runIdOf(1), spread(A, docs, 3)));

    expect(result).toEqual({
      compared: 1,
      deleted: 0,
      reused: 0,
      skipped: [],
      removedDocuments: 0,
      removedChunks: 0,
      sources: [
        {
          source_key: A,
          status: 'read',
          documents: 11,
          chunks: chunksOf(docs),
          removed_documents: 0,
          removed_chunks: 0,
          reason: null,
        },
      ],
    });
    expect(await currentManifest(store, A)).toEqual(docs);
    const pointer = await readManifestPointer(store, PIPELINE, A);
    expect(pointer).toMatchObject({
      runId: runIdOf(1),
      slot: 0,
      docs: 11,
      chunks: chunksOf(docs),
      removedDocuments: 0,
      previous: null,
    });
    expect(pointer?.segments.map((s) => s.docs)).toEqual([4, 4, 3]);
  });

  it('counts the chunks the last manifest gave each document that is gone, across units and segments', async () => {
    const store = new MemoryObjectStore(16);
    const docs = someDocs('d', 30);
    await compare(store, runIdOf(1), await aRun(store, runIdOf(1), spread(A, docs, 4)));

    const gone = docs.filter((_, i) => i % 7 === 3);
    // The second drop also edits a document (its chunk count changes): the manifest takes the new count.
    const kept = docs
      .filter((d) => !gone.includes(d))
      .map(([id, n]): [string, number] => [id, id === 'd0000' ? 9 : n]);
    const result = await compare(store, runIdOf(2), await aRun(store, runIdOf(2), spread(A, kept, 3)));

    expect(result).toMatchObject({
      compared: 1,
      removedDocuments: gone.length,
      removedChunks: chunksOf(gone),
    });
    expect(await currentManifest(store, A)).toEqual(kept);
    const pointer = await readManifestPointer(store, PIPELINE, A);
    expect(pointer).toMatchObject({ runId: runIdOf(2), slot: 1, previous: { runId: runIdOf(1), slot: 0 } });

    // Dropped again unchanged: nothing is gone.
    const third = await compare(store, runIdOf(3), await aRun(store, runIdOf(3), spread(A, kept, 2)));
    expect(third).toMatchObject({ removedDocuments: 0, removedChunks: 0 });
    expect((await readManifestPointer(store, PIPELINE, A))?.slot).toBe(0);
  });

  it('sums a document listed more than once in a source (two records with one id), and diffs by id', async () => {
    const store = new MemoryObjectStore(16);
    const units: UnitSpec[] = [
      {
        unitId: 'u0',
        docs: {
          [A]: [
            ['x', 2],
            ['y', 1],
          ],
        },
      },
      {
        unitId: 'u1',
        docs: {
          [A]: [
            ['x', 3],
            ['z', 1],
          ],
        },
      },
    ];
    await compare(store, runIdOf(1), await aRun(store, runIdOf(1), units));
    expect(await currentManifest(store, A)).toEqual([
      ['x', 5],
      ['y', 1],
      ['z', 1],
    ]);

    const result = await compare(
      store,
      runIdOf(2),
      await aRun(store, runIdOf(2), [{ unitId: 'u0', docs: { [A]: [['y', 1]] } }]),
    );
    expect(result).toMatchObject({ removedDocuments: 2, removedChunks: 6 });
  });

  it('removes every document of a source re-dropped with none (only rejects, or an empty file)', async () => {
    const store = new MemoryObjectStore(16);
    const docs = someDocs('d', 9);
    await compare(store, runIdOf(1), await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: docs } }]));

    const result = await compare(
      store,
      runIdOf(2),
      await aRun(store, runIdOf(2), [{ unitId: 'u0', docs: {}, alsoRead: [A] }]),
    );
    expect(result).toMatchObject({ compared: 1, removedDocuments: 9, removedChunks: chunksOf(docs) });
    expect(await currentManifest(store, A)).toEqual([]);
    expect((await readManifestPointer(store, PIPELINE, A))?.segments).toEqual([]);
  });

  it.each([
    ['held in memory', {}],
    ['checked in rounds of 2', { maxCandidates: 2 }],
  ])('does not remove documents that moved to another source of the same run (%s)', async (_, options) => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 8);
    const b = someDocs('b', 5);
    await compare(
      store,
      runIdOf(1),
      await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: a, [B]: b } }]),
      options,
    );

    // a0001 and a0002 move to B, a0003 to C (a new file); a0004 and b0000 are deleted.
    const moved = (ids: string[]) => a.filter(([id]) => ids.includes(id));
    const units: UnitSpec[] = [
      { unitId: 'u0', docs: { [A]: a.filter(([id]) => !['a0001', 'a0002', 'a0003', 'a0004'].includes(id)) } },
      {
        unitId: 'u1',
        docs: { [B]: [...b.slice(1), ...moved(['a0001', 'a0002'])].sort(([x], [y]) => compareDocIds(x, y)) },
      },
      { unitId: 'u2', docs: { [C]: moved(['a0003']) } },
    ];
    const result = await compare(store, runIdOf(2), await aRun(store, runIdOf(2), units), options);

    const deleted = [...moved(['a0004']), b[0]!];
    expect(result).toMatchObject({ compared: 3, removedDocuments: 2, removedChunks: chunksOf(deleted) });
    expect((await readManifestPointer(store, PIPELINE, A))?.removedDocuments).toBe(1);
    expect((await readManifestPointer(store, PIPELINE, B))?.removedDocuments).toBe(1);
  });

  it.each([
    ['held in memory', {}],
    ['checked in rounds of 2', { maxCandidates: 2 }],
  ])('tells forget the removed documents only, not the moved ones (%s)', async (_, options) => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 8);
    const b = someDocs('b', 5);
    const forgotten: string[] = [];
    const forget = async (ids: string[]) => {
      forgotten.push(...ids);
    };
    await compare(
      store,
      runIdOf(1),
      await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: a, [B]: b } }]),
      {
        ...options,
        forget,
      },
    );
    expect(forgotten).toEqual([]);

    // a0001 moves to B; a0004 and b0000 are deleted.
    const units: UnitSpec[] = [
      { unitId: 'u0', docs: { [A]: a.filter(([id]) => !['a0001', 'a0004'].includes(id)) } },
      { unitId: 'u1', docs: { [B]: [...b.slice(1), a[1]!].sort(([x], [y]) => compareDocIds(x, y)) } },
    ];
    await compare(store, runIdOf(2), await aRun(store, runIdOf(2), units), { ...options, forget });
    expect(forgotten.sort()).toEqual(['a0004', 'b0000']);

    // One source alone: every vanished document is removed, in batches.
    forgotten.length = 0;
    const alone = [{ unitId: 'u0', docs: { [A]: a.slice(5) } }];
    await compare(store, runIdOf(3), await aRun(store, runIdOf(3), alone), { ...options, forget });
    expect(forgotten.sort()).toEqual(['a0000', 'a0002', 'a0003']);
  });

  it.each([
    ['alone in its run', false],
    ['beside another source of the run', true],
  ])(
    'does not remove a document the index places in a source this run did not read (%s)',
    async (_, withB) => {
      const store = new MemoryObjectStore(16);
      const a = someDocs('a', 6);
      const b = someDocs('b', 3);
      await compare(store, runIdOf(1), await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: a } }]));

      // a0001 moved to C in a run that did not read A; a0002 and a0003 are gone for good; a0004
      // is in the index as read from B, which this run reads and which does not hold it.
      const lastSource = new Map<string, string | undefined>([
        ['a0001', C],
        ['a0002', A],
        ['a0004', B],
      ]);
      const forgotten: string[] = [];
      const kept = a.filter(([id]) => !['a0001', 'a0002', 'a0003', 'a0004'].includes(id));
      const units: UnitSpec[] = [
        { unitId: 'u0', docs: { [A]: kept } },
        ...(withB ? [{ unitId: 'u1', docs: { [B]: b } }] : [{ unitId: 'u1', docs: { [B]: [] } }]),
      ];
      const result = await compare(store, runIdOf(2), await aRun(store, runIdOf(2), units), {
        lastSourceOf: async (ids) => new Map(ids.map((id) => [id, lastSource.get(id)])),
        forget: async (ids) => {
          forgotten.push(...ids);
        },
      });
      const gone = a.filter(([id]) => ['a0002', 'a0003', 'a0004'].includes(id));
      expect(result).toMatchObject({ removedDocuments: 3, removedChunks: chunksOf(gone) });
      expect(forgotten.sort()).toEqual(['a0002', 'a0003', 'a0004']);
    },
  );

  it('skips a source with a failed unit and leaves its manifest as it was; other sources go on', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 10);
    const b = someDocs('b', 6);
    await compare(
      store,
      runIdOf(1),
      await aRun(store, runIdOf(1), [...spread(A, a, 2), { unitId: 'u9', docs: { [B]: b } }]),
    );
    const before = await store.get(sourceManifestPointerKey(PIPELINE, A));

    const units = await aRun(store, runIdOf(2), [
      { unitId: 'u0', docs: { [A]: a.slice(0, 3) } },
      // Its doc list is from an earlier attempt; the unit failed, so its records are in no table.
      { unitId: 'u1', docs: { [A]: a.slice(5) }, status: 'failed' },
      { unitId: 'u9', docs: { [B]: b.slice(1) } },
    ]);
    const result = await compare(store, runIdOf(2), units);

    expect(result).toMatchObject({
      compared: 1,
      removedDocuments: 1,
      removedChunks: b[0]![1],
      skipped: [{ sourceKey: A, reason: expect.stringContaining('unit u1 failed') }],
    });
    expect(await store.get(sourceManifestPointerKey(PIPELINE, A))).toEqual(before);
    expect(await currentManifest(store, A)).toEqual(a);
  });

  it('a finalize retried after the pointers flipped reuses the counts instead of diffing against itself', async () => {
    const store = new MemoryObjectStore(16);
    const docs = someDocs('d', 12);
    await compare(store, runIdOf(1), await aRun(store, runIdOf(1), spread(A, docs, 2)));
    const units = await aRun(store, runIdOf(2), spread(A, docs.slice(4), 2));

    const first = await compare(store, runIdOf(2), units);
    const retried = await compare(store, runIdOf(2), units);

    expect(first).toMatchObject({
      compared: 1,
      reused: 0,
      removedDocuments: 4,
      removedChunks: chunksOf(docs.slice(0, 4)),
    });
    expect(retried).toEqual({ ...first, compared: 0, reused: 1 });
    expect(await readManifestPointer(store, PIPELINE, A)).toMatchObject({
      runId: runIdOf(2),
      previous: { runId: runIdOf(1) },
    });

    // Even once a later run has replaced the manifest in turn, the retry finds its counts in `previous`.
    await compare(store, runIdOf(3), await aRun(store, runIdOf(3), spread(A, docs.slice(5), 1)));
    expect(await compare(store, runIdOf(2), units)).toEqual(retried);
  });

  it('a crash before the pointer flip leaves the old manifest whole, and the retry counts the same', async () => {
    const store = new CrashingStore(16);
    const docs = someDocs('d', 13);
    await compare(store, runIdOf(1), await aRun(store, runIdOf(1), spread(A, docs, 2)));
    const units = await aRun(store, runIdOf(2), spread(A, docs.slice(0, 6), 3));

    store.crashOn = (key) => key.endsWith('current.json');
    await expect(compare(store, runIdOf(2), units)).rejects.toThrow(/crash before writing/);
    expect(await currentManifest(store, A)).toEqual(docs);

    store.crashOn = (key) => key === sourceManifestSegmentKey(PIPELINE, A, 1, 1);
    await expect(compare(store, runIdOf(2), units)).rejects.toThrow(/crash before writing/);
    expect(await currentManifest(store, A)).toEqual(docs);

    store.crashOn = undefined;
    const result = await compare(store, runIdOf(2), units);
    expect(result).toMatchObject({
      compared: 1,
      removedDocuments: 7,
      removedChunks: chunksOf(docs.slice(6)),
    });
    expect(await currentManifest(store, A)).toEqual(docs.slice(0, 6));
  });

  it('leaves a manifest that a later run already replaced alone', async () => {
    const store = new MemoryObjectStore(16);
    await compare(
      store,
      runIdOf(5),
      await aRun(store, runIdOf(5), [{ unitId: 'u0', docs: { [A]: someDocs('d', 3) } }]),
    );
    const result = await compare(
      store,
      runIdOf(4),
      await aRun(store, runIdOf(4), [{ unitId: 'u0', docs: { [A]: [] } }]),
    );
    expect(result).toMatchObject({
      compared: 0,
      removedDocuments: 0,
      skipped: [{ sourceKey: A, reason: expect.stringContaining(`run ${runIdOf(5)}`) }],
    });
    expect((await readManifestPointer(store, PIPELINE, A))?.runId).toBe(runIdOf(5));
  });

  it('orders runs by when they started, not by their ids (which only count seconds)', async () => {
    const store = new MemoryObjectStore(16);
    const [early, late] = ['r-20260301T100000Z-ffffff', 'r-20260301T100000Z-000000'];
    const at = (ms: number) => new Date(Date.UTC(2026, 2, 1, 10, 0, 0, ms)).toISOString();
    const docs = someDocs('d', 5);
    await compare(
      store,
      early,
      await aRun(store, early, [{ unitId: 'u0', docs: { [A]: docs } }]),
      {},
      at(100),
    );
    const result = await compare(
      store,
      late,
      await aRun(store, late, [{ unitId: 'u0', docs: { [A]: docs.slice(1) } }]),
      {},
      at(900),
    );
    expect(result).toMatchObject({ compared: 1, removedDocuments: 1 });
    expect(await readManifestPointer(store, PIPELINE, A)).toMatchObject({
      runId: late,
      runStartedAt: at(900),
    });
  });

  it('replaces, without counting, a manifest whose slot another run overwrote meanwhile', async () => {
    const store = new MemoryObjectStore(16);
    await compare(
      store,
      runIdOf(1),
      await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: someDocs('d', 6) } }]),
    );
    // Run 3 writes into the slot run 1's pointer names (it had read an older pointer), then dies.
    const writer = new ManifestWriter(store, PIPELINE, A, runIdOf(3), 0, 4);
    for (const [id, chunks] of someDocs('d', 5)) await writer.add({ id, chunks });
    await writer.finish();

    const result = await compare(
      store,
      runIdOf(2),
      await aRun(store, runIdOf(2), [{ unitId: 'u0', docs: { [A]: someDocs('d', 2) } }]),
    );
    expect(result).toMatchObject({
      compared: 0,
      removedDocuments: 0,
      skipped: [
        {
          sourceKey: A,
          reason: expect.stringMatching(/stored manifest was unreadable.*removals not counted/),
        },
      ],
    });
    expect(await currentManifest(store, A)).toEqual(someDocs('d', 2));
  });

  it('compares nothing when a succeeded unit left no doc list, since any document could be in it', async () => {
    const store = new MemoryObjectStore(16);
    await compare(
      store,
      runIdOf(1),
      await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: someDocs('d', 4) } }]),
    );
    const units = await aRun(store, runIdOf(2), [
      { unitId: 'u0', docs: { [A]: someDocs('d', 1) } },
      { unitId: 'u1', docs: { [B]: someDocs('d', 4) }, listed: false },
    ]);
    const result = await compare(store, runIdOf(2), units);
    expect(result).toMatchObject({ compared: 0, removedDocuments: 0 });
    expect(result.skipped.map((s) => s.sourceKey)).toEqual([A, B]);
    expect(result.skipped[0]?.reason).toContain('unit u1 left no document list');
  });

  it('counts nothing, and moves no pointer, when a doc list cannot be parsed', async () => {
    const store = new MemoryObjectStore(16);
    await compare(
      store,
      runIdOf(1),
      await aRun(store, runIdOf(1), [{ unitId: 'u0', docs: { [A]: someDocs('d', 4) } }]),
    );
    const units = await aRun(store, runIdOf(2), [{ unitId: 'u0', docs: { [A]: someDocs('d', 2) } }]);
    const key = unitDocListKey(PIPELINE, runIdOf(2), 'u0');
    const body = new TextDecoder().decode(await store.get(key));
    await store.put(key, body.replace('"d0001"', '"d0001\t')); // same length, no closing quote

    const result = await compare(store, runIdOf(2), units);
    expect(result).toMatchObject({
      compared: 0,
      removedDocuments: 0,
      skipped: [{ sourceKey: A, reason: expect.stringContaining('malformed document line') }],
    });
    expect((await readManifestPointer(store, PIPELINE, A))?.runId).toBe(runIdOf(1));
  });

  it('starts no source past its deadline: those left keep their manifest and are compared by a later run', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 6);
    const b = someDocs('b', 6);
    const first: UnitSpec[] = [
      { unitId: 'u0', docs: { [A]: a } },
      { unitId: 'u1', docs: { [B]: b } },
    ];
    await compare(store, runIdOf(1), await aRun(store, runIdOf(1), first));

    // Run 2 deletes a document from each source, but its finalize has time for one source only.
    const second: UnitSpec[] = [
      { unitId: 'u0', docs: { [A]: a.slice(1) } },
      { unitId: 'u1', docs: { [B]: b.slice(1) } },
    ];
    let now = 0;
    const late = await compare(store, runIdOf(2), await aRun(store, runIdOf(2), second), {
      concurrency: 1,
      stopAfter: 1,
      clock: () => now++,
    });
    expect(late).toMatchObject({ compared: 1, removedDocuments: 1, removedChunks: a[0]![1] });
    expect(late.skipped).toEqual([{ sourceKey: B, reason: expect.stringContaining('no time left') }]);
    expect((await readManifestPointer(store, PIPELINE, B))?.runId).toBe(runIdOf(1));
    expect(await currentManifest(store, B)).toEqual(b);

    // Run 3 sees B as run 2 left it: the deletion is counted then, against run 1's manifest.
    const third = await compare(
      store,
      runIdOf(3),
      await aRun(store, runIdOf(3), [{ unitId: 'u1', docs: { [B]: b.slice(1) } }]),
    );
    expect(third).toMatchObject({ compared: 1, skipped: [], removedDocuments: 1, removedChunks: b[0]![1] });

    const none = await compare(store, runIdOf(4), await aRun(store, runIdOf(4), second), { stopAfter: 0 });
    expect(none).toMatchObject({ compared: 0, removedDocuments: 0 });
    expect(none.skipped.map((s) => s.sourceKey)).toEqual([A, B]);
  });

  it('compares many small sources at once, big ones a few at a time', async () => {
    /** Holds each manifest segment put a moment, counting how many are in flight at once: one per source compared. */
    class SlowSegmentStore extends MemoryObjectStore {
      inFlight = 0;
      peak = 0;
      override async put(key: string, body: Uint8Array | string): Promise<void> {
        if (!key.includes('/sources/') || key.endsWith('current.json')) return super.put(key, body);
        this.inFlight += 1;
        this.peak = Math.max(this.peak, this.inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        this.inFlight -= 1;
        return super.put(key, body);
      }
    }
    const sources = Array.from(
      { length: 40 },
      (_, i) => `incoming/docs/small-${String(i).padStart(2, '0')}.jsonl`,
    );
    const units: UnitSpec[] = [
      { unitId: 'u0', docs: Object.fromEntries(sources.map((key, i) => [key, someDocs(`s${i}-`, 3)])) },
    ];
    const peakWith = async (options: Partial<SourceManifestOptions>) => {
      const store = new SlowSegmentStore(16);
      const result = await compare(store, runIdOf(1), await aRun(store, runIdOf(1), units), {
        segmentDocs: 100,
        ...options,
      });
      expect(result).toMatchObject({ compared: 40, skipped: [] });
      return store.peak;
    };

    expect(await peakWith({ concurrency: 2, smallConcurrency: 16 })).toBe(16);
    expect(await peakWith({ concurrency: 2, smallConcurrency: 16, smallSourceDocs: 2 })).toBe(2);
  });

  it('agrees with a model of every source snapshot over random runs, failures, moves and deleted sources', async () => {
    const ids = fc.constantFrom(
      ...['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'tab\there', 'é', '😀', '\uffff', 'z'],
    );
    const unitArb = fc.record({
      docs: fc.dictionary(
        fc.constantFrom(A, B, C),
        fc.array(fc.tuple(ids, fc.integer({ min: 1, max: 4 })), { maxLength: 6 }),
        { minKeys: 1 },
      ),
      failed: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    });
    const runArb = fc.record({
      units: fc.array(unitArb, { minLength: 1, maxLength: 4 }),
      // Sources the run was told are gone from the bucket (ignored for one a unit read).
      deleted: fc.subarray([A, B, C]),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(runArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        async (runs, segmentDocs, maxCandidates) => {
          const store = new MemoryObjectStore(8);
          const model = new Map<string, Map<string, number>>();
          for (const [r, { units: specs, deleted }] of runs.entries()) {
            const runId = runIdOf(r + 1);
            const units: UnitSpec[] = specs.map((spec, u) => ({
              unitId: `u${u}`,
              // A unit's list holds each (source, id) once; the factory sums repeats as UnitDocList does.
              docs: spec.docs,
              status: spec.failed ? 'failed' : 'succeeded',
            }));
            const stored = await aRun(store, runId, units);
            await writeDeletedSources(store, PIPELINE, runId, deleted);
            const result = await compare(store, runId, stored, { segmentDocs, maxCandidates });

            const live = specs.filter((s) => !s.failed);
            const union = new Set(
              live.flatMap((s) => Object.values(s.docs).flatMap((d) => d.map(([id]) => id))),
            );
            const touched = new Set(specs.flatMap((s) => Object.keys(s.docs)));
            const failedSources = new Set(specs.filter((s) => s.failed).flatMap((s) => Object.keys(s.docs)));
            let removedDocuments = 0;
            let removedChunks = 0;
            for (const source of touched) {
              if (failedSources.has(source)) continue;
              const next = new Map<string, number>();
              for (const spec of live)
                for (const [id, n] of spec.docs[source] ?? []) next.set(id, (next.get(id) ?? 0) + n);
              for (const [id, n] of model.get(source) ?? new Map<string, number>()) {
                if (union.has(id)) continue;
                removedDocuments += 1;
                removedChunks += n;
              }
              model.set(source, next);
            }
            // A deleted source holds nothing now; one no run completed has no manifest to empty.
            let deletedCompared = 0;
            for (const source of deleted) {
              const before = model.get(source);
              if (touched.has(source) || before === undefined) continue;
              deletedCompared += 1;
              for (const [id, n] of before) {
                if (union.has(id)) continue;
                removedDocuments += 1;
                removedChunks += n;
              }
              model.set(source, new Map());
            }
            expect(result).toMatchObject({ removedDocuments, removedChunks, deleted: deletedCompared });
            expect(result.sources.filter((row) => row.status === 'deleted')).toHaveLength(deletedCompared);
            for (const source of new Set([...touched, ...deleted])) {
              const expected = [...(model.get(source) ?? new Map<string, number>())].sort(([x], [y]) =>
                compareDocIds(x, y),
              );
              expect(await currentManifest(store, source)).toEqual(expected);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
