import { describe, expect, it } from 'vitest';
import { NewlineEnds, RecordScan, type ScanOptions } from '../../shared/readers/record-scanner.ts';

const options = (over: Partial<ScanOptions> = {}): ScanOptions => ({
  ends: new NewlineEnds(),
  streamOffset: 0,
  start: 0,
  end: 100,
  maxRecordBytes: 4,
  stripFinalCr: false,
  crCountsToLimit: false,
  ...over,
});

describe('the steps of a record scan', () => {
  it('skips the tail of the record the previous range owns, up to and past its newline', () => {
    const scan = new RecordScan(options({ streamOffset: 9, start: 10 }));
    expect(scan.skipping).toBe(true);
    const buf = Buffer.from('ail\nab\n');
    expect(scan.skipPartial(buf, 0)).toBe(4);
    expect(scan.skipping).toBe(false);
    scan.append(buf, 4, 6);
    expect(scan.endRecord(true)).toMatchObject({ offset: 13, line: 2, next: 16 });
  });

  it('keeps one byte past the limit of a long record but measures all of it, across buffers', () => {
    const scan = new RecordScan(options());
    scan.append(Buffer.from('abcd'), 0, 4);
    scan.append(Buffer.from('efgh\n'), 0, 4);
    expect(scan.endRecord(true)).toMatchObject({
      bytes: Buffer.from('abcde'),
      length: 8,
      truncated: true,
      next: 9,
    });
  });

  it('drops the CR before a newline; at the end of the source only when told to', () => {
    const scan = new RecordScan(options());
    scan.append(Buffer.from('ab\r\n'), 0, 3);
    expect(scan.endRecord(true).bytes.toString()).toBe('ab');
    scan.append(Buffer.from('cd\r'), 0, 3);
    expect(scan.hasLastRecord).toBe(true);
    expect(scan.endRecord(false)).toMatchObject({ length: 3, unterminated: false });
    const text = new RecordScan(options({ stripFinalCr: true }));
    text.append(Buffer.from('cd\r'), 0, 3);
    expect(text.endRecord(false).bytes.toString()).toBe('cd');
  });

  it('stops at the first record starting at or past the range end', () => {
    const scan = new RecordScan(options({ end: 3 }));
    scan.append(Buffer.from('ab\n'), 0, 2);
    scan.endRecord(true);
    expect([scan.pastRange, scan.hasLastRecord]).toEqual([true, false]);
  });
});
