import { unitDocListKey } from '../output/keys.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { compareDocIds, type DocEntry, DocListError, formatDocLine, parseDocLine } from './doc-lines.ts';
import { firstLine, objectLines } from './object-lines.ts';

export const UNIT_DOC_LIST_FORMAT = 'sluice-unit-docs/1';

/** One source's section of a unit's doc list. */
export interface DocListSection {
  readonly sourceKey: string;
  readonly docs: number;
  readonly chunks: number;
  /** Byte range of the section's lines, counted from the end of the header line. */
  readonly start: number;
  readonly end: number;
}

/** The first line of a doc list: what follows it, source by source. */
export interface UnitDocListHeader {
  readonly format: typeof UNIT_DOC_LIST_FORMAT;
  readonly runId: string;
  readonly unitId: string;
  /** Every source the unit read, in the order read; a source with no document has an empty section. */
  readonly sections: readonly DocListSection[];
}

/**
 * The documents a unit put in `embeddings`, per source, with their chunk counts: what
 * finalize merges into each source's manifest. Documents that ended in rejects are
 * never added, so they are not listed.
 */
export class UnitDocList {
  private readonly sources = new Map<string, Map<string, number>>();

  /** A source the unit read, listed even when none of its records became a document. */
  noteSource(sourceKey: string): void {
    if (!this.sources.has(sourceKey)) this.sources.set(sourceKey, new Map());
  }

  /** Counts `chunks` more chunks of `docId` in `sourceKey` (a repeated id adds up). */
  add(sourceKey: string, docId: string, chunks = 1): void {
    let docs = this.sources.get(sourceKey);
    if (!docs) {
      docs = new Map();
      this.sources.set(sourceKey, docs);
    }
    docs.set(docId, (docs.get(docId) ?? 0) + chunks);
  }

  get documents(): number {
    let n = 0;
    for (const docs of this.sources.values()) n += docs.size;
    return n;
  }

  /**
   * A header line (JSON) then, per source, one line per document sorted by
   * {@link compareDocIds}, so finalize can merge the units of a source by streaming.
   */
  serialize(runId: string, unitId: string): Buffer {
    const bodies: Buffer[] = [];
    const sections: DocListSection[] = [];
    let offset = 0;
    for (const [sourceKey, docs] of this.sources) {
      const ids = [...docs.keys()].sort(compareDocIds);
      let chunks = 0;
      const lines: string[] = [];
      for (const id of ids) {
        const n = docs.get(id)!;
        chunks += n;
        lines.push(formatDocLine(id, n));
      }
      const body = Buffer.from(lines.join(''), 'utf8');
      bodies.push(body);
      sections.push({ sourceKey, docs: ids.length, chunks, start: offset, end: offset + body.length });
      offset += body.length;
    }
    const header: UnitDocListHeader = { format: UNIT_DOC_LIST_FORMAT, runId, unitId, sections };
    return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`, 'utf8'), ...bodies]);
  }
}

/** A stored doc list's header and where its sections start. */
export interface StoredDocList {
  readonly key: string;
  readonly header: UnitDocListHeader;
  /** Offset of the first section byte in the object. */
  readonly bodyOffset: number;
}

/** Reads the header of a unit's doc list; undefined when the unit left none. */
export async function readUnitDocList(
  store: ObjectStore,
  pipeline: string,
  runId: string,
  unitId: string,
): Promise<StoredDocList | undefined> {
  const key = unitDocListKey(pipeline, runId, unitId);
  const info = await store.head(key);
  if (!info) return undefined;
  const first = await firstLine(store, key, info.size, 16 * 1024);
  let header: UnitDocListHeader | undefined;
  try {
    header = first ? (JSON.parse(first.line) as UnitDocListHeader) : undefined;
  } catch {
    header = undefined;
  }
  if (!first || header?.format !== UNIT_DOC_LIST_FORMAT || header.runId !== runId || header.unitId !== unitId)
    throw new DocListError(`${key} is not the doc list of unit ${unitId} of run ${runId}`);
  const bodyOffset = first.rest;
  const last = header.sections.at(-1);
  if (last && bodyOffset + last.end > info.size)
    throw new DocListError(`${key} is shorter than its header says`);
  return { key, header, bodyOffset };
}

/** The documents of one section, in id order. */
export async function* sectionDocs(
  store: ObjectStore,
  list: StoredDocList,
  section: DocListSection,
  windowBytes?: number,
): AsyncGenerator<DocEntry> {
  const { bodyOffset, key } = list;
  for await (const line of objectLines(
    store,
    key,
    bodyOffset + section.start,
    bodyOffset + section.end,
    windowBytes,
  ))
    yield parseDocLine(line);
}
