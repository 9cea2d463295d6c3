import {
  type PackedFile,
  pendingUnitState,
  type UnitStatus,
  type WorkUnit,
} from '../../shared/domain/types.ts';
import type { SourceManifestOptions } from '../../shared/incremental/compare-source-manifests.ts';
import { manifestDocs, readManifestPointer } from '../../shared/incremental/source-manifest.ts';
import { UnitDocList } from '../../shared/incremental/unit-doc-list.ts';
import { unitDocListKey } from '../../shared/output/keys.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { StoredUnit } from '../../shared/ports/run-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';

export const PIPELINE = 'docs';

/** When the comparisons of these tests run. */
export const COMPARED_AT = new Date('2026-03-01T12:00:00Z');
/** Tiny segments and read windows, so every test crosses segment and window boundaries. */
export const SMALL: Partial<SourceManifestOptions> = {
  segmentDocs: 4,
  readWindowBytes: 64,
  mergeBufferBytes: 256,
};
/** Three sources of the pipeline. */
export const A = 'incoming/docs/a.jsonl';
export const B = 'incoming/docs/b.jsonl';
export const C = 'incoming/docs/c.jsonl';

/** Sortable run ids, one per `n`: later `n`, later run. */
export const runIdOf = (n: number): string => `r-20260301T10${String(n).padStart(4, '0')}Z-abc123`;

/** When the run of {@link runIdOf} started: `n` seconds after 10:00 (any other id: 10:00). */
export function startedAtOf(runId: string): string {
  const n = /^r-20260301T10(\d{4})Z-/.exec(runId)?.[1];
  return new Date(Date.UTC(2026, 2, 1, 10) + Number(n ?? 0) * 1000).toISOString();
}

/** What one unit of a run wrote: per source key, its documents and their chunk counts. */
export interface UnitSpec {
  readonly unitId: string;
  readonly docs: Readonly<Record<string, ReadonlyArray<readonly [string, number]>>>;
  /** Sources the unit read besides those with documents (files that held only rejects). */
  readonly alsoRead?: readonly string[];
  readonly status?: UnitStatus;
  /** False: the unit died before writing its doc list. @default true */
  readonly listed?: boolean;
}

function descriptorOf(runId: string, unitId: string, sources: readonly string[]): WorkUnit {
  const packed: PackedFile[] = sources
    .slice(1)
    .map((key) => ({ key, size: 10, format: 'jsonl', compression: 'none' }));
  return {
    runId,
    unitId,
    pipeline: PIPELINE,
    sourceKey: sources[0]!,
    byteStart: 0,
    byteEnd: 10,
    firstLine: 1,
    format: 'jsonl',
    compression: 'none',
    packed,
    estCost: 10,
  };
}

/**
 * Stores the doc lists of a run's units as the workers would (a failed unit's list is
 * whatever an earlier attempt left, here what the spec says) and returns the units as
 * `listUnits({ withDescriptors: true })` would.
 */
export async function aRun(
  store: ObjectStore,
  runId: string,
  units: readonly UnitSpec[],
): Promise<StoredUnit[]> {
  const stored: StoredUnit[] = [];
  for (const spec of units) {
    const sources = [...new Set([...Object.keys(spec.docs), ...(spec.alsoRead ?? [])])];
    const list = new UnitDocList();
    for (const source of sources) {
      list.noteSource(source);
      for (const [id, chunks] of spec.docs[source] ?? []) list.add(source, id, chunks);
    }
    if (spec.listed !== false)
      await store.put(unitDocListKey(PIPELINE, runId, spec.unitId), list.serialize(runId, spec.unitId));
    const descriptor = descriptorOf(runId, spec.unitId, sources);
    stored.push({ ...pendingUnitState(descriptor), status: spec.status ?? 'succeeded', descriptor });
  }
  return stored;
}

/** A source's current manifest as `[id, chunks]` pairs, in stored order. */
export async function currentManifest(store: ObjectStore, sourceKey: string): Promise<[string, number][]> {
  const pointer = await readManifestPointer(store, PIPELINE, sourceKey);
  if (!pointer) return [];
  const out: [string, number][] = [];
  for await (const doc of manifestDocs(store, PIPELINE, sourceKey, pointer)) out.push([doc.id, doc.chunks]);
  return out;
}

/** `n` documents `<prefix>0000..` with 1 + (i % 3) chunks each. */
export function someDocs(prefix: string, n: number, from = 0): [string, number][] {
  return Array.from({ length: n }, (_, i) => [
    `${prefix}${String(from + i).padStart(4, '0')}`,
    1 + ((from + i) % 3),
  ]);
}

export const chunksOf = (docs: ReadonlyArray<readonly [string, number]>): number =>
  docs.reduce((sum, [, chunks]) => sum + chunks, 0);

/** A WorkQueue that keeps the units it was asked to send (a continuation a checkpoint hands on). */
export class RecordingQueue implements WorkQueue {
  units: WorkUnit[] = [];
  async sendUnits(units: readonly WorkUnit[]) {
    this.units.push(...units);
  }
  async requestFinalize() {}
}

/**
 * A clock that says the checkpoint time has come at the (asks + 1)th question. The reader
 * asks before every record but the unit's first, and before each packed file.
 */
export function stopAfterAsks(asks: number) {
  let n = 0;
  return { stopAfter: 1, now: () => (++n > asks ? 2 : 0) };
}
