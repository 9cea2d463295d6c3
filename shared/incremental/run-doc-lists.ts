import type { ObjectStore } from '../ports/object-store.ts';
import type { StoredUnit } from '../ports/run-store.ts';
import { mapWithConcurrency } from '../work/concurrency.ts';
import { type DocListSection, readUnitDocList, type StoredDocList, sectionDocs } from './unit-doc-list.ts';
import type { PendingVanished } from './vanished-documents.ts';

/** One source's section of one unit's doc list. */
export interface ListedSection {
  readonly list: StoredDocList;
  readonly section: DocListSection;
}

/**
 * The doc lists (headers only) of a run's succeeded units: which documents each source of
 * the run now holds, read section by section when needed.
 */
export class RunDocLists {
  private readonly sourcesWithDocs = new Set<string>();
  private readonly docsOf = new Map<string, number>();

  private constructor(
    private readonly store: ObjectStore,
    private readonly lists: ReadonlyMap<string, StoredDocList>,
    /** Succeeded units that left no doc list, sorted. */
    readonly unlisted: readonly string[],
  ) {
    for (const list of lists.values())
      for (const section of list.header.sections) {
        if (section.docs > 0) this.sourcesWithDocs.add(section.sourceKey);
        this.docsOf.set(section.sourceKey, (this.docsOf.get(section.sourceKey) ?? 0) + section.docs);
      }
  }

  /** Reads the header of every succeeded unit's doc list, `concurrency` at a time. */
  static async read(
    store: ObjectStore,
    run: { readonly pipeline: string; readonly runId: string },
    units: readonly StoredUnit[],
    concurrency: number,
  ): Promise<RunDocLists> {
    const lists = new Map<string, StoredDocList>();
    const unlisted: string[] = [];
    const succeeded = units.filter((u) => u.status === 'succeeded');
    await mapWithConcurrency(succeeded, concurrency, async (unit) => {
      const list = await readUnitDocList(store, run.pipeline, run.runId, unit.unitId);
      if (list) lists.set(unit.unitId, list);
      else unlisted.push(unit.unitId);
    });
    return new RunDocLists(store, lists, unlisted.sort());
  }

  /** A document gone from a source can only have moved to another source with documents. */
  movesPossibleFrom(sourceKey: string): boolean {
    return this.sourcesWithDocs.size > (this.sourcesWithDocs.has(sourceKey) ? 1 : 0);
  }

  /** Documents the run's units listed for a source (a document listed by two units counts twice). */
  docsIn(sourceKey: string): number {
    return this.docsOf.get(sourceKey) ?? 0;
  }

  /** The non-empty sections of `sourceKey` in the doc lists of `units` (every one of them listed). */
  sectionsOf(sourceKey: string, units: readonly StoredUnit[]): ListedSection[] {
    return units.flatMap((unit) => {
      const list = this.lists.get(unit.unitId)!;
      return list.header.sections
        .filter((s) => s.sourceKey === sourceKey && s.docs > 0)
        .map((section) => ({ list, section }));
    });
  }

  /**
   * Rescues every pending id that some doc list of the run holds (in any source): a
   * document that moved between two sources of the run is not removed. One pass over the
   * lists, which are read section by section; membership is a map lookup per listed document.
   */
  async rescueListed(pending: PendingVanished, windowBytes: number, concurrency: number): Promise<void> {
    const sections = [...this.lists.values()].flatMap((list) =>
      list.header.sections.filter((s) => s.docs > 0).map((section) => ({ list, section })),
    );
    await mapWithConcurrency(sections, concurrency, async ({ list, section }) => {
      if (pending.size === 0) return;
      for await (const doc of sectionDocs(this.store, list, section, windowBytes)) {
        pending.rescue(doc.id);
        if (pending.size === 0) return;
      }
    });
  }
}
