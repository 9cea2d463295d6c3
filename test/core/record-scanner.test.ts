import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readCsvRecords } from '../../shared/readers/csv.ts';
import { readLines } from '../../shared/readers/line-reader.ts';

async function* chunksOf(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect<T>(records: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const record of records) out.push(record);
  return out;
}

describe('one record scanner for lines and CSV', () => {
  it('cuts text without quotes where lines end, whichever reader asks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.stringMatching(/^[a-z, ]{0,12}$/), { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 2, max: 15 }),
        async (lines, trailingNewline, chunkSize, limit) => {
          const bytes = Buffer.from(lines.join('\n') + (trailingNewline ? '\n' : ''));
          const asLines = await collect(
            readLines(chunksOf(bytes, chunkSize), {
              streamOffset: 0,
              start: 0,
              end: bytes.length,
              maxLineBytes: limit,
            }),
          );
          const asCsv = await collect(
            readCsvRecords(chunksOf(bytes, chunkSize), {
              start: 0,
              end: bytes.length,
              firstLine: 1,
              maxRecordBytes: limit,
              atFileStart: false,
            }),
          );
          const shape = (r: { offset: number; next: number; truncated: boolean; bytes: Buffer }) => ({
            offset: r.offset,
            next: r.next,
            truncated: r.truncated,
            text: r.bytes.toString(),
          });
          expect(asCsv.map(shape)).toEqual(asLines.map(shape));
          expect(asCsv.map((r) => r.line)).toEqual(asCsv.map((_, i) => i + 1));
        },
      ),
      { numRuns: 300 },
    );
  });
});
