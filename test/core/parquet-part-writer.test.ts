import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { embeddingsPartWriter, rejectsParquet } from '../../shared/output/parquet-tables.ts';
import { embeddingRow } from './factories.ts';

const read = (bytes: Uint8Array) => parquetReadObjects({ file: bytes.slice().buffer });

describe('ParquetPartWriter', () => {
  it('writes rows added in pieces as full row groups of 2048, in the order added', async () => {
    const writer = embeddingsPartWriter('r-1');
    const total = 5000;
    // Pieces that straddle group boundaries, as windows of a unit do.
    for (let start = 0; start < total; start += 777) {
      writer.add(Array.from({ length: Math.min(777, total - start) }, (_, k) => embeddingRow(start + k)));
    }
    expect(writer.rows).toBe(total);
    const bytes = writer.finish();
    const meta = parquetMetadata(bytes.slice().buffer);
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual([2048, 2048, 904]);

    const rows = await read(bytes);
    expect(rows).toHaveLength(total);
    expect(rows.map((r) => r.char_start)).toEqual(Array.from({ length: total }, (_, i) => i));
    const sample = rows[4001]!;
    expect(sample).toMatchObject({
      run_id: 'r-1',
      chunk_id: 'd1333#2',
      chunk_text: 'chunk 4001 text, with "quotes" and ünïcode',
      metadata: JSON.stringify({ title: 't4001' }),
    });
    expect(sample.embedding).toEqual([4001, 2000.5, -4001]);
    expect(rows[4000]!.metadata).toBeNull();
  });

  it('skips dictionaries and statistics on free-text columns but keeps them on the rest', () => {
    const writer = embeddingsPartWriter('r-1');
    writer.add(Array.from({ length: 100 }, (_, i) => embeddingRow(i)));
    const meta = parquetMetadata(writer.finish().slice().buffer);
    const byName = new Map(
      meta.row_groups[0]!.columns.map((c) => [c.meta_data!.path_in_schema.join('.'), c]),
    );
    const text = byName.get('chunk_text')!.meta_data!;
    expect(text.encodings).not.toContain('RLE_DICTIONARY');
    expect(text.statistics?.max_value).toBeUndefined();
    const model = byName.get('model')!.meta_data!;
    expect(model.encodings).toContain('RLE_DICTIONARY');
    expect(byName.get('char_start')!.meta_data!.statistics?.max_value).toBe(99);
  });

  it('a one-shot table file reads back the same as before (rejects)', async () => {
    const rows = await read(
      rejectsParquet('r-2', [
        { source_key: 'k', byte_offset: 12, line: 3, reason: 'invalid JSON', excerpt: '{x' },
      ]),
    );
    expect(rows).toEqual([
      { run_id: 'r-2', source_key: 'k', byte_offset: 12n, line: 3n, reason: 'invalid JSON', excerpt: '{x' },
    ]);
  });
});
