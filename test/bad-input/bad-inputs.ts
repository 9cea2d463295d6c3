import { gzipSync } from 'node:zlib';

/** One bad input file: what it is, its bytes, and what the run must say about it. */
export interface BadInput {
  /** Name of the case, as a person would describe it. */
  readonly name: string;
  /** Path inside the dropped folder (keys are `incoming/<pipeline>/drop/<path>`). */
  readonly path: string;
  readonly bytes: Uint8Array;
  /** Rejects the file must produce: line (0 for the whole file) and a fragment of the one-line reason. */
  readonly rejects: readonly { readonly line: number; readonly reason: string }[];
  /** Doc ids of the good records in the same file, which must all be embedded. */
  readonly good: readonly string[];
  /** Instead of `rejects`: every line is rejected (binary data cut at its newline bytes) with one of these reasons. */
  readonly everyLine?: RegExp;
  /**
   * Instead of `rejects` and `good`: a stream cut short. One reject, at the first record
   * that could not be read; every record before it (`<prefix><n>` for n from 0) embedded.
   */
  readonly cutShort?: { readonly prefix: string; readonly reason: string };
}

const utf8 = (text: string) => new TextEncoder().encode(text);
const lines = (...items: readonly unknown[]) =>
  utf8(`${items.map((item) => (typeof item === 'string' ? item : JSON.stringify(item))).join('\n')}\n`);
const doc = (id: string, text = `the ${id} document, which is fine and readable`) => ({ id, text });
const concat = (...parts: readonly Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
};

/** The limit the bad-input pipeline sets (`input.maxRecordBytes`), small enough for a test. */
export const MAX_RECORD_BYTES = 4096;

/** A minimal PNG: signature, IHDR, IDAT and IEND chunks (the bytes of a 1x1 image). */
const PNG = Uint8Array.from(
  Buffer.from(
    '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201' +
      '5e1c8a0d0000000049454e44ae426082',
    'hex',
  ),
);

/**
 * At least 25 distinct bad inputs, each beside good records where the format allows,
 * so a test can check that each one gets its reason and nothing else is lost.
 */
