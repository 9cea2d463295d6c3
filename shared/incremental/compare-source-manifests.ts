import type { WorkUnit } from '../domain/types.ts';
import type { SourceRow } from '../output/parquet-tables.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { StoredUnit } from '../ports/run-store.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';
import { readDeletedSources } from './deleted-sources.ts';
import { type DocEntry, DocListError } from './doc-lines.ts';
import { DEFAULT_READ_WINDOW_BYTES } from './object-lines.ts';
import { docsMissingFrom, mergeSortedDocs, sumDuplicateDocs } from './sorted-docs.ts';
import {
  DEFAULT_SEGMENT_DOCS,
  type ManifestPointer,
  type ManifestVersion,
  ManifestWriter,
  manifestDocs,
  readManifestPointer,
  SOURCE_MANIFEST_FORMAT,
  writeManifestPointer,
} from './source-manifest.ts';
import { readUnitDocList, type StoredDocList, sectionDocs } from './unit-doc-list.ts';

export interface SourceManifestOptions {
  /** Documents per manifest segment (one segment is held in memory per source being written). @default 200,000 */
  readonly segmentDocs: number;
  /** Sources with more than `smallSourceDocs` documents compared at once. @default 8 */
  readonly concurrency: number;
  /**
   * Small requests made at once: sources of at most `smallSourceDocs` documents (a few
   * small reads and puts each, so a run of thousands of small files is not bound by
   * request latency), doc list headers, pointers, the moves scan. @default 32
   */
  readonly smallConcurrency: number;
  /** @default 10,000 */
  readonly smallSourceDocs: number;
  /** Bytes fetched per read of a doc list or segment, shrunk when one merge has many inputs. @default 256 KiB */
  readonly readWindowBytes: number;
  /** Read buffers one merge may hold in all, which bounds the window when a source has hundreds of units. @default 16 MiB */
  readonly mergeBufferBytes: number;
  /**
   * Vanished documents held at once while checking whether they moved to another source
   * of the run; more are checked in successive rounds, each one scan of the run's doc
   * lists. @default 500,000
   */
  readonly maxCandidates: number;
  /**
   * Time (ms since the epoch) after which no further source is started: those left are
   * skipped, keep their manifest, and are compared by the next run that completes them,
   * so a run of very many sources still finishes within its function's timeout.
   * @default none
   */
  readonly stopAfter?: number;
  /** @default Date.now */
  readonly clock?: () => number;
  /**
   * Told the ids of the documents found removed, a batch at a time, before any pointer
   * moves (so a retried finalize tells them again): the chunk index records them as having
   * no chunks, so a document that comes back is not counted as removing chunks again.
   * @default none
   */
  readonly forget?: (docIds: string[]) => Promise<void>;
  /**
   * The source each document was last read from, as far as the chunk index knows: a
   * document gone from one source that lives in another (it moved there in an earlier
   * run) is not removed. Without it, only moves within this run are seen. @default none
   */
  readonly lastSourceOf?: (docIds: string[]) => Promise<Map<string, string | undefined>>;
}

/** Vanished documents settled (looked up, then forgotten) at a time. */
const SETTLE_BATCH = 1000;

export const DEFAULT_SOURCE_MANIFEST_OPTIONS: SourceManifestOptions = {
  segmentDocs: DEFAULT_SEGMENT_DOCS,
  concurrency: 8,
  smallConcurrency: 32,
  smallSourceDocs: 10_000,
  readWindowBytes: DEFAULT_READ_WINDOW_BYTES,
  mergeBufferBytes: 16 * 1024 * 1024,
  maxCandidates: 500_000,
};

export interface SkippedSource {
  readonly sourceKey: string;
  readonly reason: string;
}

export interface SourceManifestComparison {
  /** Sources whose manifest this run replaced after diffing it (a source's first run included). */
  readonly compared: number;
  /** Of those, sources gone from the bucket when the run was planned: their manifest is now empty. */
  readonly deleted: number;
  /** Sources an earlier attempt of this finalize already replaced: their stored counts were reused. */
  readonly reused: number;
  /** Sources whose removals were not counted, each with why (sorted by key). */
  readonly skipped: readonly SkippedSource[];
  /** Documents of the last manifests of the compared sources that no source of this run holds any more. */
  readonly removedDocuments: number;
  /** Their chunks, as the manifests recorded them. */
  readonly removedChunks: number;
  /** Every source, compared, reused or skipped, as the `sources` table records it (sorted by key). */
  readonly sources: readonly SourceRow[];
}

