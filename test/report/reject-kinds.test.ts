import { describe, expect, it } from 'vitest';
import { countRejectKinds, rejectKindOf } from '../../shared/report/reject-kinds.ts';

describe('rejectKindOf', () => {
  it('takes the per-record details out of a reason and keeps the rule and field names', () => {
    expect(rejectKindOf('malformed JSON: Unterminated string in JSON at position 51')).toBe('malformed JSON');
    expect(rejectKindOf('duplicate id "doc-0001": kept the record at incoming/docs/a.jsonl line 3')).toBe(
      'duplicate id "…"',
    );
    expect(rejectKindOf('record is 2000311 bytes, over the limit of 1048576 bytes')).toBe(
      'record is N bytes, over the limit of N bytes',
    );
    expect(rejectKindOf('text field "text" is empty')).toBe('text field "text" is empty');
    expect(rejectKindOf('id field "id" must be a string or a number')).toBe(
      'id field "id" must be a string or a number',
    );
  });
});

describe('countRejectKinds', () => {
  it('counts by kind, most frequent first, each with its first reason as the example', () => {
    expect(
      countRejectKinds([
        'missing text field "text"',
        'duplicate id "a": kept the record at x line 1',
        'duplicate id "b": kept the record at x line 2',
        'malformed JSON: Unexpected end',
      ]),
    ).toEqual([
      { kind: 'duplicate id "…"', count: 2, example: 'duplicate id "a": kept the record at x line 1' },
      { kind: 'malformed JSON', count: 1, example: 'malformed JSON: Unexpected end' },
      { kind: 'missing text field "text"', count: 1, example: 'missing text field "text"' },
    ]);
  });
});
