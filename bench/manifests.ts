import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LOCAL_SOURCE_MANIFESTS } from '../cli/local-run.ts';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.ts';
import { pendingUnitState, type WorkUnit } from '../shared/domain/types.ts';
import {
  compareSourceManifests,
  DEFAULT_SOURCE_MANIFEST_OPTIONS,
  type SourceManifestOptions,
} from '../shared/incremental/compare-source-manifests.ts';
import { writeDeletedSources } from '../shared/incremental/deleted-sources.ts';
import { UnitDocList } from '../shared/incremental/unit-doc-list.ts';
import { unitDocListKey } from '../shared/output/keys.ts';
import type { ObjectStore } from '../shared/ports/object-store.ts';
import type { StoredUnit } from '../shared/ports/run-store.ts';

const PIPELINE = 'docs';
const SOURCE = 'incoming/docs/big.jsonl';
const OTHER_SOURCE = 'incoming/docs/other.jsonl';

/** Stores one doc list per unit, each a contiguous range of the source's documents, as workers write them. */
async function writeRun(
  store: ObjectStore,
  runId: string,
  documents: number,
  units: number,
  kept: (i: number) => boolean,
  source = SOURCE,
): Promise<StoredUnit[]> {
  const stored: StoredUnit[] = [];
  const perUnit = Math.ceil(documents / units);
  for (let u = 0; u < units; u++) {
    const unitId = `u${String(u).padStart(5, '0')}`;
    const list = new UnitDocList();
    const prefix = source === SOURCE ? 'doc' : 'other';
    list.noteSource(source);
    for (let i = u * perUnit; i < Math.min(documents, (u + 1) * perUnit); i++)
      if (kept(i)) list.add(source, `${prefix}-${i}`, 1 + (i % 3));
    await store.put(unitDocListKey(PIPELINE, runId, unitId), list.serialize(runId, unitId));
    const descriptor: WorkUnit = {
      runId,
      unitId,
      pipeline: PIPELINE,
      sourceKey: source,
      byteStart: u,
      byteEnd: u + 1,
      firstLine: 1,
      format: 'jsonl',
      compression: 'none',
      packed: [],
      estCost: 1,
    };
    stored.push({ ...pendingUnitState(descriptor), status: 'succeeded', descriptor });
  }
  return stored;
}

/** Seconds `work` takes. */
async function timed<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number }> {
  const started = performance.now();
  const result = await work();
  return { result, seconds: (performance.now() - started) / 1000 };
}

/**
 * The most live heap `work` holds: a full collection every 25 ms (needs `--expose-gc`,
 * which `npm run bench` passes), the heap used after each, above where it started. Slows
 * the work down, so it runs apart from the timed pass.
 */
async function liveHeapPeakMiB(work: () => Promise<unknown>): Promise<number | null> {
  const gc = globalThis.gc;
  if (!gc) return null;
  gc();
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  const sample = () => {
    gc();
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  };
  const sampler = setInterval(sample, 25);
  try {
    await work();
    sample();
  } finally {
    clearInterval(sampler);
  }
  return Math.round(((peak - base) / 2 ** 20) * 10) / 10;
}

/**
 * Finalize's document manifests at scale: one source of `documents` documents over `units`
 * units (doc lists on a local file store), compared with the finalize Lambda's defaults on
 * its first run, then on a re-drop with every 20th document deleted, then with the source
 * deleted from the bucket. Reports the time (one pass), the most live heap (another pass,
 * collecting every 25 ms), and the removed documents found against those deleted. The
 * baseline is what a diff that did not stream would hold for each side: every document id
 * of the source in a Set.
 */