/** The old manifest could not be read as the pointer describes it. */
class StoredManifestUnreadable extends DocListError {}

interface Compared {
  readonly kind: 'compared';
  readonly sourceKey: string;
  readonly previous: ManifestVersion | undefined;
  readonly next: Omit<ManifestVersion, 'removedDocuments' | 'removedChunks'>;
  candidateDocs: number;
  candidateChunks: number;
  /** The vanished documents, while they fit the shared budget; undefined when they did not or are not needed. */
  candidates: DocEntry[] | undefined;
  rescuedDocs: number;
  rescuedChunks: number;
  /** Set when the old manifest was unreadable: the new one is written, nothing is counted. */
  unreadable?: string;
}

type SourceOutcome =
  | Compared
  | { readonly kind: 'reused'; readonly sourceKey: string; readonly version: ManifestVersion }
  | { readonly kind: 'skipped'; readonly sourceKey: string; readonly reason: string }
  | { readonly kind: 'unknown'; readonly sourceKey: string };

/** Every source a unit covers: its range's source and its packed files. */
function sourcesOf(unit: WorkUnit): string[] {
  return [unit.sourceKey, ...unit.packed.map((f) => f.key)];
}

async function* empty(): AsyncGenerator<DocEntry> {}

async function* writtenTo(
  entries: AsyncIterable<DocEntry>,
  writer: ManifestWriter,
): AsyncGenerator<DocEntry> {
  for await (const entry of entries) {
    await writer.add(entry);
    yield entry;
  }
}

async function* readableOld(entries: AsyncIterable<DocEntry>): AsyncGenerator<DocEntry> {
  try {
    yield* entries;
  } catch (error) {
    if (error instanceof DocListError || error instanceof SyntaxError)
      throw new StoredManifestUnreadable(error.message, { cause: error });
    throw error;
  }
}

const versionOf = (pointer: ManifestVersion): ManifestVersion => ({
  runId: pointer.runId,
  runStartedAt: pointer.runStartedAt,
  slot: pointer.slot,
  segments: pointer.segments,
  docs: pointer.docs,
  chunks: pointer.chunks,
  removedDocuments: pointer.removedDocuments,
  removedChunks: pointer.removedChunks,
});

/**
 * Finalize of an incremental embed run: counts the documents that vanished from the
 * run's sources, and records what each source now holds.
 *
 * Each source whose units all succeeded gets a new manifest: its units' doc lists
 * (sorted sections, see {@link UnitDocList}) merged by streaming, a document listed more
 * than once summed, written as segments into the slot the pointer does not name. Its
 * documents are diffed, again by streaming, with the manifest of the last run that
 * completed the source; those gone from the source and from every other source of this
 * run (moved, not deleted) count as removed, with the chunk count the old manifest gave
 * them. Only then is each pointer flipped to the new slot, recording the counts, so a
 * retried finalize reuses them. A source with a unit that did not succeed is skipped: this
 * run did not see all of it, and its manifest stays as it was.
 */
export async function compareSourceManifests(
  store: ObjectStore,
  run: RunOfManifests,
  units: readonly StoredUnit[],
  now: Date,
  options: Partial<SourceManifestOptions> = {},
): Promise<SourceManifestComparison> {
  try {
    return await compareAndReplace(store, run, units, now, options);
  } catch (error) {
    if (!(error instanceof DocListError)) throw error;
    // A doc list that cannot be parsed (each is written whole by one put, so this means a
    // bug, not a crash). Retrying cannot help, and the counts are not worth a run that
    // never finishes: nothing is counted and no pointer has moved (they move last).
    const reason = `a doc list of this run is unreadable (${error.message}): removals not counted`;
    const skipped = new Map<string, string>();
    for (const unit of units)
      for (const key of unit.descriptor ? sourcesOf(unit.descriptor) : [unit.sourceKey])
        skipped.set(key, reason);
    return summarize([], skipped);
  }
}

