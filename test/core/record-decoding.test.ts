import { describe, expect, it } from 'vitest';
import { csvRecord, jsonlRecord, textDocument } from '../../shared/readers/source-records.ts';
import { FIELDS } from '../ingest/factories.ts';

const raw = (text: string, over: { truncated?: boolean; length?: number; line?: number } = {}) => {
  const bytes = Buffer.from(text);
  return {
    offset: 10,
    bytes,
    truncated: over.truncated ?? false,
    length: over.length ?? bytes.length,
    line: over.line ?? 2,
    unterminated: false,
  };
};
const reason = (record: unknown) => (record as { reason?: string } | undefined)?.reason;

describe('decoding one JSONL line', () => {
  it('reads an object as a document and names what is wrong with anything else', () => {
    expect(jsonlRecord(raw('{"id":"a","text":"hi"}'), 2, 'k', FIELDS)).toMatchObject({
      kind: 'doc',
      id: 'a',
    });
    expect(jsonlRecord(raw('   '), 2, 'k', FIELDS)).toBeUndefined();
    expect(reason(jsonlRecord(raw('[1]'), 2, 'k', FIELDS))).toBe('not a JSON object (got array)');
    expect(reason(jsonlRecord(raw('null'), 2, 'k', FIELDS))).toBe('not a JSON object (got null)');
    expect(reason(jsonlRecord(raw('{"broken'), 2, 'k', FIELDS))).toMatch(/^malformed JSON: /);
    expect(reason(jsonlRecord(raw('x', { truncated: true, length: 2000 }), 2, 'k', FIELDS))).toBe(
      'record is 2000 bytes, over the limit of 1024 bytes',
    );
  });
});

describe('decoding one CSV record', () => {
  it('takes the first record as the header, then rows of its width as documents', () => {
    expect(csvRecord(raw('id,text'), undefined, 'k', FIELDS)).toEqual({
      kind: 'header',
      header: ['id', 'text'],
    });
    expect(csvRecord(raw('a,"hello, you"'), ['id', 'text'], 'k', FIELDS)).toMatchObject({
      kind: 'doc',
      id: 'a',
      line: 2,
    });
    expect(csvRecord(raw(''), ['id', 'text'], 'k', FIELDS)).toBeUndefined();
    expect(reason(csvRecord(raw('a,b,c'), ['id', 'text'], 'k', FIELDS))).toBe(
      'CSV row has 3 fields, the header has 2',
    );
    expect(reason(csvRecord({ ...raw('"open'), unterminated: true }, ['id', 'text'], 'k', FIELDS))).toBe(
      'CSV record ends inside a quoted field',
    );
  });
});

describe('decoding a plain text file', () => {
  it('is one document named by its key, or one reject saying why not', () => {
    const text = (body: string, size = Buffer.byteLength(body)) =>
      textDocument(Buffer.from(body), size, 'notes/a.txt', FIELDS);
    expect(text('\ufeffhello')).toMatchObject({ kind: 'doc', id: 'notes/a.txt', text: 'hello', line: 1 });
    expect(reason(text('  \n'))).toBe('empty document');
    expect(reason(text('a\u0000b'))).toBe('binary data (NUL bytes): not a text document');
    expect(reason(text('abc', 5000))).toBe('document is 5000 bytes, over the limit of 1024 bytes');
  });
});
