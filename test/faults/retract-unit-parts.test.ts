import { parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { type TableName, unitPartKey } from '../../shared/output/keys.ts';
import { retractUnitParts } from '../../shared/work/dead-letter-unit.ts';

const unit = { pipeline: 'p', runId: 'r-20261207T120000Z-retr01', unitId: 'u0007' };

/** Every table a unit writes a part of: a dead-lettered unit must leave none of its rows behind. */
const UNIT_TABLES: TableName[] = ['embeddings', 'rejects', 'scores', 'generations', 'recommendations'];

describe('retractUnitParts', () => {
  it('empties the part of every per-unit table the unit wrote, and only those', async () => {
    const store = new MemoryObjectStore();
    const written = UNIT_TABLES.filter((_, i) => i !== 2); // no scores part: it stays absent
    for (const table of written) {
      await store.put(unitPartKey(table, unit.pipeline, unit.runId, unit.unitId), new Uint8Array([1, 2, 3]));
    }
    const retracted = await retractUnitParts(store, unit as never);
    expect(retracted.sort()).toEqual(
      written.map((t) => unitPartKey(t, unit.pipeline, unit.runId, unit.unitId)).sort(),
    );
    for (const key of retracted) {
      const bytes = (await store.get(key))!;
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      expect(await parquetReadObjects({ file: file as ArrayBuffer })).toEqual([]);
    }
    expect(await store.head(unitPartKey('scores', unit.pipeline, unit.runId, unit.unitId))).toBeFalsy();
  });
});