/** The run whose units' doc lists are merged into its sources' manifests. */
export interface RunOfManifests {
  readonly runId: string;
  readonly pipeline: string;
  /** Orders runs that replace the same manifest (ISO time). */
  readonly startedAt: string;
}

async function compareAndReplace(
  store: ObjectStore,
  run: RunOfManifests,
  units: readonly StoredUnit[],
  now: Date,
  options: Partial<SourceManifestOptions>,
): Promise<SourceManifestComparison> {
  const opts = { ...DEFAULT_SOURCE_MANIFEST_OPTIONS, ...options };
  const { runId, pipeline } = run;
  const unitsOf = new Map<string, StoredUnit[]>();
  const skipped = new Map<string, string>();
  for (const unit of units) {
    const keys = unit.descriptor ? sourcesOf(unit.descriptor) : [unit.sourceKey];
    for (const key of keys) {
      const covering = unitsOf.get(key);
      if (covering) covering.push(unit);
      else unitsOf.set(key, [unit]);
    }
    const why = !unit.descriptor
      ? `unit ${unit.unitId} was stored without its descriptor, so the files it read are not known`
      : unit.status !== 'succeeded'
        ? `unit ${unit.unitId} ${unit.status}: this run did not read the whole source`
        : undefined;
    if (why) for (const key of keys) if (!skipped.has(key)) skipped.set(key, why);
  }

  // Sources gone when the run was planned hold nothing now: diffed against no documents.
  const deleted: ReadonlySet<string> = new Set(
    (await readDeletedSources(store, pipeline, runId)).filter((key) => !unitsOf.has(key)),
  );
  const eligible = [...unitsOf.keys()]
    .filter((key) => !skipped.has(key))
    .concat([...deleted])
    .sort();
  const runSources: ReadonlySet<string> = new Set([...unitsOf.keys(), ...deleted]);
  if (eligible.length === 0) return summarize([], skipped);

  const succeeded = units.filter((u) => u.status === 'succeeded');
  const lists = new Map<string, StoredDocList>();
  const unlisted: string[] = [];
  await mapWithConcurrency(succeeded, opts.smallConcurrency, async (unit) => {
    const list = await readUnitDocList(store, pipeline, runId, unit.unitId);
    if (list) lists.set(unit.unitId, list);
    else unlisted.push(unit.unitId);
  });
  if (unlisted.length > 0) {
    // Any document of the run could be in the missing list: none can be called removed.
    const reason = `unit ${unlisted.sort()[0]} left no document list (was the pipeline incremental when it ran?)`;
    for (const key of unitsOf.keys()) if (!skipped.has(key)) skipped.set(key, reason);
    return summarize([], skipped);
  }
  const sourcesWithDocs = new Set<string>();
  for (const list of lists.values())
    for (const section of list.header.sections) if (section.docs > 0) sourcesWithDocs.add(section.sourceKey);
  // A document gone from a source can only have moved to another source with documents.
  const checkMovesFrom = (sourceKey: string): boolean =>
    sourcesWithDocs.size > (sourcesWithDocs.has(sourceKey) ? 1 : 0);
  const budget = { kept: 0, overflow: false };

  const clock = opts.clock ?? Date.now;
  const compareSource = async (sourceKey: string): Promise<SourceOutcome> => {
    if (opts.stopAfter !== undefined && clock() >= opts.stopAfter) {
      return {
        kind: 'skipped',
        sourceKey,
        // No later run names a deleted key again (see docs/runbook.md).
        reason: deleted.has(sourceKey)
          ? 'finalize had no time left to compare it (deleted): drop an empty file under its key to count its documents removed'
          : 'finalize had no time left to compare it; the next run that completes it will',
      };
    }
    let pointer: ManifestPointer | undefined;
    try {
      pointer = await readManifestPointer(store, pipeline, sourceKey);
    } catch (error) {
      if (!(error instanceof DocListError || error instanceof SyntaxError)) throw error;
      return writeManifest(sourceKey, undefined, `its manifest pointer was unreadable (${error.message})`);
    }
    // A source deleted before any run completed it has nothing to remove, and gets no manifest.
    if (!pointer && deleted.has(sourceKey)) return { kind: 'unknown', sourceKey };
    if (pointer?.runId === runId) return { kind: 'reused', sourceKey, version: versionOf(pointer) };
    // This run flipped it, then a later run flipped it again: the counts are in `previous`.
    if (pointer?.previous?.runId === runId) return { kind: 'reused', sourceKey, version: pointer.previous };
    if (pointer && Date.parse(pointer.runStartedAt) > Date.parse(run.startedAt)) {
      return {
        kind: 'skipped',
        sourceKey,
        reason: `run ${pointer.runId}, which started later, already replaced its manifest`,
      };
    }
    try {
      return await writeManifest(sourceKey, pointer);
    } catch (error) {
      if (!(error instanceof StoredManifestUnreadable)) throw error;
      return writeManifest(sourceKey, undefined, `its stored manifest was unreadable (${error.message})`);
    }
  };

  const writeManifest = async (
    sourceKey: string,
    pointer: ManifestPointer | undefined,
    unreadable?: string,
  ): Promise<Compared> => {
    const inputs: AsyncIterable<DocEntry>[] = [];
    const sections = (unitsOf.get(sourceKey) ?? []).flatMap((unit) => {
      const list = lists.get(unit.unitId)!;
      return list.header.sections
        .filter((s) => s.sourceKey === sourceKey && s.docs > 0)
        .map((section) => ({ list, section }));
    });
    const window = windowFor(opts, sections.length + 1);
    for (const { list, section } of sections) inputs.push(sectionDocs(store, list, section, window));
    const slot = pointer ? (pointer.slot === 0 ? 1 : 0) : 0;
    const writer = new ManifestWriter(store, pipeline, sourceKey, runId, slot, opts.segmentDocs);
    const fresh = writtenTo(sumDuplicateDocs(mergeSortedDocs(inputs)), writer);
    const old = pointer ? readableOld(manifestDocs(store, pipeline, sourceKey, pointer, window)) : empty();
    const outcome: Compared = {
      kind: 'compared',
      sourceKey,
      previous: pointer && versionOf(pointer),
      next: { runId, runStartedAt: run.startedAt, slot, segments: [], docs: 0, chunks: 0 },
      candidateDocs: 0,
      candidateChunks: 0,
      candidates: checkMovesFrom(sourceKey) ? [] : undefined,
      rescuedDocs: 0,
      rescuedChunks: 0,
      ...(unreadable === undefined ? {} : { unreadable }),
    };
    // With no other source in the run to have moved to, a vanished document is removed
    // unless an earlier run moved it: settled as it comes.
    const removed = checkMovesFrom(sourceKey) ? undefined : new Settle(opts, runSources);
    try {
      for await (const gone of docsMissingFrom(old, fresh)) {
        outcome.candidateDocs += 1;
        outcome.candidateChunks += gone.chunks;
        await removed?.add(gone.id, outcome, gone.chunks);
        if (!outcome.candidates) continue;
        if (budget.overflow || budget.kept >= opts.maxCandidates) {
          budget.overflow = true;
          outcome.candidates = undefined;
        } else {
          budget.kept += 1;
          outcome.candidates.push(gone);
        }
      }
    } catch (error) {
      budget.kept -= outcome.candidates?.length ?? 0; // the source starts over (or the run gives up)
      throw error;
    }
    const segments = await writer.finish();
    if (outcome.unreadable === undefined) await removed?.flush();
    return { ...outcome, next: { ...outcome.next, segments, docs: writer.docs, chunks: writer.chunks } };
  };

  // Big sources hold read windows and a segment each; small ones are a few small requests.
  const docsOf = new Map<string, number>();
  for (const list of lists.values())
    for (const section of list.header.sections)
      docsOf.set(section.sourceKey, (docsOf.get(section.sourceKey) ?? 0) + section.docs);
  const isSmall = (key: string) => (docsOf.get(key) ?? 0) <= opts.smallSourceDocs;
  const outcomes = [
    ...(await mapWithConcurrency(
      eligible.filter((key) => !isSmall(key)),
      opts.concurrency,
      compareSource,
    )),
    ...(await mapWithConcurrency(eligible.filter(isSmall), opts.smallConcurrency, compareSource)),
  ];
  const compared = outcomes.filter(
    (o): o is Compared => o.kind === 'compared' && o.candidateDocs > 0 && checkMovesFrom(o.sourceKey),
  );

  if (compared.length > 0) {
    // What a scan leaves in `pending` moved nowhere in this run: settled.
    const scan = async (pending: Map<string, { outcome: Compared; chunks: number }[]>) => {
      await rescueMoved(store, [...lists.values()], pending, opts);
      const removed = new Settle(opts, runSources);
      for (const [id, gone] of pending)
        for (const { outcome, chunks } of gone) await removed.add(id, outcome, chunks);
      await removed.flush();
    };
    if (!budget.overflow) {
      const pending = new Map<string, { outcome: Compared; chunks: number }[]>();
      for (const outcome of compared) {
        for (const gone of outcome.candidates ?? []) holdVanished(pending, gone, outcome);
        outcome.candidates = undefined;
      }
      await scan(pending);
    } else {
      // Too many to hold: diff the stored manifests again, a batch of candidates at a time.
      for (const outcome of compared) outcome.candidates = undefined;
      let pending = new Map<string, { outcome: Compared; chunks: number }[]>();
      let held = 0;
      for (const outcome of compared) {
        const before = outcome.previous
          ? manifestDocs(store, pipeline, outcome.sourceKey, outcome.previous, opts.readWindowBytes)
          : empty();
        const after = manifestDocs(store, pipeline, outcome.sourceKey, outcome.next, opts.readWindowBytes);
        for await (const gone of docsMissingFrom(before, after)) {
          holdVanished(pending, gone, outcome);
          held += 1;
          if (held >= opts.maxCandidates) {
            await scan(pending);
            pending = new Map();
            held = 0;
          }
        }
      }
      if (held > 0) await scan(pending);
    }
  }

  await mapWithConcurrency(
    outcomes.filter((o): o is Compared => o.kind === 'compared'),
    opts.smallConcurrency,
    async (outcome) => {
      const counted = outcome.unreadable === undefined;
      await writeManifestPointer(store, pipeline, {
        format: SOURCE_MANIFEST_FORMAT,
        sourceKey: outcome.sourceKey,
        ...outcome.next,
        removedDocuments: counted ? outcome.candidateDocs - outcome.rescuedDocs : 0,
        removedChunks: counted ? outcome.candidateChunks - outcome.rescuedChunks : 0,
        writtenAt: now.toISOString(),
        previous: outcome.previous ?? null,
      });
    },
  );
  return summarize(outcomes, skipped, deleted);
}

