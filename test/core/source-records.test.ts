import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  readSourceRecords,
  type SourceRecord,
  type SourceSlice,
} from '../../shared/readers/source-records.ts';
import { jsonl } from './factories.ts';

const fields = { idField: 'id', textField: 'text', metadataFields: ['title'], maxRecordBytes: 1024 };

async function readAll(
  body: Uint8Array | string,
  slice: Partial<SourceSlice> = {},
  chunkSize = 7,
): Promise<SourceRecord[]> {
  const store = new MemoryObjectStore(chunkSize);
  const key = slice.key ?? 'incoming/docs/in.jsonl';
  await store.put(key, body);
  const size = (await store.head(key))!.size;
  const out: SourceRecord[] = [];
  for await (const r of readSourceRecords(
    store,
    { key, format: 'jsonl', compression: 'none', byteStart: 0, byteEnd: size, firstLine: 1, ...slice },
    fields,
  ))
    out.push(r);
  return out;
}

const reasons = (records: SourceRecord[]) =>
  records.map((r) => (r.kind === 'reject' ? r.reason : `doc:${r.id}`));

describe('readSourceRecords (JSONL)', () => {
  it('turns every line into a document or a reject with its reason', async () => {
    const records = await readAll(
      jsonl([
        { id: 'a', text: 'hello', title: 'T' },
        '{"id": "b", "text": ',
        [1, 2],
        { id: 'c' },
        { id: 'd', text: 5 },
        { id: 'e', text: '  ' },
        '',
        { text: 'no id' },
        { id: { x: 1 }, text: 'bad id' },
        { id: 7, text: 'numeric id' },
      ]),
    );
    expect(reasons(records)).toEqual([
      'doc:a',
      expect.stringMatching(/^malformed JSON: /),
      'not a JSON object (got array)',
      'missing text field "text"',
      'text field "text" is not a string',
      'text field "text" is empty',
      'doc:incoming/docs/in.jsonl:8',
      'id field "id" must be a string or a number',
      'doc:7',
    ]);
    expect(records[0]).toMatchObject({ kind: 'doc', metadata: { title: 'T' }, line: 1, byteOffset: 0 });
  });

  it('rejects invalid UTF-8 and records over the size limit without losing the next record', async () => {
    const big = JSON.stringify({ id: 'big', text: 'x'.repeat(2000) });
    const body = Buffer.concat([
      Buffer.from('{"id":"bad","text":"\xff"}\n', 'latin1'),
      Buffer.from(`${big}\n{"id":"ok","text":"fine"}\n`),
    ]);
    expect(reasons(await readAll(body))).toEqual([
      'invalid UTF-8',
      expect.stringMatching(/^record is 2\d{3} bytes, over the limit of 1024 bytes$/),
      'doc:ok',
    ]);
  });

  it('reads gzip transparently and keeps the records before a truncation', async () => {
    const text = jsonl(
      Array.from({ length: 200 }, (_, i) => ({ id: `g${i}`, text: `document number ${i} `.repeat(5) })),
    );
    const gz = gzipSync(text);
    const whole = await readAll(gz, { key: 'in.jsonl.gz', compression: 'gzip' }, 64);
    expect(whole).toHaveLength(200);
    const cut = await readAll(
      gz.subarray(0, Math.floor(gz.length / 2)),
      { key: 'in.jsonl.gz', compression: 'gzip' },
      64,
    );
    const last = cut.at(-1)!;
    expect(last.kind === 'reject' && last.reason).toMatch(/^corrupt or truncated gzip data/);
    expect(cut.length).toBeGreaterThan(10);
    expect(reasons(cut.slice(0, -1)).every((r) => r.startsWith('doc:g'))).toBe(true);
  });
});

describe('readSourceRecords (CSV)', () => {
  it('reads quoted fields with commas, quotes and newlines, CRLF and a BOM', async () => {
    const csv =
      '\ufeffid,text,title\r\n1,"hello, world",A\r\n2,"she said ""hi""\nacross lines",B\r\n3,plain,C\r\n';
    const records = await readAll(csv, { format: 'csv', key: 'in.csv' });
    expect(
      records.map((r) => (r.kind === 'doc' ? [r.id, r.text, r.line] : r.kind === 'reject' ? r.reason : r.id)),
    ).toEqual([
      ['1', 'hello, world', 2],
      ['2', 'she said "hi"\nacross lines', 3],
      ['3', 'plain', 5],
    ]);
  });

  it('rejects a row with the wrong number of fields and an unterminated quote', async () => {
    const records = await readAll('id,text\n1,ok\n2,too,many\n3,"never closed\n', {
      format: 'csv',
      key: 'in.csv',
    });
    expect(reasons(records)).toEqual([
      'doc:1',
      'CSV row has 3 fields, the header has 2',
      'CSV record ends inside a quoted field',
    ]);
  });
});

