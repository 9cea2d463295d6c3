import type { DocEntry } from './doc-lines.ts';

/** What the chunk index can tell and be told about documents found vanished. */
export interface VanishedLookups {
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
export const SETTLE_BATCH = 1000;

/**
 * One source's documents gone since its last manifest: `candidate` when the diff finds
 * them, `rescued` when they turn out to live in another source. Removed = the difference.
 */
export class VanishedTally {
  candidateDocs = 0;
  candidateChunks = 0;
  rescuedDocs = 0;
  rescuedChunks = 0;

  vanished(chunks: number): void {
    this.candidateDocs += 1;
    this.candidateChunks += chunks;
  }

  rescued(chunks: number): void {
    this.rescuedDocs += 1;
    this.rescuedChunks += chunks;
  }

  get removedDocuments(): number {
    return this.candidateDocs - this.rescuedDocs;
  }

  get removedChunks(): number {
    return this.candidateChunks - this.rescuedChunks;
  }
}

/**
 * How many vanished documents the sources being diffed at once may hold for the moves
 * scan. Once it runs out it stays out: every source is then diffed again in rounds.
 */
export class CandidateBudget {
  private kept = 0;
  private overflowed = false;

  constructor(private readonly max: number) {}

  get overflow(): boolean {
    return this.overflowed;
  }

  /** Room for one more held document; false (for good) once the budget is spent. */
  take(): boolean {
    if (this.overflowed || this.kept >= this.max) {
      this.overflowed = true;
      return false;
    }
    this.kept += 1;
    return true;
  }

  /** Gives back what a source held when its diff starts over (or the run gives up). */
  release(count: number): void {
    this.kept -= count;
  }
}

interface HeldVanished {
  readonly tally: VanishedTally;
  readonly chunks: number;
}

/** Vanished documents waiting for the moves scan, each beside every source it vanished from. */
export class PendingVanished {
  private readonly byId = new Map<string, HeldVanished[]>();
  private holds = 0;

  hold(gone: DocEntry, tally: VanishedTally): void {
    const held = this.byId.get(gone.id);
    if (held) held.push({ tally, chunks: gone.chunks });
    else this.byId.set(gone.id, [{ tally, chunks: gone.chunks }]);
    this.holds += 1;
  }

  /** Documents held, counting one per source it vanished from. */
  get held(): number {
    return this.holds;
  }

  /** Distinct ids still pending. */
  get size(): number {
    return this.byId.size;
  }

  /** A listed document is no longer pending: rescued for every source it vanished from. */
  rescue(id: string): void {
    const gone = this.byId.get(id);
    if (!gone) return;
    this.byId.delete(id);
    for (const { tally, chunks } of gone) tally.rescued(chunks);
  }

  /** Settles what no doc list of the run held. */
  async settle(settler: SettleVanished): Promise<void> {
    for (const [id, gone] of this.byId)
      for (const { tally, chunks } of gone) await settler.add(id, tally, chunks);
    await settler.flush();
  }
}

/**
 * Vanished documents, a batch at a time: one the chunk index places in a source this run
 * did not read moved there in an earlier run and is rescued (for a source this run read,
 * its doc lists already said whether the document is there); the rest are removed and
 * handed to `forget`.
 */
export class SettleVanished {
  private batch: { id: string; tally: VanishedTally; chunks: number }[] = [];

  constructor(
    private readonly lookups: VanishedLookups,
    private readonly runSources: ReadonlySet<string>,
  ) {}

  async add(id: string, tally: VanishedTally, chunks: number): Promise<void> {
    if (!this.lookups.forget && !this.lookups.lastSourceOf) return;
    this.batch.push({ id, tally, chunks });
    if (this.batch.length >= SETTLE_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const ids = [...new Set(batch.map((entry) => entry.id))];
    const lastSource = (await this.lookups.lastSourceOf?.(ids)) ?? new Map<string, string | undefined>();
    const removed = new Set<string>();
    for (const { id, tally, chunks } of batch) {
      const elsewhere = lastSource.get(id);
      if (elsewhere !== undefined && !this.runSources.has(elsewhere)) tally.rescued(chunks);
      else removed.add(id);
    }
    if (removed.size > 0) await this.lookups.forget?.([...removed]);
  }
}
