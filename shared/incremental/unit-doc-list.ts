import { PackedEntries } from '../duplicates/packed-entries.ts';
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

/** Numbers kept per entry of a {@link UnitDocList}: the source's number, the chunks. */
const SOURCE = 0;
const CHUNKS = 1;

/** Lines of a serialized doc list joined into one block. */
const BLOCK_LINES = 4096;

/**
 * The documents a unit put in `embeddings`, per source, with their chunk counts: what
 * finalize merges into each source's manifest. Documents that ended in rejects are
 * never added, so they are not listed. Kept packed ({@link PackedEntries}), one entry per
 * run of adds of the same document; repeats of an id in a source are summed when written.
 */
export class UnitDocList {
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();
  private readonly entries = new PackedEntries(['u32', 'u32']);

  /** A source the unit read, listed even when none of its records became a document. */
  noteSource(sourceKey: string): void {
    this.sourceNumber(sourceKey);
  }

  /** Counts `chunks` more chunks of `docId` in `sourceKey` (a repeated id adds up). */
  add(sourceKey: string, docId: string, chunks = 1): void {
    const source = this.sourceNumber(sourceKey);
    const { entries } = this;
    const last = entries.size - 1;
    // A document's chunks come one after another: one entry for them all.
    if (last >= 0 && entries.value(last, SOURCE) === source && entries.idEquals(last, docId))
      entries.setValue(last, CHUNKS, entries.value(last, CHUNKS) + chunks);
    else entries.push(docId, [source, chunks]);
  }

  get documents(): number {
    return this.listing().entries.length;
  }

  /** Bytes the list holds (its packed arrays' capacity). */
  get heldBytes(): number {
    return this.entries.capacityBytes;
  }

  /** The whole list as one buffer (tests; a unit writes {@link blocks} one at a time). */
  serialize(runId: string, unitId: string): Buffer {
    return Buffer.concat([...this.blocks(runId, unitId)].map((block) => Buffer.from(block, 'utf8')));
  }

  /**
   * A header line (JSON) then, per source, one line per document sorted by
   * {@link compareDocIds}, so finalize can merge the units of a source by streaming; a
   * block of lines at a time. The header holds each section's byte range, so the lines
   * are formatted twice: once to measure them, once to write them.
   */
  *blocks(runId: string, unitId: string): Generator<string> {
    const { entries, chunks, sections } = this.listing();
    const line = (d: number): string => formatDocLine(this.entries.id(entries[d]!), chunks[d]!);
    const described: DocListSection[] = [];
    let offset = 0;
    for (const { sourceKey, from, to } of sections) {
      let bytes = 0;
      let sum = 0;
      for (let d = from; d < to; d += 1) {
        bytes += Buffer.byteLength(line(d), 'utf8');
        sum += chunks[d]!;
      }
      described.push({ sourceKey, docs: to - from, chunks: sum, start: offset, end: offset + bytes });
      offset += bytes;
    }
    const header: UnitDocListHeader = { format: UNIT_DOC_LIST_FORMAT, runId, unitId, sections: described };
    yield `${JSON.stringify(header)}\n`;
    for (let at = 0; at < entries.length; at += BLOCK_LINES) {
      let block = '';
      for (let d = at; d < Math.min(entries.length, at + BLOCK_LINES); d += 1) block += line(d);
      yield block;
    }
  }

  /**
   * The documents to write, in file order (by source in the order read, then by id): for
   * each, an entry holding its id and the chunks of all its entries; and each source's range.
   */
  private listing(): {
    entries: Uint32Array;
    chunks: Float64Array;
    sections: { sourceKey: string; from: number; to: number }[];
  } {
    const packed = this.entries;
    const order = packed.sortedBy(
      (a, b) => packed.value(a, SOURCE) - packed.value(b, SOURCE) || packed.compareIds(a, b),
    );
    const entries = new Uint32Array(order.length);
    const chunks = new Float64Array(order.length);
    const ends = new Array<number>(this.sources.length).fill(0);
    let docs = 0;
    for (let k = 0; k < order.length; k += 1) {
      const i = order[k]!;
      const previous = k > 0 ? order[k - 1]! : -1;
      const source = packed.value(i, SOURCE);
      if (previous >= 0 && packed.value(previous, SOURCE) === source && packed.compareIds(previous, i) === 0)
        chunks[docs - 1] = chunks[docs - 1]! + packed.value(i, CHUNKS);
      else {
        entries[docs] = i;
        chunks[docs] = packed.value(i, CHUNKS);
        docs += 1;
      }
      ends[source] = docs;
    }
    // A source with no document ends where the one before it does.
    for (let source = 1; source < ends.length; source += 1)
      ends[source] = Math.max(ends[source]!, ends[source - 1]!);
    const sections = this.sources.map((sourceKey, source) => ({
      sourceKey,
      from: source === 0 ? 0 : ends[source - 1]!,
      to: ends[source]!,
    }));
    return { entries: entries.subarray(0, docs), chunks: chunks.subarray(0, docs), sections };
  }

  private sourceNumber(sourceKey: string): number {
    let source = this.sourceNumbers.get(sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(sourceKey);
      this.sourceNumbers.set(sourceKey, source);
    }
    return source;
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
