import type { ObjectStore } from '../ports/object-store.ts';
import type { StoredUnit } from '../ports/run-store.ts';
import { type DocEntry, DocListError } from './doc-lines.ts';
import type { RunDocLists } from './run-doc-lists.ts';
import { docsMissingFrom, mergeSortedDocs, sumDuplicateDocs } from './sorted-docs.ts';
import {
  type ManifestPointer,
  type ManifestVersion,
  ManifestWriter,
  manifestDocs,
  readManifestPointer,
} from './source-manifest.ts';
import { type SourceManifestOptions, windowFor } from './source-manifest-options.ts';
import { sectionDocs } from './unit-doc-list.ts';
import { type CandidateBudget, SettleVanished, VanishedTally } from './vanished-documents.ts';

/** The run whose units' doc lists are merged into its sources' manifests. */
export interface RunOfManifests {
  readonly runId: string;
  readonly pipeline: string;
  /** Orders runs that replace the same manifest (ISO time). */
  readonly startedAt: string;
}

/** A source whose new manifest this run wrote, diffed against the old one. */
export interface ComparedSource {
  readonly kind: 'compared';
  readonly sourceKey: string;
  readonly previous: ManifestVersion | undefined;
  readonly next: Omit<ManifestVersion, 'removedDocuments' | 'removedChunks'>;
  readonly tally: VanishedTally;
  /** The vanished documents, while they fit the shared budget; undefined when they did not or are not needed. */
  candidates: DocEntry[] | undefined;
  /** Set when the old manifest was unreadable: the new one is written, nothing is counted. */
  readonly unreadable?: string;
}

export type SourceOutcome =
  | ComparedSource
  | { readonly kind: 'reused'; readonly sourceKey: string; readonly version: ManifestVersion }
  | { readonly kind: 'skipped'; readonly sourceKey: string; readonly reason: string }
  | { readonly kind: 'unknown'; readonly sourceKey: string };

export const isCompared = (outcome: SourceOutcome): outcome is ComparedSource => outcome.kind === 'compared';

/** What the comparison of every source of one run shares. */
export interface ComparisonScope {
  readonly store: ObjectStore;
  readonly run: RunOfManifests;
  readonly opts: SourceManifestOptions;
  readonly unitsOf: ReadonlyMap<string, readonly StoredUnit[]>;
  /** Sources gone from the bucket when the run was planned, read by no unit. */
  readonly deleted: ReadonlySet<string>;
  /** Every source the run read or found deleted. */
  readonly runSources: ReadonlySet<string>;
  readonly lists: RunDocLists;
  readonly budget: CandidateBudget;
}

/** The old manifest could not be read as the pointer describes it. */
class StoredManifestUnreadable extends DocListError {}

/**
 * One source: skipped past the deadline, reused when this run already replaced its
 * manifest, left alone when a later run did; otherwise diffed into a new manifest (from
 * no documents when the old pointer or manifest cannot be read, counting nothing).
 */
export async function compareSource(scope: ComparisonScope, sourceKey: string): Promise<SourceOutcome> {
  const { opts, deleted } = scope;
  if (opts.stopAfter !== undefined && (opts.clock ?? Date.now)() >= opts.stopAfter)
    return outOfTime(sourceKey, deleted.has(sourceKey));
  let pointer: ManifestPointer | undefined;
  try {
    pointer = await readManifestPointer(scope.store, scope.run.pipeline, sourceKey);
  } catch (error) {
    if (!(error instanceof DocListError || error instanceof SyntaxError)) throw error;
    return diffSource(scope, sourceKey, undefined, `its manifest pointer was unreadable (${error.message})`);
  }
  const settled = outcomeWithoutDiff(scope.run, sourceKey, pointer, deleted.has(sourceKey));
  if (settled) return settled;
  try {
    return await diffSource(scope, sourceKey, pointer);
  } catch (error) {
    if (!(error instanceof StoredManifestUnreadable)) throw error;
    return diffSource(scope, sourceKey, undefined, `its stored manifest was unreadable (${error.message})`);
  }
}

function outOfTime(sourceKey: string, deleted: boolean): SourceOutcome {
  return {
    kind: 'skipped',
    sourceKey,
    // No later run names a deleted key again (see docs/runbook.md).
    reason: deleted
      ? 'finalize had no time left to compare it (deleted): drop an empty file under its key to count its documents removed'
      : 'finalize had no time left to compare it; the next run that completes it will',
  };
}

