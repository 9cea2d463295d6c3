import type { SourceRow } from '../output/parquet-tables.ts';
import type { SourceOutcome } from './compare-source.ts';

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

/** A source whose counts this run stands by: compared now, or reused from an earlier attempt. */
interface CountedSource {
  readonly sourceKey: string;
  readonly reused: boolean;
  readonly docs: number;
  readonly chunks: number;
  readonly removedDocuments: number;
  readonly removedChunks: number;
}

const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The outcome's counts, or undefined when it counted nothing (skipped, unknown, unreadable). */
export function countedSource(outcome: SourceOutcome): CountedSource | undefined {
  const { sourceKey } = outcome;
  if (outcome.kind === 'reused') {
    const { docs, chunks, removedDocuments, removedChunks } = outcome.version;
    return { sourceKey, reused: true, docs, chunks, removedDocuments, removedChunks };
  }
  if (outcome.kind !== 'compared' || outcome.unreadable !== undefined) return undefined;
  const { next, tally } = outcome;
  return {
    sourceKey,
    reused: false,
    docs: next.docs,
    chunks: next.chunks,
    removedDocuments: tally.removedDocuments,
    removedChunks: tally.removedChunks,
  };
}

/** Every source whose removals were not counted, with why, sorted by key. */
export function skippedSources(
  outcomes: readonly SourceOutcome[],
  skipped: ReadonlyMap<string, string>,
): SkippedSource[] {
  const skips = [...skipped].map(([sourceKey, reason]) => ({ sourceKey, reason }));
  for (const outcome of outcomes) {
    if (outcome.kind === 'skipped') skips.push({ sourceKey: outcome.sourceKey, reason: outcome.reason });
    else if (outcome.kind === 'compared' && outcome.unreadable !== undefined)
      skips.push({
        sourceKey: outcome.sourceKey,
        reason: `${outcome.unreadable}: replaced, removals not counted`,
      });
  }
  return skips.sort((a, b) => byKey(a.sourceKey, b.sourceKey));
}

function countedRow(source: CountedSource, deleted: ReadonlySet<string>): SourceRow {
  return {
    source_key: source.sourceKey,
    status: deleted.has(source.sourceKey) ? 'deleted' : 'read',
    documents: source.docs,
    chunks: source.chunks,
    removed_documents: source.removedDocuments,
    removed_chunks: source.removedChunks,
    reason: null,
  };
}

function skippedRow({ sourceKey, reason }: SkippedSource): SourceRow {
  const zero = { documents: 0, chunks: 0, removed_documents: 0, removed_chunks: 0 };
  return { source_key: sourceKey, status: 'skipped', ...zero, reason };
}

/** The run's comparison as finalize reports it, and the `sources` table's rows. */
export function summarize(
  outcomes: readonly SourceOutcome[],
  skipped: ReadonlyMap<string, string>,
  deleted: ReadonlySet<string> = new Set(),
): SourceManifestComparison {
  const counted = outcomes.flatMap((outcome) => countedSource(outcome) ?? []);
  const compared = counted.filter((source) => !source.reused);
  const skips = skippedSources(outcomes, skipped);
  const rows = [...counted.map((source) => countedRow(source, deleted)), ...skips.map(skippedRow)];
  return {
    compared: compared.length,
    deleted: compared.filter((source) => deleted.has(source.sourceKey)).length,
    reused: counted.length - compared.length,
    skipped: skips,
    removedDocuments: counted.reduce((sum, source) => sum + source.removedDocuments, 0),
    removedChunks: counted.reduce((sum, source) => sum + source.removedChunks, 0),
    sources: rows.sort((a, b) => byKey(a.source_key, b.source_key)),
  };
}