/** Holds a vanished document for the moves scan, beside the other sources it vanished from. */
function holdVanished(
  pending: Map<string, { outcome: Compared; chunks: number }[]>,
  gone: DocEntry,
  outcome: Compared,
): void {
  const held = pending.get(gone.id);
  if (held) held.push({ outcome, chunks: gone.chunks });
  else pending.set(gone.id, [{ outcome, chunks: gone.chunks }]);
}

/** Read window per input so that one merge of `inputs` streams holds about `mergeBufferBytes`. */
function windowFor(opts: SourceManifestOptions, inputs: number): number {
  // Two windows per input: the one being read and the one being fetched.
  const share = Math.floor(opts.mergeBufferBytes / (2 * Math.max(1, inputs)));
  return Math.max(16 * 1024, Math.min(opts.readWindowBytes, share));
}

/**
 * Removes from `pending` every id that some doc list of the run holds (in any source),
 * counting it as rescued for each source it vanished from: a document that moved
 * between two sources of the run is not removed. One pass over the lists, which are read
 * section by section; membership is a map lookup per listed document.
 */
async function rescueMoved(
  store: ObjectStore,
  lists: readonly StoredDocList[],
  pending: Map<string, { outcome: Compared; chunks: number }[]>,
  opts: SourceManifestOptions,
): Promise<void> {
  const sections = lists.flatMap((list) =>
    list.header.sections.filter((s) => s.docs > 0).map((section) => ({ list, section })),
  );
  await mapWithConcurrency(sections, opts.smallConcurrency, async ({ list, section }) => {
    if (pending.size === 0) return;
    for await (const doc of sectionDocs(store, list, section, opts.readWindowBytes)) {
      const gone = pending.get(doc.id);
      if (!gone) continue;
      pending.delete(doc.id);
      for (const { outcome, chunks } of gone) {
        outcome.rescuedDocs += 1;
        outcome.rescuedChunks += chunks;
      }
      if (pending.size === 0) return;
    }
  });
}