/** What a source's pointer settles without a diff, or undefined when the source must be diffed. */
export function outcomeWithoutDiff(
  run: RunOfManifests,
  sourceKey: string,
  pointer: ManifestPointer | undefined,
  deleted: boolean,
): SourceOutcome | undefined {
  // A source deleted before any run completed it has nothing to remove, and gets no manifest.
  if (!pointer) return deleted ? { kind: 'unknown', sourceKey } : undefined;
  if (pointer.runId === run.runId) return { kind: 'reused', sourceKey, version: versionOf(pointer) };
  // This run flipped it, then a later run flipped it again: the counts are in `previous`.
  if (pointer.previous?.runId === run.runId) return { kind: 'reused', sourceKey, version: pointer.previous };
  if (Date.parse(pointer.runStartedAt) > Date.parse(run.startedAt)) {
    const reason = `run ${pointer.runId}, which started later, already replaced its manifest`;
    return { kind: 'skipped', sourceKey, reason };
  }
  return undefined;
}

/** The version a pointer names, without the pointer's own fields. */
export const versionOf = (pointer: ManifestVersion): ManifestVersion => ({
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
 * Merges the source's sections of the run's doc lists into a new manifest in the slot
 * the pointer does not name, and diffs it with the old one as both stream by. With no
 * other source in the run to have moved to, a vanished document is removed unless an
 * earlier run moved it: settled as it comes; otherwise it is held for the moves scan.
 */
async function diffSource(
  scope: ComparisonScope,
  sourceKey: string,
  pointer: ManifestPointer | undefined,
  unreadable?: string,
): Promise<ComparedSource> {
  const { store, run, opts } = scope;
  const sections = scope.lists.sectionsOf(sourceKey, scope.unitsOf.get(sourceKey) ?? []);
  const window = windowFor(opts, sections.length + 1);
  const slot = pointer?.slot === 0 ? 1 : 0;
  const writer = new ManifestWriter(store, run.pipeline, sourceKey, run.runId, slot, opts.segmentDocs);
  const merged = mergeSortedDocs(
    sections.map(({ list, section }) => sectionDocs(store, list, section, window)),
  );
  const fresh = writtenTo(sumDuplicateDocs(merged), writer);
  const old = pointer ? readableOld(manifestDocs(store, run.pipeline, sourceKey, pointer, window)) : empty();
  const movesPossible = scope.lists.movesPossibleFrom(sourceKey);
  const outcome: ComparedSource = {
    kind: 'compared',
    sourceKey,
    previous: pointer && versionOf(pointer),
    next: { runId: run.runId, runStartedAt: run.startedAt, slot, segments: [], docs: 0, chunks: 0 },
    tally: new VanishedTally(),
    candidates: movesPossible ? [] : undefined,
    ...(unreadable === undefined ? {} : { unreadable }),
  };
  const settler = movesPossible ? undefined : new SettleVanished(opts, scope.runSources);
  await collectVanished(docsMissingFrom(old, fresh), outcome, settler, scope.budget);
  const segments = await writer.finish();
  if (unreadable === undefined) await settler?.flush();
  return { ...outcome, next: { ...outcome.next, segments, docs: writer.docs, chunks: writer.chunks } };
}

/**
 * Counts each vanished document; settles it as it comes (`settler`) or holds it in
 * `outcome.candidates` while the budget lasts (dropping the list, for a later rediff,
 * once it does not).
 */
export async function collectVanished(
  vanished: AsyncIterable<DocEntry>,
  outcome: ComparedSource,
  settler: SettleVanished | undefined,
  budget: CandidateBudget,
): Promise<void> {
  try {
    for await (const gone of vanished) {
      outcome.tally.vanished(gone.chunks);
      await settler?.add(gone.id, outcome.tally, gone.chunks);
      if (!outcome.candidates) continue;
      if (budget.take()) outcome.candidates.push(gone);
      else outcome.candidates = undefined;
    }
  } catch (error) {
    budget.release(outcome.candidates?.length ?? 0); // the source starts over (or the run gives up)
    throw error;
  }
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

/** Re-reads the documents gone between a compared source's old and new manifests. */
export function vanishedBetween(scope: ComparisonScope, outcome: ComparedSource): AsyncIterable<DocEntry> {
  const { store, run, opts } = scope;
  const before = outcome.previous
    ? manifestDocs(store, run.pipeline, outcome.sourceKey, outcome.previous, opts.readWindowBytes)
    : empty();
  const after = manifestDocs(store, run.pipeline, outcome.sourceKey, outcome.next, opts.readWindowBytes);
  return docsMissingFrom(before, after);
}
