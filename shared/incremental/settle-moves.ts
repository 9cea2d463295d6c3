import { mapWithConcurrency } from '../work/concurrency.ts';
import {
  type ComparedSource,
  type ComparisonScope,
  isCompared,
  type SourceOutcome,
  vanishedBetween,
} from './compare-source.ts';
import { type ManifestPointer, SOURCE_MANIFEST_FORMAT, writeManifestPointer } from './source-manifest.ts';
import { PendingVanished, SettleVanished } from './vanished-documents.ts';

/**
 * Documents gone from a source that another source of the run now holds moved there and
 * are rescued; the rest are settled (looked up in the chunk index, then forgotten). Held
 * candidates are checked in one scan of the run's doc lists; when there were too many to
 * hold, the stored manifests are diffed again, `maxCandidates` at a time.
 */
export async function settleMoves(scope: ComparisonScope, outcomes: readonly SourceOutcome[]): Promise<void> {
  const compared = outcomes.filter(
    (o): o is ComparedSource =>
      isCompared(o) && o.tally.candidateDocs > 0 && scope.lists.movesPossibleFrom(o.sourceKey),
  );
  if (compared.length === 0) return;
  if (scope.budget.overflow) await settleByRediffing(scope, compared);
  else await settleHeld(scope, compared);
}

async function settleHeld(scope: ComparisonScope, compared: readonly ComparedSource[]): Promise<void> {
  const pending = new PendingVanished();
  for (const outcome of compared) {
    for (const gone of outcome.candidates ?? []) pending.hold(gone, outcome.tally);
    outcome.candidates = undefined;
  }
  await scanThenSettle(scope, pending);
}

async function settleByRediffing(scope: ComparisonScope, compared: readonly ComparedSource[]): Promise<void> {
  for (const outcome of compared) outcome.candidates = undefined;
  let pending = new PendingVanished();
  for (const outcome of compared) {
    for await (const gone of vanishedBetween(scope, outcome)) {
      pending.hold(gone, outcome.tally);
      if (pending.held >= scope.opts.maxCandidates) {
        await scanThenSettle(scope, pending);
        pending = new PendingVanished();
      }
    }
  }
  if (pending.held > 0) await scanThenSettle(scope, pending);
}

/** What the scan of the run's doc lists leaves pending moved nowhere in this run: settled. */
async function scanThenSettle(scope: ComparisonScope, pending: PendingVanished): Promise<void> {
  await scope.lists.rescueListed(pending, scope.opts.readWindowBytes, scope.opts.smallConcurrency);
  await pending.settle(new SettleVanished(scope.opts, scope.runSources));
}

/** Points every compared source at its new manifest, last, recording what it counted. */
export async function flipPointers(
  scope: ComparisonScope,
  outcomes: readonly SourceOutcome[],
  now: Date,
): Promise<void> {
  await mapWithConcurrency(outcomes.filter(isCompared), scope.opts.smallConcurrency, (outcome) =>
    writeManifestPointer(scope.store, scope.run.pipeline, pointerAfter(outcome, now)),
  );
}

/** The pointer a compared source gets: removals counted only when its old manifest was readable. */
export function pointerAfter(outcome: ComparedSource, now: Date): ManifestPointer {
  const counted = outcome.unreadable === undefined;
  return {
    format: SOURCE_MANIFEST_FORMAT,
    sourceKey: outcome.sourceKey,
    ...outcome.next,
    removedDocuments: counted ? outcome.tally.removedDocuments : 0,
    removedChunks: counted ? outcome.tally.removedChunks : 0,
    writtenAt: now.toISOString(),
    previous: outcome.previous ?? null,
  };
}
