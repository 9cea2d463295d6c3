import fc from 'fast-check';
import { parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { EmbeddingRow } from '../../shared/domain/types.ts';
import { DUPLICATES_PART, resolveDuplicateIds } from '../../shared/duplicates/resolve-duplicate-ids.ts';
import { UnitIdList, unitIdListKey } from '../../shared/duplicates/unit-id-list.ts';
import { unitPartKey } from '../../shared/output/keys.ts';
import { embeddingsPartWriter, scoresPartWriter } from '../../shared/output/parquet-tables.ts';

const RUN = { pipeline: 'p', runId: 'r-20261207T000000Z-abcdef' };

interface Rec {
  readonly id: string;
  readonly sourceKey: string;
  readonly byteOffset: number;
}

/** Writes a scoring unit's part and id list as the worker does: rows in read order. */
async function writeScoreUnit(
  store: MemoryObjectStore,
  unitId: string,
  records: readonly Rec[],
): Promise<void> {
  const writer = scoresPartWriter(RUN.runId);
  const ids = new UnitIdList();
  for (const r of records) {
    writer.add([
      {
        record_id: r.id,
        score: r.byteOffset,
        model: 'm',
        source_key: r.sourceKey,
        line: r.byteOffset,
        outputs: [],
        metadata: {},
      },
    ]);
    ids.add({
      id: r.id,
      sourceKey: r.sourceKey,
      byteOffset: r.byteOffset,
      line: r.byteOffset,
      rows: 1,
      carried: 0,
    });
  }
  await store.put(unitPartKey('scores', RUN.pipeline, RUN.runId, unitId), writer.finish().slice());
  await store.put(unitIdListKey(RUN.pipeline, RUN.runId, unitId), ids.serialize(RUN.runId, unitId));
}

async function rowsOf(store: MemoryObjectStore, table: 'scores' | 'embeddings' | 'rejects', unitId: string) {
  const body = store.objects.get(unitPartKey(table, RUN.pipeline, RUN.runId, unitId));
  if (!body) return [];
  return parquetReadObjects({ file: body.slice().buffer });
}

describe('resolveDuplicateIds', () => {
  it('keeps the last record in (source key, byte offset) order, and stays exact when finalize runs again or a redrive adds a later copy', async () => {
    const store = new MemoryObjectStore();
    await writeScoreUnit(store, 'u1', [
      { id: 'x', sourceKey: 'a.csv', byteOffset: 10 },
      { id: 'y', sourceKey: 'a.csv', byteOffset: 20 },
    ]);
    await writeScoreUnit(store, 'u2', [
      { id: 'x', sourceKey: 'b.csv', byteOffset: 5 },
      { id: 'z', sourceKey: 'b.csv', byteOffset: 9 },
    ]);
    await writeScoreUnit(store, 'u3', [{ id: 'x', sourceKey: 'c.csv', byteOffset: 1 }]);

    // u3 failed: only u1 and u2 count.
    const first = await resolveDuplicateIds(store, RUN, 'scores', ['u1', 'u2']);
    expect(first).toEqual({ rejected: 1, rows: 1, carried: 0, partsRewritten: 1 });
    expect((await rowsOf(store, 'scores', 'u1')).map((r) => r.record_id)).toEqual(['y']);
    const again = await resolveDuplicateIds(store, RUN, 'scores', ['u1', 'u2']);
    expect(again).toEqual({ ...first, partsRewritten: 0 });
    expect((await rowsOf(store, 'scores', 'u1')).map((r) => r.record_id)).toEqual(['y']);

    // u3 redriven: its x comes last, so u2's goes; u1's stays gone.
    const redriven = await resolveDuplicateIds(store, RUN, 'scores', ['u1', 'u2', 'u3']);
    expect(redriven).toEqual({ rejected: 2, rows: 2, carried: 0, partsRewritten: 1 });
    expect((await rowsOf(store, 'scores', 'u1')).map((r) => r.record_id)).toEqual(['y']);
    expect((await rowsOf(store, 'scores', 'u2')).map((r) => r.record_id)).toEqual(['z']);
    expect((await rowsOf(store, 'scores', 'u3')).map((r) => r.record_id)).toEqual(['x']);
    const rejects = await rowsOf(store, 'rejects', DUPLICATES_PART);
    expect(rejects.map((r) => [r.source_key, r.reason])).toEqual([
      ['a.csv', 'duplicate id "x": kept the record at c.csv line 1'],
      ['b.csv', 'duplicate id "x": kept the record at c.csv line 1'],
    ]);
  });

  it('drops a duplicated document with all of its chunks', async () => {
    const store = new MemoryObjectStore();
    const writer = embeddingsPartWriter(RUN.runId);
    const ids = new UnitIdList();
    // d0 has three chunks, then d1, then d0 again (later in the file: it wins).
    const rows: EmbeddingRow[] = [0, 1, 2, 3, 4, 5, 6].map((i) => {
      const doc = i < 3 ? 'd0' : i < 5 ? 'd1' : 'd0';
      const index = i < 3 ? i : i < 5 ? i - 3 : i - 5;
      return {
        doc_id: doc,
        chunk_id: `${doc}#${index}`,
        chunk_index: index,
        char_start: 0,
        char_end: 1,
        token_count: 1,
        chunk_text: `row ${i}`,
        text_sha256: 'h',
        model: 'm',
        embedding: Float32Array.of(i),
        source_key: 'a.jsonl',
        metadata: {},
      };
    });
    writer.add(rows);
    ids.add({ id: 'd0', sourceKey: 'a.jsonl', byteOffset: 0, line: 1, rows: 3, carried: 1 });
    ids.add({ id: 'd1', sourceKey: 'a.jsonl', byteOffset: 50, line: 2, rows: 2, carried: 0 });
    ids.add({ id: 'd0', sourceKey: 'a.jsonl', byteOffset: 90, line: 3, rows: 2, carried: 0 });
    await store.put(unitPartKey('embeddings', RUN.pipeline, RUN.runId, 'u1'), writer.finish().slice());
    await store.put(unitIdListKey(RUN.pipeline, RUN.runId, 'u1'), ids.serialize(RUN.runId, 'u1'));

    expect(await resolveDuplicateIds(store, RUN, 'embeddings', ['u1'])).toEqual({
      rejected: 1,
      rows: 3,
      carried: 1,
      partsRewritten: 1,
    });
    const kept = await rowsOf(store, 'embeddings', 'u1');
    expect(kept.map((r) => r.chunk_text)).toEqual(['row 3', 'row 4', 'row 5', 'row 6']);
    expect(kept[2]!.embedding).toEqual([5]);
  });

  it('leaves exactly one record per id, the last in (source, offset) order, and rejects every other one', async () => {
    const record = fc.record({
      id: fc.constantFrom('a', 'b', 'c', 'd', 'é', '𝄞'),
      sourceKey: fc.constantFrom('s1', 's2', 's3'),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(record, { maxLength: 8 }), { minLength: 1, maxLength: 5 }),
        async (units) => {
          const store = new MemoryObjectStore();
          let offset = 0;
          const all: (Rec & { unitId: string })[] = [];
          for (const [u, records] of units.entries()) {
            // Byte offsets unique within the run, as record starts are.
            const placed = records.map((r, i) => ({ ...r, byteOffset: offset + i + 1, unitId: `u${u}` }));
            offset += records.length;
            all.push(...placed);
            await writeScoreUnit(store, `u${u}`, placed);
          }
          const unitIds = units.map((_, u) => `u${u}`);
          const result = await resolveDuplicateIds(store, RUN, 'scores', unitIds);
          const kept = (await Promise.all(unitIds.map((u) => rowsOf(store, 'scores', u)))).flat();
          const winners = new Map<string, Rec>();
          for (const r of [...all].sort((a, b) =>
            a.sourceKey === b.sourceKey ? a.byteOffset - b.byteOffset : a.sourceKey < b.sourceKey ? -1 : 1,
          ))
            winners.set(r.id, r);
          expect(kept.map((r) => `${r.record_id}@${r.source_key}:${r.score}`).sort()).toEqual(
            [...winners.values()].map((r) => `${r.id}@${r.sourceKey}:${r.byteOffset}`).sort(),
          );
          expect(result.rejected).toBe(all.length - winners.size);
          expect(kept.length + result.rejected).toBe(all.length);
        },
      ),
      { numRuns: 40 },
    );
  });
});
