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

/**
 * (port) Per-user lists served by key (issue 17, item 4): a list is stored whole under its
 * user, so a reader sees a user's previous list or the new one, never a mix, and a re-run
 * replaces each list it writes.
 */
export interface RecommendationLists {
  /** Writes (replacing) each user's list for `pipeline`, from run `runId`. */
  putLists(pipeline: string, runId: string, lists: readonly UserList[]): Promise<void>;
  /** The user's stored list and the run that wrote it, or undefined. */
  getList(pipeline: string, userId: string): Promise<{ runId: string; items: ServedEntry[] } | undefined>;
}
