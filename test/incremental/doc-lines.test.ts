import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  compareDocIds,
  DocListError,
  formatDocLine,
  parseDocLine,
} from '../../shared/incremental/doc-lines.ts';
import { objectLines } from '../../shared/incremental/object-lines.ts';
import { docsMissingFrom, mergeSortedDocs, sumDuplicateDocs } from '../../shared/incremental/sorted-docs.ts';
import { UnitDocList } from '../../shared/incremental/unit-doc-list.ts';

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
/** Ids as readers produce them: any text, astral characters, tabs and newlines included. */
const anyId = fc.string({ unit: 'grapheme', maxLength: 12 });

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}
async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('doc lines', () => {
  it('orders ids by their UTF-8 bytes, astral characters after U+E000..U+FFFF', () => {
    expect(compareDocIds('\uffff', '😀')).toBeLessThan(0);
    expect('\uffff' < '😀').toBe(false); // what a plain comparison would get wrong
    fc.assert(
      fc.property(anyId, anyId, (a, b) => {
        expect(Math.sign(compareDocIds(a, b))).toBe(Math.sign(byteOrder(a, b)));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes one line per document whatever the id holds, and reads it back', () => {
    fc.assert(
      fc.property(anyId, fc.nat(), (id, chunks) => {
        const line = formatDocLine(id, chunks);
        expect(line.indexOf('\n')).toBe(line.length - 1);
        expect(parseDocLine(line.slice(0, -1))).toEqual({ id, chunks });
      }),
      { numRuns: 1000 },
    );
    expect(() => parseDocLine('a\t1')).toThrow(DocListError);
    expect(() => parseDocLine('"a"\tx')).toThrow(DocListError);
  });

  it('reads lines window by window, lines and multi-byte characters cut across windows', async () => {
    const text = Array.from({ length: 50 }, (_, i) => `${'é😀x'.repeat(i % 7)}line ${i}`).join('\n');
    const store = new MemoryObjectStore(5);
    await store.put('k', text);
    const size = Buffer.byteLength(text);
    for (const window of [1, 3, 16, 1024])
      expect(await all(objectLines(store, 'k', 0, size, window))).toEqual(text.split('\n'));
    const start = Buffer.byteLength(`${text.split('\n')[0]}\n`);
    expect(await all(objectLines(store, 'k', start, size, 7))).toEqual(text.split('\n').slice(1));
  });

  it('merges sorted streams into one sorted stream, repeats summed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.tuple(anyId, fc.integer({ min: 1, max: 5 })), { maxLength: 20 }), {
          maxLength: 6,
        }),
        async (lists) => {
          const sorted = lists.map((l) =>
            [...new Map(l)].map(([id, chunks]) => ({ id, chunks })).sort((a, b) => compareDocIds(a.id, b.id)),
          );
          const merged = await all(sumDuplicateDocs(mergeSortedDocs(sorted.map(from))));
          const expected = new Map<string, number>();
          for (const doc of sorted.flat()) expected.set(doc.id, (expected.get(doc.id) ?? 0) + doc.chunks);
          expect(merged).toEqual(
            [...expected].sort(([a], [b]) => byteOrder(a, b)).map(([id, chunks]) => ({ id, chunks })),
          );
        },
      ),
    );
  });

  it('refuses an input that is not sorted rather than merge it wrongly', async () => {
    const unsorted = [
      { id: 'b', chunks: 1 },
      { id: 'a', chunks: 1 },
    ];
    await expect(all(mergeSortedDocs([from(unsorted), from([{ id: 'c', chunks: 1 }])]))).rejects.toThrow(
      DocListError,
    );
    await expect(all(sumDuplicateDocs(from(unsorted)))).rejects.toThrow(DocListError);
  });

  it('finds the documents of the old list missing from the new one, reading the new one to its end', async () => {
    const docs = (ids: string) => [...ids].map((id) => ({ id, chunks: id.charCodeAt(0) % 5 }));
    let read = 0;
    async function* counted() {
      for (const doc of docs('bcdxyz')) {
        read += 1;
        yield doc;
      }
    }
    expect(await all(docsMissingFrom(from(docs('abcefg')), counted()))).toEqual(docs('aefg'));
    expect(read).toBe(6);
  });

  it('lists a unit documents per source, sorted, a source with no document kept as an empty section', () => {
    const list = new UnitDocList();
    list.noteSource('s/empty.jsonl');
    for (const id of ['b', 'a', 'b', 'c']) list.add('s/one.jsonl', id);
    list.add('s/two.jsonl', 'z', 3);
    const [header, ...lines] = list.serialize('r-1', 'u0').toString('utf8').split('\n');
    expect(JSON.parse(header!).sections).toEqual([
      { sourceKey: 's/empty.jsonl', docs: 0, chunks: 0, start: 0, end: 0 },
      { sourceKey: 's/one.jsonl', docs: 3, chunks: 4, start: 0, end: 18 },
      { sourceKey: 's/two.jsonl', docs: 1, chunks: 3, start: 18, end: 24 },
    ]);
    expect(lines).toEqual(['"a"\t1', '"b"\t2', '"c"\t1', '"z"\t3', '']);
  });
});
