import { SluiceError } from '../errors/errors.ts';
import { compareDocIds } from '../incremental/doc-lines.ts';
import { objectLines } from '../incremental/object-lines.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { PackedEntries } from './packed-entries.ts';

export const UNIT_ID_LIST_FORMAT = 'sluice-unit-ids/1';

/** Where a unit lists the record ids it put in its results table, for finalize's duplicate check. */
export function unitIdListKey(pipeline: string, runId: string, unitId: string): string {
  return `runs/${pipeline}/${runId}/ids/${unitId}.jsonl`;
}

/** A record a unit put in its results table, as its id list holds it. */
export interface IdEntry {
  readonly id: string;
  readonly sourceKey: string;
  readonly byteOffset: number;
  readonly line: number;
  /** The unit the entry was read from (set by the reader, not stored). */
  readonly unitId: string;
  /** The record's position among the records of the unit's part (0-based, in part order). */
  readonly ordinal: number;
  /** Rows the record has in the part (its chunks; 1 for a scored row). */
  readonly rows: number;
  /** Of those, rows carried unchanged from an earlier run (embedding). */
  readonly carried: number;
}

/**
 * The order every id list is sorted in and finalize merges by: id (UTF-8 bytes), then
 * source key, then byte offset. Equal ids come out together, the last one in (source
 * key, byte offset) order last.
 */
export function compareIdEntries(a: IdEntry, b: IdEntry): number {
  return compareDocIds(a.id, b.id) || compareDocIds(a.sourceKey, b.sourceKey) || a.byteOffset - b.byteOffset;
}

/** Numbers kept per entry of a {@link UnitIdList}. */
const SOURCE = 0;
const BYTE_OFFSET = 1;
const LINE = 2;
const ROWS = 3;
const CARRIED = 4;

/** Lines of a serialized id list joined into one block. */
const BLOCK_LINES = 4096;

/**
 * The records a unit put in its results table, in part order, packed ({@link PackedEntries}:
 * a unit of short records has hundreds of thousands) until the unit writes them, sorted by
 * {@link compareIdEntries}, one JSON array per line after a header line, a block of lines at
 * a time.
 */
export class UnitIdList {
  private readonly entries = new PackedEntries(['u32', 'f64', 'f64', 'u32', 'u32']);
  private readonly sources: string[] = [];
  private readonly sourceNumbers = new Map<string, number>();

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the list holds (its packed arrays' capacity). */
  get heldBytes(): number {
    return this.entries.capacityBytes;
  }

  /** The next record of the part (its ordinal is the number added before it). */
  add(record: {
    id: string;
    sourceKey: string;
    byteOffset: number;
    line: number;
    rows: number;
    carried: number;
  }): void {
    let source = this.sourceNumbers.get(record.sourceKey);
    if (source === undefined) {
      source = this.sources.length;
      this.sources.push(record.sourceKey);
      this.sourceNumbers.set(record.sourceKey, source);
    }
    this.entries.push(record.id, [source, record.byteOffset, record.line, record.rows, record.carried]);
  }

  /** The whole list as one string (tests; a unit writes {@link blocks} one at a time). */
  serialize(runId: string, unitId: string): string {
    return [...this.blocks(runId, unitId)].join('');
  }

  /** The serialized list: the header line, then blocks of lines in {@link compareIdEntries} order. */
  *blocks(runId: string, unitId: string): Generator<string> {
    const { entries, sources } = this;
    const order = entries.sortedBy(
      (a, b) =>
        entries.compareIds(a, b) ||
        compareDocIds(sources[entries.value(a, SOURCE)]!, sources[entries.value(b, SOURCE)]!) ||
        entries.value(a, BYTE_OFFSET) - entries.value(b, BYTE_OFFSET),
    );
    yield `${JSON.stringify({ format: UNIT_ID_LIST_FORMAT, runId, unitId, records: order.length })}\n`;
    for (let at = 0; at < order.length; at += BLOCK_LINES) {
      let block = '';
      for (const i of order.subarray(at, at + BLOCK_LINES)) {
        const line = [
          entries.id(i),
          sources[entries.value(i, SOURCE)],
          entries.value(i, BYTE_OFFSET),
          entries.value(i, LINE),
          i,
          entries.value(i, ROWS),
          entries.value(i, CARRIED),
        ];
        block += `${JSON.stringify(line)}\n`;
      }
      yield block;
    }
  }
}

/** A stored id list that cannot be read as written. */
export class IdListError extends SluiceError {}

/** The entries of a unit's id list, in list order; none when the unit left no list (a run of an older version). */
export async function* readUnitIdList(
  store: ObjectStore,
  pipeline: string,
  runId: string,
  unitId: string,
  windowBytes?: number,
): AsyncGenerator<IdEntry> {
  const key = unitIdListKey(pipeline, runId, unitId);
  const info = await store.head(key);
  if (!info) return;
  let header = true;
  for await (const line of objectLines(store, key, 0, info.size, windowBytes)) {
    if (header) {
      const parsed = JSON.parse(line) as { format?: string; runId?: string; unitId?: string };
      if (parsed.format !== UNIT_ID_LIST_FORMAT || parsed.runId !== runId || parsed.unitId !== unitId)
        throw new IdListError(`${key} is not the id list of unit ${unitId} of run ${runId}`);
      header = false;
      continue;
    }
    const [id, sourceKey, byteOffset, lineNo, ordinal, rows, carried] = JSON.parse(line) as [
      string,
      string,
      number,
      number,
      number,
      number,
      number,
    ];
    yield { id, sourceKey, byteOffset, line: lineNo, unitId, ordinal, rows, carried };
  }
}
