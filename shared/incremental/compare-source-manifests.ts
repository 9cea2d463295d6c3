import type { ObjectStore } from '../ports/object-store.ts';
import type { StoredUnit } from '../ports/run-store.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';
import {
  type ComparisonScope,
  compareSource,
  type RunOfManifests,
  type SourceOutcome,
} from './compare-source.ts';
import { readDeletedSources } from './deleted-sources.ts';
import { DocListError } from './doc-lines.ts';
import { RunDocLists } from './run-doc-lists.ts';
import { flipPointers, settleMoves } from './settle-moves.ts';
import { coverSources, eligibleSources, skipAllRead, sourcesOfStored } from './source-coverage.ts';
import { DEFAULT_SOURCE_MANIFEST_OPTIONS, type SourceManifestOptions } from './source-manifest-options.ts';
import { type SourceManifestComparison, summarize } from './summarize-comparison.ts';
import { CandidateBudget } from './vanished-documents.ts';

// Kept importable from here, where finalize, the embed kind and the bench always found them.
export type { RunOfManifests } from './compare-source.ts';
export { DEFAULT_SOURCE_MANIFEST_OPTIONS, type SourceManifestOptions } from './source-manifest-options.ts';
export type { SkippedSource, SourceManifestComparison } from './summarize-comparison.ts';

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
    for (const unit of units) for (const key of sourcesOfStored(unit)) skipped.set(key, reason);
    return summarize([], skipped);
  }
}

/**
 * The stages of the comparison: which sources the run read whole, the doc lists of its
 * units, each source diffed into its new manifest, moves between sources settled, and
 * only then the pointers flipped.
 */
async function compareAndReplace(
  store: ObjectStore,
  run: RunOfManifests,
  units: readonly StoredUnit[],
  now: Date,
  options: Partial<SourceManifestOptions>,
): Promise<SourceManifestComparison> {
  const opts = { ...DEFAULT_SOURCE_MANIFEST_OPTIONS, ...options };
  const coverage = coverSources(units);
  // Sources gone when the run was planned hold nothing now: diffed against no documents.
  const deleted: ReadonlySet<string> = new Set(
    (await readDeletedSources(store, run.pipeline, run.runId)).filter((key) => !coverage.unitsOf.has(key)),
  );
  const eligible = eligibleSources(coverage, deleted);
  if (eligible.length === 0) return summarize([], coverage.skipped);

  const lists = await RunDocLists.read(store, run, units, opts.smallConcurrency);
  if (lists.unlisted.length > 0) {
    // Any document of the run could be in the missing list: none can be called removed.
    skipAllRead(
      coverage,
      `unit ${lists.unlisted[0]} left no document list (was the pipeline incremental when it ran?)`,
    );
    return summarize([], coverage.skipped);
  }
  const scope: ComparisonScope = {
    store,
    run,
    opts,
    unitsOf: coverage.unitsOf,
    deleted,
    runSources: new Set([...coverage.unitsOf.keys(), ...deleted]),
    lists,
    budget: new CandidateBudget(opts.maxCandidates),
  };
  const outcomes = await compareEligible(scope, eligible);
  await settleMoves(scope, outcomes);
  await flipPointers(scope, outcomes, now);
  return summarize(outcomes, coverage.skipped, deleted);
}

/** Big sources hold read windows and a segment each, so few run at once; small ones are a few small requests. */
async function compareEligible(
  scope: ComparisonScope,
  eligible: readonly string[],
): Promise<SourceOutcome[]> {
  const { opts, lists } = scope;
  const isSmall = (key: string) => lists.docsIn(key) <= opts.smallSourceDocs;
  const compare = (key: string) => compareSource(scope, key);
  return [
    ...(await mapWithConcurrency(
      eligible.filter((key) => !isSmall(key)),
      opts.concurrency,
      compare,
    )),
    ...(await mapWithConcurrency(eligible.filter(isSmall), opts.smallConcurrency, compare)),
  ];
}