async function manifestsAt(
  documents: number,
  units: number,
  options: SourceManifestOptions = DEFAULT_SOURCE_MANIFEST_OPTIONS,
) {
  const run = (n: number) => ({
    runId: `r-20260301T10000${n}Z-bench0`,
    pipeline: PIPELINE,
    startedAt: new Date(Date.UTC(2026, 2, 1, 10, 0, n)).toISOString(),
  });
  const deleted = (i: number) => i % 20 === 7;
  /** A first run of the source, then the re-drop, each through `measure`, on a fresh store. */
  const scenario = async <M>(measure: (work: () => Promise<unknown>) => Promise<M>) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-bench-manifests-'));
    try {
      const store = new FsObjectStore(dir);
      const compare = (n: number, stored: StoredUnit[]) =>
        compareSourceManifests(store, run(n), stored, new Date(), options);
      const firstUnits = await writeRun(store, run(1).runId, documents, units, () => true);
      const first = await measure(() => compare(1, firstUnits));
      const secondUnits = await writeRun(store, run(2).runId, documents, units, (i) => !deleted(i));
      const reDrop = await measure(() => compare(2, secondUnits));
      // Then the source is deleted from the bucket, in a run that reads one other small
      // file: every remaining document is a candidate, held for the moves scan.
      await writeDeletedSources(store, PIPELINE, run(3).runId, [SOURCE]);
      const otherUnits = await writeRun(store, run(3).runId, 1000, 1, () => true, OTHER_SOURCE);
      const deletion = await measure(() => compare(3, otherUnits));
      return { first, reDrop, deletion };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  const times = await scenario((work) => timed(work));
  const heaps = await scenario(liveHeapPeakMiB);
  const firstResult = times.first.result as Awaited<ReturnType<typeof compareSourceManifests>>;
  const redropResult = times.reDrop.result as Awaited<ReturnType<typeof compareSourceManifests>>;
  const deletionResult = times.deletion.result as Awaited<ReturnType<typeof compareSourceManifests>>;
  let expectedDocuments = 0;
  let expectedChunks = 0;
  for (let i = 0; i < documents; i++) {
    if (!deleted(i)) continue;
    expectedDocuments += 1;
    expectedChunks += 1 + (i % 3);
  }
  let ids: Set<string> | undefined;
  const setHeap = await liveHeapPeakMiB(async () => {
    ids = new Set(Array.from({ length: documents }, (_, i) => `doc-${i}`));
  });
  void ids;

  return {
    documents,
    units,
    firstRun: { seconds: times.first.seconds, liveHeapPeakMiB: heaps.first, compared: firstResult.compared },
    reDrop: {
      seconds: times.reDrop.seconds,
      liveHeapPeakMiB: heaps.reDrop,
      removedDocuments: redropResult.removedDocuments,
      removedChunks: redropResult.removedChunks,
      expectedDocuments,
      expectedChunks,
    },
    deletion: {
      description: `the source deleted, in a run that reads one other file: its ${documents - expectedDocuments} documents left are all removed (${options.maxCandidates} at most held at once for the moves scan)`,
      seconds: times.deletion.seconds,
      liveHeapPeakMiB: heaps.deletion,
      removedDocuments: deletionResult.removedDocuments,
      expectedDocuments: documents - expectedDocuments,
      exact:
        deletionResult.removedDocuments === documents - expectedDocuments && deletionResult.deleted === 1,
    },
    baseline: {
      description:
        "the source's document ids held in one Set: what a diff that does not stream holds for each side",
      liveHeapMiB: setHeap,
    },
    exact:
      redropResult.removedDocuments === expectedDocuments && redropResult.removedChunks === expectedChunks,
  };
}

/**
 * The same at two sizes, 4x apart: the time should grow with the documents and the live
 * heap should not (it is bounded by read windows and one segment, not by the source).
 */
export async function runManifestsBench() {
  return {
    name: 'manifests' as const,
    options: DEFAULT_SOURCE_MANIFEST_OPTIONS,
    sizes: [await manifestsAt(250_000, 25), await manifestsAt(1_000_000, 100)],
    /** `sluice run`'s settings (smaller segments, buffers and candidate batches) at 1M documents. */
    local: {
      options: { ...DEFAULT_SOURCE_MANIFEST_OPTIONS, ...LOCAL_SOURCE_MANIFESTS },
      size: await manifestsAt(1_000_000, 100, {
        ...DEFAULT_SOURCE_MANIFEST_OPTIONS,
        ...LOCAL_SOURCE_MANIFESTS,
      }),
    },
  };
}
