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

/**
 * Every record of a unit, slice after slice. A file with no record to read (zero bytes,
 * only blank lines, a CSV header alone) is reported as one reject
 * (`empty file: no records`) rather than vanishing.
 */
export async function* unitRecords(
  store: ObjectStore,
  unit: WorkUnit,
  fields: RecordFields,
): AsyncGenerator<{ slice: SourceSlice; record: SourceRecord }> {
  for (const slice of slicesOf(unit)) {
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
      records += 1;
      yield { slice, record };
    }
    // The slice that starts a file speaks for the whole file when it holds no record.
    if (records === 0 && slice.byteStart === 0 && slice.staged === undefined) yield empty;
  }
}
