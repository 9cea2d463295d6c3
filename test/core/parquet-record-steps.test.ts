import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { ReadRangeOptions } from '../../shared/ports/object-store.ts';
import { readParquetLayout } from '../../shared/readers/parquet.ts';
import { parquetFile, readSlices, wholeSlice } from '../ingest/factories.ts';

/** A store whose reads starting inside `[from, to)` fail, as a page a codec cannot decode would. */
class BrokenPages extends MemoryObjectStore {
  broken: { from: number; to: number } | undefined;
  override readRange(key: string, start: number, end?: number, options?: ReadRangeOptions) {
    if (this.broken && start >= this.broken.from && start < this.broken.to) throw new Error('bad page');
    return super.readRange(key, start, end, options);
  }
}

const reasons = (records: { kind: string; reason?: string; id?: string }[]) =>
  records.map((r) => (r.kind === 'reject' ? r.reason : `doc:${r.id}`));

describe('Parquet reader steps', () => {
  it('turns a row group that cannot be read into one reject naming its rows, and reads the others', async () => {
    const store = new BrokenPages();
    const ids = ['a', 'b', 'c', 'd'];
    await store.put('in.parquet', parquetFile({ id: ids, text: ids.map((id) => `text ${id}`) }, 2));
    const size = (await store.head('in.parquet'))!.size;
    const layout = await readParquetLayout(store, 'in.parquet', size, 'text');
    const second = layout.rowGroups[1]!;
    const slice = await wholeSlice(store, 'in.parquet', 'parquet');
    store.broken = { from: second.start, to: second.start + 1 };
    const records = await readSlices(store, [slice]);
    expect(reasons(records)).toEqual([
      'doc:a',
      'doc:b',
      'Parquet row group 1 (rows 3-4) could not be read: bad page',
    ]);
    expect(records[2]).toMatchObject({ line: 3, byteOffset: second.start });
  });

  it('rejects a gzipped Parquet file once, without reading it', async () => {
    const store = new MemoryObjectStore();
    await store.put('in.parquet.gz', parquetFile({ id: ['a'], text: ['x'] }, 1));
    const slice = await wholeSlice(store, 'in.parquet.gz', 'parquet');
    const records = await readSlices(store, [{ ...slice, compression: 'gzip' }]);
    expect(reasons(records)).toEqual([
      'gzip-compressed Parquet is not supported: Parquet compresses its own pages',
    ]);
  });
});