export function badInputs(): BadInput[] {
  const gzipped = gzipSync(lines(doc('gz-1'), doc('gz-2'), doc('gz-3'), doc('gz-4'), doc('gz-5')));
  return [
    {
      name: 'UTF-16 file (with its byte order mark) named .jsonl',
      path: 'encodings/utf16.jsonl',
      bytes: Uint8Array.from(
        Buffer.from(
          `\ufeff${JSON.stringify(doc('utf16-a'))}\n${JSON.stringify(doc('utf16-b'))}\n`,
          'utf16le',
        ),
      ),
      rejects: [],
      everyLine: /^(invalid UTF-8|malformed JSON: .+)$/,
      good: [],
    },
    {
      name: 'Latin-1 bytes in one record',
      path: 'encodings/latin1.jsonl',
      bytes: concat(
        lines(doc('latin-ok-1')),
        Uint8Array.from(Buffer.from('{"id":"latin-bad","text":"caf\u00e9 cr\u00e8me"}\n', 'latin1')),
        lines(doc('latin-ok-2')),
      ),
      rejects: [{ line: 2, reason: 'invalid UTF-8' }],
      good: ['latin-ok-1', 'latin-ok-2'],
    },
    {
      name: 'invalid UTF-8 sequence (a lone continuation byte)',
      path: 'encodings/invalid-utf8.jsonl',
      bytes: concat(
        utf8('{"id":"bad-seq","text":"a \u00ff'),
        Uint8Array.of(0x80, 0xc3, 0x28),
        utf8('"}\n'),
        lines(doc('seq-ok')),
      ),
      rejects: [{ line: 1, reason: 'invalid UTF-8' }],
      good: ['seq-ok'],
    },
    {
      name: 'truncated JSON: the last line is cut in the middle of an object',
      path: 'truncated/cut.jsonl',
      bytes: utf8(`${JSON.stringify(doc('cut-ok'))}\n{"id":"cut-short","text":"the upload stopp`),
      rejects: [{ line: 2, reason: 'malformed JSON' }],
      good: ['cut-ok'],
    },
    {
      name: 'truncated gzip: the stream stops halfway',
      path: 'truncated/half.jsonl.gz',
      bytes: gzipped.subarray(0, Math.floor(gzipped.byteLength * 0.6)),
      rejects: [{ line: 1, reason: 'corrupt or truncated gzip data' }],
      good: [],
    },
    {
      name: 'a .gz file that is not gzip at all',
      path: 'truncated/not-gzip.jsonl.gz',
      bytes: lines(doc('never-read')),
      rejects: [{ line: 1, reason: 'corrupt or truncated gzip data' }],
      good: [],
    },
    {
      name: 'a giant line over maxRecordBytes',
      path: 'limits/giant.jsonl',
      bytes: lines(doc('giant-before'), doc('giant', 'x '.repeat(MAX_RECORD_BYTES)), doc('giant-after')),
      rejects: [{ line: 2, reason: `over the limit of ${MAX_RECORD_BYTES} bytes` }],
      good: ['giant-before', 'giant-after'],
    },
    {
      name: 'a plain-text document over maxRecordBytes',
      path: 'limits/huge.txt',
      bytes: utf8('word '.repeat(MAX_RECORD_BYTES)),
      rejects: [
        {
          line: 1,
          reason: `document is ${5 * MAX_RECORD_BYTES} bytes, over the limit of ${MAX_RECORD_BYTES} bytes`,
        },
      ],
      good: [],
    },
    {
      name: 'wrong type: text is a number',
      path: 'types/text-number.jsonl',
      bytes: lines({ id: 'num', text: 42 }, doc('types-ok-1')),
      rejects: [{ line: 1, reason: 'text field "text" is not a string' }],
      good: ['types-ok-1'],
    },
    {
      name: 'wrong type: text is an array of strings',
      path: 'types/text-array.jsonl',
      bytes: lines(doc('types-ok-5'), { id: 'arr', text: ['two', 'parts'] }),
      rejects: [{ line: 2, reason: 'text field "text" is not a string' }],
      good: ['types-ok-5'],
    },
    {
      name: 'wrong type: id is an object',
      path: 'types/id-object.jsonl',
      bytes: lines({ id: { a: 1 }, text: 'an object id' }, doc('types-ok-2')),
      rejects: [{ line: 1, reason: 'id field "id" must be a string or a number' }],
      good: ['types-ok-2'],
    },
    {
      name: 'wrong type: lines that are an array, null and a boolean',
      path: 'types/not-objects.jsonl',
      bytes: lines('[1, 2, 3]', 'null', doc('types-ok-3'), 'true'),
      rejects: [
        { line: 1, reason: 'not a JSON object (got array)' },
        { line: 2, reason: 'not a JSON object (got null)' },
        { line: 4, reason: 'not a JSON object (got boolean)' },
      ],
      good: ['types-ok-3'],
    },
    {
      name: 'missing and empty text fields',
      path: 'types/no-text.jsonl',
      bytes: lines(
        { id: 'no-text', title: 'a title only' },
        { id: 'blank-text', text: ' \t ' },
        doc('types-ok-4'),
      ),
      rejects: [
        { line: 1, reason: 'missing text field "text"' },
        { line: 2, reason: 'text field "text" is empty' },
      ],
      good: ['types-ok-4'],
    },
    {
      name: 'an empty file',
      path: 'empty/zero.jsonl',
      bytes: new Uint8Array(0),
      rejects: [{ line: 0, reason: 'empty file: no records' }],
      good: [],
    },
    {
      name: 'a whitespace-only JSONL file',
      path: 'empty/blank.jsonl',
      bytes: utf8('  \n\n\t\n   \n'),
      rejects: [{ line: 0, reason: 'empty file: no records' }],
      good: [],
    },
    {
      name: 'a whitespace-only text document',
      path: 'empty/blank.txt',
      bytes: utf8(' \n\t\n'),
      rejects: [{ line: 1, reason: 'empty document' }],
      good: [],
    },
    {
      name: 'a PNG image named .jsonl',
      path: 'binary/picture.jsonl',
      bytes: PNG,
      rejects: [],
      everyLine: /^(invalid UTF-8|malformed JSON: .+)$/,
      good: [],
    },
    {
      name: 'a key with spaces, a plus, a percent sign and non-ASCII letters',
      path: 'keys/q3 report + 100% café 東京.jsonl',
      bytes: lines(doc('key-ok-1'), '{oops', doc('key-ok-2')),
      rejects: [{ line: 2, reason: 'malformed JSON' }],
      good: ['key-ok-1', 'key-ok-2'],
    },
    {
      name: 'a key that looks URL-encoded',
      path: 'keys/already%20encoded%2Bplus.jsonl',
      bytes: lines(doc('enc-ok'), '"a string"'),
      rejects: [{ line: 2, reason: 'not a JSON object (got string)' }],
      good: ['enc-ok'],
    },
    {
      name: 'a CSV with ragged rows',
      path: 'csv/ragged.csv',
      bytes: utf8(
        'id,text,title\ncsv-ok-1,fine text,t1\ncsv-short,too few\ncsv-long,one,two,three\ncsv-ok-2,more fine text,t2\n',
      ),
      rejects: [
        { line: 3, reason: 'CSV row has 2 fields, the header has 3' },
        { line: 4, reason: 'CSV row has 4 fields, the header has 3' },
      ],
      good: ['csv-ok-1', 'csv-ok-2'],
    },
    {
      name: 'a CSV whose last quote is never closed',
      path: 'csv/unterminated.csv',
      bytes: utf8('id,text\ncsv-q-ok,"a quoted, fine field"\ncsv-q-bad,"this quote never\ncloses\n'),
      rejects: [{ line: 3, reason: 'CSV record ends inside a quoted field' }],
      good: ['csv-q-ok'],
    },
    {
      name: 'a CSV with only a header',
      path: 'csv/header-only.csv',
      bytes: utf8('id,text,title\n'),
      rejects: [{ line: 0, reason: 'empty file: no records' }],
      good: [],
    },
    {
      name: 'a CSV without the text column',
      path: 'csv/no-text-column.csv',
      bytes: utf8('id,title\ncsv-nt-1,only a title\ncsv-nt-2,another title\n'),
      rejects: [
        { line: 2, reason: 'missing text field "text"' },
        { line: 3, reason: 'missing text field "text"' },
      ],
      good: [],
    },
    {
      name: 'a Parquet file that is not Parquet',
      path: 'parquet/fake.parquet',
      bytes: lines(doc('not-parquet')),
      rejects: [{ line: 0, reason: 'not a readable Parquet file' }],
      good: [],
    },
    {
      name: 'gzip-compressed Parquet',
      path: 'parquet/zipped.parquet.gz',
      bytes: gzipSync(Buffer.from('PAR1 not really')),
      rejects: [{ line: 0, reason: 'gzip-compressed Parquet is not supported' }],
      good: [],
    },
    {
      name: 'a JSON document that is not one object per line',
      path: 'types/pretty.json',
      bytes: utf8(`${JSON.stringify({ id: 'pretty', text: 'pretty printed' }, null, 2)}\n`),
      rejects: [
        { line: 1, reason: 'malformed JSON' },
        { line: 2, reason: 'malformed JSON' },
        { line: 3, reason: 'malformed JSON' },
        { line: 4, reason: 'malformed JSON' },
      ],
      good: [],
    },
    {
      name: 'a NUL byte and control characters inside a record (fine) beside a bare NUL line',
      path: 'binary/controls.jsonl',
      bytes: concat(lines({ id: 'ctl-ok', text: 'tab\there, bell\u0007 there' }), Uint8Array.of(0, 0, 0x0a)),
      rejects: [{ line: 2, reason: 'malformed JSON' }],
      good: ['ctl-ok'],
    },
    {
      name: 'a gzip file whose data is cut after some records (the ones before are kept)',
      path: 'truncated/partial.jsonl.gz',
      bytes: (() => {
        const many = gzipSync(
          lines(
            ...Array.from({ length: 400 }, (_, i) =>
              doc(`pgz-${i}`, `record ${i} ${'filler words '.repeat(20)}`),
            ),
          ),
        );
        return many.subarray(0, many.byteLength - 12);
      })(),
      rejects: [],
      cutShort: { prefix: 'pgz-', reason: 'corrupt or truncated gzip data: unexpected end of file' },
      good: [],
    },
  ];
}
