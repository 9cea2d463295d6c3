import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { readParquetLayout } from '../../shared/readers/parquet.ts';
import { FIELDS, parquetFile, readSlices, wholeSlice } from '../ingest/factories.ts';

const reasons = (records: { kind: string; reason?: string; id?: string }[]) =>
  records.map((r) => (r.kind === 'reject' ? r.reason : `doc:${r.id}`));

describe('Parquet reader', () => {
  it('reads rows as records, line = row number, with ids and rejects by the same rules as JSONL', async () => {
    const store = new MemoryObjectStore(100);
    await store.put(
      'in.parquet',
      parquetFile(
        {
          id: ['a', null, 'c', 'd', 'e'],
          text: ['first', 'no id here', null, '   ', 'y'.repeat(2000)],
          extra: ['1', '2', '3', '4', '5'],
        },
        2,
      ),
    );
    const records = await readSlices(store, [await wholeSlice(store, 'in.parquet', 'parquet')]);
    expect(reasons(records)).toEqual([
      'doc:a',
      'doc:in.parquet:2',
      'missing text field "text"',
      'text field "text" is empty',
      'record is 2000 bytes, over the limit of 1024 bytes',
    ]);
    expect(records.map((r) => r.line)).toEqual([1, 2, 3, 4, 5]);
  });

  it('gives each row group to the range its first page starts in', async () => {
    const store = new MemoryObjectStore();
    const ids = Array.from({ length: 10 }, (_, i) => `r${i}`);
    await store.put('in.parquet', parquetFile({ id: ids, text: ids.map((id) => `text of ${id}`) }, 3));
    const size = (await store.head('in.parquet'))!.size;
    const layout = await readParquetLayout(store, 'in.parquet', size, 'text');
    expect(layout.rowGroups.map((g) => [g.firstRow, g.rows])).toEqual([
      [0, 3],
      [3, 3],
      [6, 3],
      [9, 1],
    ]);
    const cut = layout.rowGroups[2]!.start;
    const slice = await wholeSlice(store, 'in.parquet', 'parquet');
    const first = await readSlices(store, [{ ...slice, byteEnd: cut }]);
    const second = await readSlices(store, [{ ...slice, byteStart: cut, firstLine: 7 }]);
    expect(reasons(first)).toEqual(ids.slice(0, 6).map((id) => `doc:${id}`));
    expect(reasons(second)).toEqual(ids.slice(6).map((id) => `doc:${id}`));
  });

  it('rejects every row when the text column is missing, and a file that is not Parquet once', async () => {
    const store = new MemoryObjectStore();
    await store.put('no-text.parquet', parquetFile({ id: ['a', 'b'], body: ['x', 'y'] }, 10));
    await store.put('bad.parquet', 'this is not parquet at all');
    expect(reasons(await readSlices(store, [await wholeSlice(store, 'no-text.parquet', 'parquet')]))).toEqual(
      ['missing text field "text"', 'missing text field "text"'],
    );
    const bad = await readSlices(store, [await wholeSlice(store, 'bad.parquet', 'parquet')]);
    expect(reasons(bad)).toEqual([expect.stringMatching(/^not a readable Parquet file: /)]);
  });

  it('takes numeric ids as they are', async () => {
    const store = new MemoryObjectStore();
    await store.put('n.parquet', parquetFile({ id: [7n, 8n], text: ['seven', 'eight'] }, 10));
    const records = await readSlices(store, [await wholeSlice(store, 'n.parquet', 'parquet')], {
      ...FIELDS,
      metadataFields: ['id'],
    });
    expect(records).toMatchObject([
      { kind: 'doc', id: '7', metadata: { id: '7' } },
      { kind: 'doc', id: '8', metadata: { id: '8' } },
    ]);
  });
});
