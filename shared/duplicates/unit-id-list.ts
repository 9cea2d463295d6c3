import { SluiceError } from '../errors/errors.ts';
import { compareDocIds } from '../incremental/doc-lines.ts';
import { objectLines } from '../incremental/object-lines.ts';
import type { ObjectStore } from '../ports/object-store.ts';

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

/**
 * The records a unit put in its results table, in part order, kept as parallel arrays
 * (a unit of short records has hundreds of thousands) until the unit writes them, sorted
 * by {@link compareIdEntries}, one JSON array per line after a header line.
 */
export class UnitIdList {
  private readonly ids: string[] = [];
  private readonly sources: string[] = [];
  private readonly numbers: number[] = [];

  get size(): number {
    return this.ids.length;
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
    this.ids.push(record.id);
    this.sources.push(record.sourceKey);
    this.numbers.push(record.byteOffset, record.line, record.rows, record.carried);
  }

  serialize(runId: string, unitId: string): string {
    const order = Array.from({ length: this.ids.length }, (_, i) => i);
    order.sort(
      (a, b) =>
        compareDocIds(this.ids[a]!, this.ids[b]!) ||
        compareDocIds(this.sources[a]!, this.sources[b]!) ||
        this.numbers[a * 4]! - this.numbers[b * 4]!,
    );
    // Joined a few thousand lines at a time: one string per line for the whole unit would
    // hold as much again as the list itself.
    const blocks = [
      `${JSON.stringify({ format: UNIT_ID_LIST_FORMAT, runId, unitId, records: order.length })}\n`,
    ];
    const n = this.numbers;
    for (let at = 0; at < order.length; at += 4096) {
      let block = '';
      for (const i of order.slice(at, at + 4096))
        block += `${JSON.stringify([this.ids[i], this.sources[i], n[i * 4], n[i * 4 + 1], i, n[i * 4 + 2], n[i * 4 + 3]])}\n`;
      blocks.push(block);
    }
    return blocks.join('');
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
