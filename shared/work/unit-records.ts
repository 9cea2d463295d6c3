import type { RejectRow, WorkUnit } from '../domain/types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import {
  type RecordFields,
  type RejectRecord,
  readSourceRecords,
  type SourceRecord,
  type SourceSlice,
} from '../readers/source-records.ts';

/**
 * The slices a unit reads: its byte range of the main source (or the re-staged part that
 * holds it), then each packed file whole.
 */
export function slicesOf(unit: WorkUnit): SourceSlice[] {
  return [
    {
      key: unit.sourceKey,
      format: unit.format,
      compression: unit.compression,
      byteStart: unit.byteStart,
      byteEnd: unit.byteEnd,
      firstLine: unit.firstLine,
      ...(unit.csvHeader === undefined ? {} : { csvHeader: unit.csvHeader }),
      ...(unit.staged === undefined ? {} : { staged: unit.staged }),
      ...(unit.sourceVersion === undefined ? {} : { version: unit.sourceVersion }),
    },
    ...unit.packed.map((file) => ({ ...file, byteStart: 0, byteEnd: file.size, firstLine: 1 })),
  ];
}

/** A reject of the reader as a row of the `rejects` table. */
export function rejectRowOf(sourceKey: string, record: RejectRecord): RejectRow {
  return {
    source_key: sourceKey,
    byte_offset: record.byteOffset,
    line: record.line,
    reason: record.reason,
    excerpt: record.excerpt,
  };
}

/** Where a unit stopped early: the first record (or packed file) it did not read. */
export interface ResumePoint {
  /** 0: inside the main range, at `byteOffset`/`line`; n > 0: before packed file n - 1. */
  readonly sliceIndex: number;
  readonly byteOffset: number;
  readonly line: number;
}

/** Asked before each record; when it says stop, the reader ends and records where. */
export interface Checkpoint {
  readonly shouldStop: () => boolean;
  stoppedAt?: ResumePoint;
}

/** Byte offsets of uncompressed JSONL read in place are positions a new unit can start from. */
function canResumeMidSlice(unit: WorkUnit): boolean {
  return unit.format === 'jsonl' && unit.compression === 'none' && unit.staged === undefined;
}

/** The id of the unit that continues `unitId` after a checkpoint. */
export const continuationIdOf = (unitId: string): string => `${unitId}c`;

/** The unit that reads what `unit` left when it stopped at `stop`. */
export function continuationOf(unit: WorkUnit, stop: ResumePoint): WorkUnit {
  const unitId = continuationIdOf(unit.unitId);
  const share = (part: number) => Math.max(1, Math.round(unit.estCost * part));
  if (stop.sliceIndex === 0) {
    const span = Math.max(1, unit.byteEnd - unit.byteStart);
    const packedBytes = unit.packed.reduce((sum, f) => sum + f.size, 0);
    return {
      ...unit,
      unitId,
      byteStart: stop.byteOffset,
      firstLine: stop.line,
      estCost: share((unit.byteEnd - stop.byteOffset + packedBytes) / (span + packedBytes)),
    };
  }
  const file = unit.packed[stop.sliceIndex - 1]!;
  const rest = unit.packed.slice(stop.sliceIndex);
  const total = Math.max(1, unit.byteEnd - unit.byteStart + unit.packed.reduce((sum, f) => sum + f.size, 0));
  const { csvHeader: _header, staged: _staged, sourceVersion: _version, ...base } = unit;
  return {
    ...base,
    unitId,
    sourceKey: file.key,
    ...(file.version === undefined ? {} : { sourceVersion: file.version }),
    byteStart: 0,
    byteEnd: file.size,
    firstLine: 1,
    format: file.format,
    compression: file.compression,
    packed: rest,
    estCost: share([file, ...rest].reduce((sum, f) => sum + f.size, 0) / total),
  };
}

/** What is left of `unit` for a retry when an earlier attempt already handed the rest to `continuation`. */
export function trimToContinuation(unit: WorkUnit, continuation: WorkUnit): WorkUnit {
  if (continuation.sourceKey === unit.sourceKey && continuation.byteStart > unit.byteStart) {
    return { ...unit, byteEnd: continuation.byteStart, packed: [] };
  }
  const at = unit.packed.findIndex((f) => f.key === continuation.sourceKey);
  return { ...unit, packed: at === -1 ? unit.packed : unit.packed.slice(0, at) };
}

/**
 * Every record of a unit, slice after slice. A file with no record to read (zero bytes,
 * only blank lines, a CSV header alone) is reported as one reject
 * (`empty file: no records`) rather than vanishing.
 */
export async function* unitRecords(
  store: ObjectStore,
  unit: WorkUnit,
  fields: RecordFields,
  checkpoint?: Checkpoint,
): AsyncGenerator<{ slice: SourceSlice; record: SourceRecord }> {
  let yielded = 0;
  const midSlice = canResumeMidSlice(unit);
  for (const [index, slice] of slicesOf(unit).entries()) {
    // A packed file is a whole object: a unit can always stop before one.
    if (checkpoint && yielded > 0 && index > 0 && checkpoint.shouldStop()) {
      checkpoint.stoppedAt = { sliceIndex: index, byteOffset: 0, line: 1 };
      return;
    }
    const empty = {
      slice,
      record: {
        kind: 'reject',
        reason: 'empty file: no records',
        line: 0,
        byteOffset: 0,
        excerpt: '',
      } as const,
    };
    if (slice.byteEnd === 0 && slice.byteStart === 0 && slice.staged === undefined) {
      yield empty;
      continue;
    }
    let records = 0;
    for await (const record of readSourceRecords(store, slice, fields)) {
      // Every record starts at its byte offset: the rest of the range from there is a unit of its own.
      if (checkpoint && yielded > 0 && index === 0 && midSlice && checkpoint.shouldStop()) {
        checkpoint.stoppedAt = { sliceIndex: 0, byteOffset: record.byteOffset, line: record.line };
        return;
      }
      records += 1;
      yielded += 1;
      yield { slice, record };
    }
    // The slice that starts a file speaks for the whole file when it holds no record.
    if (records === 0 && slice.byteStart === 0 && slice.staged === undefined) yield empty;
  }
}
