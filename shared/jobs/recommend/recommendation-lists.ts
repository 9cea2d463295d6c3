import { recommendStagingPrefix } from './recommend-keys.ts';
import type { RecommendationRow } from './user-cf.ts';

/** One entry of a served list, as the `recommendations` table holds it. */
export interface ServedEntry {
  readonly itemId: string;
  readonly score: number;
  readonly source: 'cf' | 'popular';
  readonly neighbours: number;
}

/** A user's whole top N from one run. */
export interface UserList {
  readonly userId: string;
  readonly items: readonly ServedEntry[];
}

/** Where one similarity unit's lists go: added user by user, then finished (nothing is written for sure before). */
export interface UnitListsWriter {
  add(list: UserList): Promise<void>;
  /** Writes what is still buffered; when it resolves, every list added is stored. */
  finish(): Promise<void>;
  /** Gives up a unit that failed: drops what is buffered and what a streamed write holds. */
  abort(): Promise<void>;
}

/**
 * Which of a user's stored lists no reader serves again (shared/jobs/recommend/superseded-runs.ts:
 * those of runs started before a succeeded run), so a unit may delete them.
 */
export interface SupersededRuns {
  /** Of the runs `runIds` (those a user has lists under), the ones whose lists may go. */
  of(runIds: readonly string[]): Promise<string[]>;
}

/** How a unit's writer treats the lists already stored for its users. */
export interface UnitWriterOptions {
  /**
   * Where the store can delete by user (DynamoDB), each user's lists of superseded runs
   * are deleted as the unit writes that user's list. Without it nothing is deleted.
   */
  readonly superseded?: SupersededRuns;
}

/**
 * (port) Per-user lists served by key (issue 17, item 4). A list is stored whole under
 * (pipeline, user, run): a run never overwrites another run's lists, so a failed or
 * half-written run leaves the lists being served alone, and a repeated write (a duplicate
 * delivery, a retried or redriven unit) stores the same list again. A reader asks for the
 * pipeline's latest succeeded run (the runs table says which), so a run's lists are all
 * served at once when it succeeds, and a user absent from that run has none (no stale
 * list of an earlier run is served as current).
 */
export interface RecommendationLists {
  /** A writer for the lists of similarity unit `unitId` of run `runId`. */
  unitWriter(pipeline: string, runId: string, unitId: string, options?: UnitWriterOptions): UnitListsWriter;
  /** The user's list in run `runId`, or undefined when that run has none for the user. */
  getList(pipeline: string, runId: string, userId: string): Promise<ServedEntry[] | undefined>;
}

/** A user's table rows (rank order) as the list served. */
export function userListOf(userId: string, rows: readonly RecommendationRow[]): UserList {
  return {
    userId,
    items: rows.map((row) => ({
      itemId: row.item_id,
      score: row.score,
      source: row.source,
      neighbours: row.neighbours,
    })),
  };
}

/** The compact form a stored list takes: `[itemId, score, source, neighbours]` per entry, in rank order. */
export type CompactList = [string, number, 'cf' | 'popular', number][];

export const compactList = (items: readonly ServedEntry[]): CompactList =>
  items.map((e) => [e.itemId, e.score, e.source, e.neighbours]);

export const expandList = (compact: CompactList): ServedEntry[] =>
  compact.map(([itemId, score, source, neighbours]) => ({ itemId, score, source, neighbours }));

/**
 * Where the local store keeps a run's lists (one JSON-lines object per similarity unit),
 * under the run's own prefix beside its staging files.
 */
export const localListsPrefix = (pipeline: string, runId: string): string =>
  `${recommendStagingPrefix(pipeline, runId)}lists/`;
