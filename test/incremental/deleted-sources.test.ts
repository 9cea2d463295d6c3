import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  compareSourceManifests,
  type SourceManifestOptions,
} from '../../shared/incremental/compare-source-manifests.ts';
import {
  deletedSourcesKey,
  readDeletedSources,
  writeDeletedSources,
} from '../../shared/incremental/deleted-sources.ts';
import { readManifestPointer } from '../../shared/incremental/source-manifest.ts';
import { sourceManifestPointerKey } from '../../shared/output/keys.ts';
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

/** One run: its units' doc lists stored, the sources gone at planning recorded, then compared. */
async function runWith(
  store: ObjectStore,
  n: number,
  units: readonly UnitSpec[],
  deleted: readonly string[] = [],
  options: Partial<SourceManifestOptions> = {},
) {
  const runId = runIdOf(n);
  const stored: StoredUnit[] = await aRun(store, runId, units);
  await writeDeletedSources(store, PIPELINE, runId, deleted);
  return compareSourceManifests(
    store,
    { runId, pipeline: PIPELINE, startedAt: startedAtOf(runId) },
    stored,
    COMPARED_AT,
    {
      ...SMALL,
      ...options,
    },
  );
}

describe('deleted sources', () => {
  it('records the keys sorted and once, and reads none back for a run that recorded none', async () => {
    const store = new MemoryObjectStore(16);
    await writeDeletedSources(store, PIPELINE, runIdOf(1), [B, A, B]);
    expect(await readDeletedSources(store, PIPELINE, runIdOf(1))).toEqual([A, B]);

    await writeDeletedSources(store, PIPELINE, runIdOf(2), []);
    expect(store.objects.has(deletedSourcesKey(PIPELINE, runIdOf(2)))).toBe(false);
    expect(await readDeletedSources(store, PIPELINE, runIdOf(2))).toEqual([]);
  });

  it('refuses a record it cannot read, naming it', async () => {
    const store = new MemoryObjectStore(16);
    await store.put(deletedSourcesKey(PIPELINE, runIdOf(1)), '{"keys": [1]}');
    await expect(readDeletedSources(store, PIPELINE, runIdOf(1))).rejects.toThrow(
      /deleted-sources\.json is not a sluice-deleted-sources\/1 list/,
    );
  });

  it('removes every document of a deleted source and leaves it an empty manifest', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 9);
    const b = someDocs('b', 3);
    await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: a, [B]: b } }]);

    // Run 2 reads B again and was told A is gone; no unit of it read A.
    const forgotten: string[] = [];
    const result = await runWith(store, 2, [{ unitId: 'u0', docs: { [B]: b } }], [A], {
      forget: async (ids) => {
        forgotten.push(...ids);
      },
    });

    expect(result).toEqual({
      compared: 2,
      deleted: 1,
      reused: 0,
      skipped: [],
      removedDocuments: 9,
      removedChunks: chunksOf(a),
      sources: [
        {
          source_key: A,
          status: 'deleted',
          documents: 0,
          chunks: 0,
          removed_documents: 9,
          removed_chunks: chunksOf(a),
          reason: null,
        },
        {
          source_key: B,
          status: 'read',
          documents: 3,
          chunks: chunksOf(b),
          removed_documents: 0,
          removed_chunks: 0,
          reason: null,
        },
      ],
    });
    expect(forgotten.sort()).toEqual(a.map(([id]) => id));
    expect(await currentManifest(store, A)).toEqual([]);
    expect(await readManifestPointer(store, PIPELINE, A)).toMatchObject({
      runId: runIdOf(2),
      docs: 0,
      segments: [],
      removedDocuments: 9,
    });
    expect(await currentManifest(store, B)).toEqual(b);
  });

  it('runs with no unit at all: a run that only learned of deletions', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 5);
    await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: a } }]);

    const result = await runWith(store, 2, [], [A]);

    expect(result).toMatchObject({
      compared: 1,
      deleted: 1,
      removedDocuments: 5,
      removedChunks: chunksOf(a),
    });
    // Told again (a second notice, or a retried plan in a later run): nothing is left to remove.
    expect(await runWith(store, 3, [], [A])).toMatchObject({ compared: 1, deleted: 1, removedDocuments: 0 });
  });

  it.each([
    ['held in memory', {}],
    ['checked in rounds of 2', { maxCandidates: 2 }],
  ])(
    'does not remove what moved: to another source of the run, or earlier by the index (%s)',
    async (_, options) => {
      const store = new MemoryObjectStore(16);
      const a = someDocs('a', 8);
      await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: a } }]);

      // A is deleted; a0001 and a0002 are in B now (this run reads B); the index places
      // a0003 in C (an earlier run read it there), a0004 in A itself.
      const lastSource = new Map<string, string | undefined>([
        ['a0003', C],
        ['a0004', A],
      ]);
      const forgotten: string[] = [];
      const result = await runWith(store, 2, [{ unitId: 'u0', docs: { [B]: [a[1]!, a[2]!] } }], [A], {
        ...options,
        lastSourceOf: async (ids) => new Map(ids.map((id) => [id, lastSource.get(id)])),
        forget: async (ids) => {
          forgotten.push(...ids);
        },
      });

      const gone = a.filter(([id]) => !['a0001', 'a0002', 'a0003'].includes(id));
      expect(result).toMatchObject({
        deleted: 1,
        removedDocuments: gone.length,
        removedChunks: chunksOf(gone),
      });
      expect(forgotten.sort()).toEqual(gone.map(([id]) => id));
    },
  );

  it('writes nothing for a deleted source no run has completed', async () => {
    const store = new MemoryObjectStore(16);
    const result = await runWith(store, 1, [], [A]);

    expect(result).toEqual({
      compared: 0,
      deleted: 0,
      reused: 0,
      skipped: [],
      removedDocuments: 0,
      removedChunks: 0,
      sources: [],
    });
    expect(store.objects.has(sourceManifestPointerKey(PIPELINE, A))).toBe(false);
  });

  it('reads a source that a unit of the run read, even if a notice called it deleted', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 6);
    await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: a } }]);

    // Deleted, then uploaded again with fewer documents before the run was planned.
    const result = await runWith(store, 2, [{ unitId: 'u0', docs: { [A]: a.slice(2) } }], [A]);

    expect(result).toMatchObject({ compared: 1, deleted: 0, removedDocuments: 2 });
    expect(await currentManifest(store, A)).toEqual(a.slice(2));
  });

  it('leaves alone a deleted source whose manifest a later run already replaced (uploaded again)', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 4);
    await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: a } }]);
    await runWith(store, 3, [{ unitId: 'u0', docs: { [A]: a } }]);

    const result = await runWith(store, 2, [], [A]);

    expect(result).toMatchObject({ compared: 0, deleted: 0, removedDocuments: 0 });
    expect(result.skipped).toEqual([{ sourceKey: A, reason: expect.stringMatching(/started later/) }]);
    expect(await currentManifest(store, A)).toEqual(a);
  });

  it('says how to count a deleted source that finalize had no time for (no later run names it)', async () => {
    const store = new MemoryObjectStore(16);
    await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: someDocs('a', 4) } }]);

    const result = await runWith(store, 2, [], [A], { stopAfter: 0 });

    expect(result.skipped).toEqual([
      {
        sourceKey: A,
        reason: expect.stringMatching(/no time left .*\(deleted\): drop an empty file under its key/),
      },
    ]);
    expect(result.sources).toEqual([
      expect.objectContaining({ source_key: A, status: 'skipped', reason: result.skipped[0]!.reason }),
    ]);
    expect(await currentManifest(store, A)).toEqual(someDocs('a', 4));
  });

  it('counts nothing when the record of deleted sources cannot be read', async () => {
    const store = new MemoryObjectStore(16);
    const a = someDocs('a', 4);
    await runWith(store, 1, [{ unitId: 'u0', docs: { [A]: a } }]);
    await store.put(deletedSourcesKey(PIPELINE, runIdOf(2)), 'not json');

    const runId = runIdOf(2);
    const units = await aRun(store, runId, [{ unitId: 'u0', docs: { [A]: a.slice(1) } }]);
    const result = await compareSourceManifests(
      store,
      { runId, pipeline: PIPELINE, startedAt: startedAtOf(runId) },
      units,
      COMPARED_AT,
      SMALL,
    );

    expect(result).toMatchObject({ compared: 0, removedDocuments: 0 });
    expect(result.skipped).toEqual([
      { sourceKey: A, reason: expect.stringMatching(/deleted-sources\.json/) },
    ]);
    expect(await currentManifest(store, A)).toEqual(a);
  });
});