function summarize(
  outcomes: readonly SourceOutcome[],
  skipped: Map<string, string>,
  deleted: ReadonlySet<string> = new Set(),
): SourceManifestComparison {
  let compared = 0;
  let deletedCompared = 0;
  let reused = 0;
  let removedDocuments = 0;
  let removedChunks = 0;
  const skips = [...skipped].map(([sourceKey, reason]) => ({ sourceKey, reason }));
  const rows: SourceRow[] = [];
  const row = (
    sourceKey: string,
    counts: { docs: number; chunks: number; removedDocuments: number; removedChunks: number },
  ) =>
    rows.push({
      source_key: sourceKey,
      status: deleted.has(sourceKey) ? 'deleted' : 'read',
      documents: counts.docs,
      chunks: counts.chunks,
      removed_documents: counts.removedDocuments,
      removed_chunks: counts.removedChunks,
      reason: null,
    });
  for (const outcome of outcomes) {
    if (outcome.kind === 'unknown') continue;
    if (outcome.kind === 'skipped') skips.push({ sourceKey: outcome.sourceKey, reason: outcome.reason });
    else if (outcome.kind === 'reused') {
      reused += 1;
      removedDocuments += outcome.version.removedDocuments;
      removedChunks += outcome.version.removedChunks;
      row(outcome.sourceKey, outcome.version);
    } else if (outcome.unreadable !== undefined) {
      skips.push({
        sourceKey: outcome.sourceKey,
        reason: `${outcome.unreadable}: replaced, removals not counted`,
      });
    } else {
      compared += 1;
      if (deleted.has(outcome.sourceKey)) deletedCompared += 1;
      const removed = {
        removedDocuments: outcome.candidateDocs - outcome.rescuedDocs,
        removedChunks: outcome.candidateChunks - outcome.rescuedChunks,
      };
      removedDocuments += removed.removedDocuments;
      removedChunks += removed.removedChunks;
      row(outcome.sourceKey, { ...outcome.next, ...removed });
    }
  }
  skips.sort((a, b) => (a.sourceKey < b.sourceKey ? -1 : a.sourceKey > b.sourceKey ? 1 : 0));
  for (const { sourceKey, reason } of skips)
    rows.push({
      source_key: sourceKey,
      status: 'skipped',
      documents: 0,
      chunks: 0,
      removed_documents: 0,
      removed_chunks: 0,
      reason,
    });
  rows.sort((a, b) => (a.source_key < b.source_key ? -1 : a.source_key > b.source_key ? 1 : 0));
  return {
    compared,
    deleted: deletedCompared,
    reused,
    skipped: skips,
    removedDocuments,
    removedChunks,
    sources: rows,
  };
}

