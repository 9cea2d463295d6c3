import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { oversizeReject } from '../../shared/plan/restage-gzip.ts';
import { bytesOf, OpenPart } from '../../shared/plan/restage-part.ts';
import { RestageSampler, recordTokens } from '../../shared/plan/restage-sampler.ts';
import { pipelineConfig } from '../core/factories.ts';

const counter = new EstimatingTokenCounter();
const config = pipelineConfig({ input: { maxRecordBytes: 60 } });
const buf = (text: string) => Buffer.from(text);

describe('the part being re-staged', () => {
  it('copies any range of its chunks as one buffer would', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 6 }),
        fc.nat(40),
        fc.nat(40),
        (arrays, offset, count) => {
          const chunks = arrays.map((a) => Buffer.from(a));
          const whole = Buffer.concat(chunks);
          expect(bytesOf(chunks, offset, count)).toEqual(whole.subarray(offset, offset + count));
        },
      ),
    );
  });

  it('keeps the records before an oversized one, and starts the next part after what was written', () => {
    const part = new OpenPart();
    part.append(buf('{"a":1}\n'));
    part.endRecord();
    part.append(buf('{"b":'));
    part.append(buf('"long'));
    expect([part.bytes, part.recordEnd, part.openRecordBytes]).toEqual([18, 8, 10]);
    expect(part.bytesAt(part.recordEnd, 4).toString()).toBe('{"b"');
    part.truncate(part.recordEnd);
    expect(part.body(part.bytes).toString()).toBe('{"a":1}\n');
    part.advance(8, 2);
    expect([part.start, part.firstLine, part.bytes, part.recordEnd]).toEqual([8, 2, 0, 0]);
  });

  it('writes only the complete records when a fault cuts the last one', () => {
    const part = new OpenPart();
    part.append(buf('one\ntw'));
    part.append(buf('o\nthr'));
    part.recordEnd = 8;
    expect(part.body(part.recordEnd).toString()).toBe('one\ntwo\n');
  });
});

describe('the re-staging sampler', () => {
  it('prices the first record, then the first to start sampleEvery bytes after the last priced one', () => {
    const sampler = new RestageSampler(20, 60, 0.5);
    const priced: (string | undefined)[] = [];
    for (const record of ['{"t":"a"}\n', 'xxxxxxxxxxxxxxx\n', 'yyyyyyyyy\n', '{"t":"b"}\n']) {
      sampler.collect(buf(record));
      priced.push(sampler.endRecord(buf(record))?.bytes.toString());
    }
    expect(priced).toEqual(['{"t":"a"}', undefined, 'yyyyyyyyy', undefined]);
  });

  it('keeps the planner ratio until a record is priced, then the ratio of the file so far', () => {
    const sampler = new RestageSampler(20, 60, 0.5);
    expect(sampler.tokensPerByte).toBe(0.5);
    sampler.add(3, 10);
    sampler.add(1, 30);
    expect(sampler.tokensPerByte).toBe(0.1);
  });

  it('prices no oversized record, and the record after one', () => {
    const sampler = new RestageSampler(1000, 60, 0.5);
    sampler.collect(buf('big'));
    sampler.drop();
    expect(sampler.endRecord(buf('big\n'))).toBeUndefined();
    sampler.restart();
    sampler.collect(buf('next\n'));
    expect(sampler.endRecord(buf('next\n'))).toEqual({ bytes: buf('next'), length: 5 });
  });

  it('stops collecting past the record limit, so an oversized record is never held whole', () => {
    const sampler = new RestageSampler(10, 4, 0.5);
    for (const piece of ['abc', 'def', 'ghi']) sampler.collect(buf(piece));
    expect(sampler.endRecord(buf('ghi'))?.length).toBe(6);
  });
});

describe('record tokens', () => {
  it('prices a JSONL text field, and nothing for a record the worker would reject', () => {
    const tokens = recordTokens(
      buf('{"id":"1","text":"hello there world"}'),
      'jsonl',
      undefined,
      config,
      counter,
    );
    expect(tokens).toBeGreaterThan(0);
    expect(recordTokens(buf('{"broken'), 'jsonl', undefined, config, counter)).toBe(0);
    expect(recordTokens(buf('{"text":5}'), 'jsonl', undefined, config, counter)).toBe(0);
    expect(recordTokens(buf(`{"text":"${'x'.repeat(80)}"}`), 'jsonl', undefined, config, counter)).toBe(0);
  });

  it('prices the CSV column the header names, ignoring a trailing CR, and a row of the wrong width as 0', () => {
    const withCr = recordTokens(buf('1,hello there world\r'), 'csv', ['id', 'text'], config, counter);
    expect(withCr).toBe(recordTokens(buf('1,hello there world'), 'csv', ['id', 'text'], config, counter));
    expect(withCr).toBeGreaterThan(0);
    expect(recordTokens(buf('1,hello,extra'), 'csv', ['id', 'text'], config, counter)).toBe(0);
    expect(recordTokens(buf('1,hello'), 'csv', ['id', 'body'], config, counter)).toBe(0);
  });
});

describe('an oversized record', () => {
  it('is reported at its length without its newline, as the reader measures it', () => {
    const record = { byteOffset: 8, line: 2, length: 101, excerpt: 'xx', last: buf('tail\n') };
    expect(oversizeReject(record, 60)).toEqual({
      reason: expect.stringContaining('100'),
      line: 2,
      byteOffset: 8,
      excerpt: 'xx',
    });
    expect(oversizeReject({ ...record, last: buf('tail') }, 60).reason).toContain('101');
  });
});
