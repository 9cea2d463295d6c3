import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { CsvRecordBoundaries, parseCsvRecord, readCsvRecords } from '../../shared/readers/csv.ts';

/**
 * The reference: physical lines are joined until the text parses (no quote left open),
 * which is how a record is read line by line. The byte scanner must agree with it on
 * every input, well-formed or not.
 */
function referenceRecordStarts(text: string): { offset: number; line: number }[] {
  const starts: { offset: number; line: number }[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let offset = 0;
  let pending: string | undefined;
  lines.forEach((raw, i) => {
    const body = i === 0 && raw.startsWith('\ufeff') ? raw.slice(1) : raw;
    const stripped = body.endsWith('\r') ? body.slice(0, -1) : body;
    if (pending === undefined) starts.push({ offset: Buffer.byteLength(text.slice(0, offset)), line: i + 1 });
    const joined = pending === undefined ? stripped : `${pending}\n${stripped}`;
    pending = parseCsvRecord(joined) === undefined ? joined : undefined;
    offset += raw.length + 1;
  });
  return starts;
}

async function recordsOf(text: string, chunkSize: number) {
  const store = new MemoryObjectStore(chunkSize);
  await store.put('f.csv', text);
  const out = [];
  for await (const record of readCsvRecords(store.readRange('f.csv', 0), {
    start: 0,
    end: Number.POSITIVE_INFINITY,
    firstLine: 1,
    maxRecordBytes: 1 << 20,
  }))
    out.push(record);
  return out;
}

const csvText = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.constantFrom('a', 'é', '"', ',', '\n', '\r', ' ', '""'), { maxLength: 80 }),
  )
  .map(([bom, parts]) => (bom ? '\ufeff' : '') + parts.join(''));

describe('CsvRecordBoundaries', () => {
  it('ends records where reading line by line would, for any bytes and any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(csvText, fc.integer({ min: 1, max: 9 }), async (text, chunkSize) => {
        const records = await recordsOf(text, chunkSize);
        expect(records.map((r) => ({ offset: r.offset, line: r.line }))).toEqual(referenceRecordStarts(text));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps a newline inside quotes in the record and ends the record at the next one outside', () => {
    const scanner = new CsvRecordBoundaries(true);
    const bytes = Buffer.from('1,"a\nb",c\n2,d\n');
    expect(scanner.nextRecordEnd(bytes, 0)).toBe(9);
    expect(scanner.nextRecordEnd(bytes, 10)).toBe(13);
  });

  it('reads a quote inside an unquoted field as text', () => {
    const scanner = new CsvRecordBoundaries(true);
    const bytes = Buffer.from('5" screen,x\nnext\n');
    expect(scanner.nextRecordEnd(bytes, 0)).toBe(11);
  });
});

describe('readCsvRecords', () => {
  it('measures a record over the limit without buffering it, and goes on with the next', async () => {
    const store = new MemoryObjectStore(5);
    await store.put('f.csv', `a,"${'x'.repeat(50)}\n${'y'.repeat(50)}"\nb,ok\n`);
    const records = [];
    for await (const record of readCsvRecords(store.readRange('f.csv', 0), {
      start: 0,
      end: 1000,
      firstLine: 1,
      maxRecordBytes: 20,
    }))
      records.push(record);
    expect(records[0]).toMatchObject({ offset: 0, line: 1, truncated: true, length: 105 });
    expect(records[0]!.bytes.length).toBeLessThanOrEqual(21);
    expect(records[1]).toMatchObject({ offset: 106, line: 3, truncated: false });
    expect(records[1]!.bytes.toString()).toBe('b,ok');
  });

  it('marks a record the file ends inside a quoted field as unterminated', async () => {
    const records = await recordsOf('id,text\n1,"never closed\nmore', 4);
    expect(records.map((r) => r.unterminated)).toEqual([false, true]);
    expect(records[1]!.bytes.toString()).toBe('1,"never closed\nmore');
  });

  it('yields only the records that start before the end of its range', async () => {
    const store = new MemoryObjectStore(3);
    const text = 'h\n"a\nb"\nc\nd\n';
    await store.put('f.csv', text);
    const records = [];
    for await (const record of readCsvRecords(store.readRange('f.csv', 2), {
      start: 2,
      end: 9,
      firstLine: 2,
      maxRecordBytes: 100,
    }))
      records.push(record);
    expect(records.map((r) => [r.bytes.toString(), r.line, r.next])).toEqual([
      ['"a\nb"', 2, 8],
      ['c', 4, 10],
    ]);
  });
});