/**
 * Vanished documents, a batch at a time: one the chunk index places in a source this run
 * did not read moved there in an earlier run and is rescued (for a source this run read,
 * its doc lists already said whether the document is there); the rest are removed and
 * handed to `forget`.
 */
class Settle {
  private batch: { id: string; outcome: Compared; chunks: number }[] = [];

  constructor(
    private readonly opts: Pick<SourceManifestOptions, 'forget' | 'lastSourceOf'>,
    private readonly runSources: ReadonlySet<string>,
  ) {}

  async add(id: string, outcome: Compared, chunks: number): Promise<void> {
    if (!this.opts.forget && !this.opts.lastSourceOf) return;
    this.batch.push({ id, outcome, chunks });
    if (this.batch.length >= SETTLE_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const ids = [...new Set(batch.map((entry) => entry.id))];
    const lastSource = (await this.opts.lastSourceOf?.(ids)) ?? new Map<string, string | undefined>();
    const removed = new Set<string>();
    for (const { id, outcome, chunks } of batch) {
      const elsewhere = lastSource.get(id);
      if (elsewhere !== undefined && !this.runSources.has(elsewhere)) {
        outcome.rescuedDocs += 1;
        outcome.rescuedChunks += chunks;
      } else removed.add(id);
    }
    if (removed.size > 0) await this.opts.forget?.([...removed]);
  }
}