describe('readSourceRecords (CSV rejects)', () => {
  it('rejects invalid UTF-8 and a quoted record over the size limit, and reads on', async () => {
    const body = Buffer.concat([
      Buffer.from('id,text\n1,"caf', 'latin1'),
      Buffer.from([0xe9]),
      Buffer.from(`"\n2,"${'x'.repeat(600)}\n${'y'.repeat(600)}"\n3,fine\n`),
    ]);
    const records = await readAll(body, { format: 'csv', key: 'in.csv' });
    expect(reasons(records)).toEqual([
      'invalid UTF-8',
      'record is 1205 bytes, over the limit of 1024 bytes',
      'doc:3',
    ]);
    expect(records.map((r) => r.line)).toEqual([2, 3, 5]);
  });
});

describe('readSourceRecords (gzip faults)', () => {
  const text = jsonl(
    Array.from({ length: 300 }, (_, i) => ({ id: `g${i}`, text: `${`doc ${i} `.repeat(i % 7)}x` })),
  );

  it('reports a truncation once, at the line and offset of the first record not read', async () => {
    const gz = gzipSync(text);
    const records = await readAll(
      gz.subarray(0, Math.floor(gz.length * 0.6)),
      { key: 'in.jsonl.gz', compression: 'gzip' },
      50,
    );
    const last = records.at(-1)!;
    expect(last.kind === 'reject' && last.reason).toBe(
      'corrupt or truncated gzip data: unexpected end of file',
    );
    const docs = records.slice(0, -1);
    expect(docs.every((r) => r.kind === 'doc')).toBe(true);
    expect(last.line).toBe(docs.length + 1);
    expect(last.byteOffset).toBe(Buffer.byteLength(`${text.split('\n').slice(0, docs.length).join('\n')}\n`));
  });

  it('rejects a file whose gzip header is corrupt once, at its start', async () => {
    const gz = Buffer.from(gzipSync(text));
    gz[0] = 0x00;
    const records = await readAll(gz, { key: 'in.jsonl.gz', compression: 'gzip' }, 50);
    expect(records).toEqual([
      {
        kind: 'reject',
        reason: 'corrupt or truncated gzip data: incorrect header check',
        line: 1,
        byteOffset: 0,
        excerpt: '',
      },
    ]);
  });

  it('reads a re-staged part from its own object, under the source key, lines and offsets', async () => {
    const store = new MemoryObjectStore(16);
    await store.put('staging/r/p1.jsonl', jsonl([{ text: 'third line' }, { id: 'x', text: 'fourth' }]));
    const out: SourceRecord[] = [];
    for await (const record of readSourceRecords(
      store,
      {
        key: 'incoming/docs/big.jsonl.gz',
        format: 'jsonl',
        compression: 'gzip',
        byteStart: 500,
        byteEnd: 545,
        firstLine: 3,
        staged: {
          key: 'staging/r/p1.jsonl',
          offset: 500,
          fault: {
            reason: 'corrupt or truncated gzip data: unexpected end of file',
            line: 5,
            byteOffset: 545,
          },
        },
      },
      fields,
    ))
      out.push(record);
    expect(out).toEqual([
      expect.objectContaining({ kind: 'doc', id: 'incoming/docs/big.jsonl.gz:3', line: 3, byteOffset: 500 }),
      expect.objectContaining({ kind: 'doc', id: 'x', line: 4, byteOffset: 522 }),
      {
        kind: 'reject',
        reason: 'corrupt or truncated gzip data: unexpected end of file',
        line: 5,
        byteOffset: 545,
        excerpt: '',
      },
    ]);
  });
});

describe('readSourceRecords (text)', () => {
  it('reads a whole file as one document whose id is the key', async () => {
    const records = await readAll('A plain text document.\nWith two lines.', {
      format: 'text',
      key: 'incoming/docs/notes.txt',
    });
    expect(records).toEqual([
      expect.objectContaining({
        kind: 'doc',
        id: 'incoming/docs/notes.txt',
        text: 'A plain text document.\nWith two lines.',
      }),
    ]);
  });

  it('rejects an empty or oversized document', async () => {
    expect(reasons(await readAll(' \n', { format: 'text', key: 'a.txt' }))).toEqual(['empty document']);
    expect(reasons(await readAll('y'.repeat(5000), { format: 'text', key: 'b.txt' }))).toEqual([
      'document is 5000 bytes, over the limit of 1024 bytes',
    ]);
  });
});
