import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { restageGzip } from '../../shared/plan/restage-gzip.ts';
import { estimateCosts } from '../../shared/plan/sample-cost.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { DECOMPRESSION_GRACE_BYTES } from '../../shared/readers/bounded-gunzip.ts';
import type { SourceSlice } from '../../shared/readers/source-records.ts';
import { pipelineConfig } from '../core/factories.ts';
import { FIELDS, readSlices, wholeSlice } from './factories.ts';

const RUN_ID = 'r-20260101T000000Z-000bmb';
const counter = new EstimatingTokenCounter();
const MAX = 60;
const config = pipelineConfig({ input: { maxRecordBytes: MAX } });
const fields = { ...FIELDS, maxRecordBytes: MAX };

/** A store that notes the size of every object written, to see what re-staging held. */
class PutSizes extends MemoryObjectStore {
  readonly puts: number[] = [];
  override async put(key: string, body: Uint8Array | string): Promise<void> {
    this.puts.push(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    await super.put(key, body);
  }
}

async function restage(store: ObjectStore, key: string, format: 'jsonl' | 'csv', options = {}) {
  const result = await restageGzip(
    store,
    { ...config, ...options },
    { key, format },
    { runId: RUN_ID, partCost: 40, tokensPerByte: 0.25, counter, maxPartBytes: 200, sampleEveryBytes: 64 },
  );
  const slices: SourceSlice[] = result.parts.map(({ estCost: _, sourceKey, ...part }) => ({
    ...part,
    key: sourceKey,
    compression: 'gzip',
  }));
  return { result, slices };
}

/** JSONL lines, many of them far over the record limit. */
const bigLinesFile = fc
  .array(
    fc.oneof(
      fc
        .record({ id: fc.string({ maxLength: 4 }), text: fc.string({ maxLength: 30 }) })
        .map((r) => JSON.stringify(r)),
      fc.integer({ min: MAX - 20, max: 2_000 }).map((n) => JSON.stringify({ text: 'x'.repeat(n) })),
      fc.constantFrom('', '{"broken'),
    ),
    { minLength: 1, maxLength: 30 },
  )
  .chain((lines) =>
    fc
      .tuple(fc.boolean(), fc.boolean())
      .map(([trailing, crlf]) => lines.join(crlf ? '\r\n' : '\n') + (trailing ? '\n' : '')),
  );

describe('gzip re-staging of records over input.maxRecordBytes', () => {
  it('reports every record, oversized ones as the same rejects a direct read gives, in source order', async () => {
    await fc.assert(
      fc.asyncProperty(bigLinesFile, async (text) => {
        const store = new PutSizes(13);
        await store.put('in.jsonl.gz', gzipSync(text));
        const { slices } = await restage(store, 'in.jsonl.gz', 'jsonl');
        const whole = await wholeSlice(store, 'in.jsonl.gz', 'jsonl', 'gzip');

        expect(await readSlices(store, slices, fields)).toEqual(await readSlices(store, [whole], fields));
        // No staged part holds an oversized record: each is at most a part plus one record's limit.
        for (const size of store.puts.slice(1)) expect(size).toBeLessThanOrEqual(200 + MAX + 2);
      }),
      { numRuns: 150 },
    );
  });

  it('CSV: oversized records (quoted newlines included) come out as a direct read gives them', async () => {
    const field = fc.oneof(
      fc.array(fc.constantFrom('a', 'b', ' ', ','), { maxLength: 10 }).map((c) => `"${c.join('')}"`),
      fc.integer({ min: MAX - 10, max: 600 }).map((n) => `"${'line\nof text, '.repeat(Math.ceil(n / 14))}"`),
    );
    const csv = fc
      .array(
        fc.tuple(
          fc.string({ maxLength: 4 }).map((id) => id.replace(/[",\r\n]/g, '')),
          field,
        ),
        {
          minLength: 1,
          maxLength: 25,
        },
      )
      .map((rows) => `id,text\n${rows.map(([id, text]) => `${id},${text}`).join('\n')}\n`);
    await fc.assert(
      fc.asyncProperty(csv, async (text) => {
        const store = new MemoryObjectStore(13);
        await store.put('in.csv.gz', gzipSync(text));
        const { slices } = await restage(store, 'in.csv.gz', 'csv');
        const whole = await wholeSlice(store, 'in.csv.gz', 'csv', 'gzip');

        expect(await readSlices(store, slices, fields)).toEqual(await readSlices(store, [whole], fields));
      }),
      { numRuns: 100 },
    );
  });

  it('never copies a record of 8 MiB into a part: it is measured and travels as one reject', async () => {
    const store = new PutSizes();
    const line = JSON.stringify({ id: 'big', text: 'a'.repeat(8 * 1024 * 1024) });
    await store.put(
      'in.jsonl.gz',
      gzipSync(`{"id":"a","text":"before"}\n${line}\n{"id":"b","text":"after"}\n`),
    );

    const { result, slices } = await restage(store, 'in.jsonl.gz', 'jsonl', {
      input: { ...config.input, maxDecompressionRatio: 100_000 },
    });

    // Before, the part holding the record was written whole: 8 MiB.
    expect(Math.max(...store.puts.slice(1))).toBeLessThan(1024);
    expect(result.bytesOut).toBe(
      Buffer.byteLength('{"id":"a","text":"before"}\n{"id":"b","text":"after"}\n'),
    );
    const records = await readSlices(store, slices, fields);
    expect(records.map((r) => (r.kind === 'reject' ? r.reason : r.kind))).toEqual([
      'doc',
      `record is ${line.length} bytes, over the limit of ${MAX} bytes`,
      'doc',
    ]);
    expect(records[1]).toMatchObject({ line: 2, byteOffset: 27 });
  });

  it('carries at most 32 rejects in one part descriptor; more open another part', async () => {
    const store = new MemoryObjectStore();
    const lines = Array.from({ length: 70 }, (_, i) =>
      JSON.stringify({ id: `d${i}`, text: 'y'.repeat(100) }),
    );
    await store.put('in.jsonl.gz', gzipSync(`${lines.join('\n')}\n`));

    const { result, slices } = await restage(store, 'in.jsonl.gz', 'jsonl');

    expect(result.parts.map((p) => p.staged.rejects?.length ?? 0)).toEqual([32, 32, 6]);
    expect((await readSlices(store, slices, fields)).map((r) => r.line)).toEqual(lines.map((_, i) => i + 1));
  });
});

describe('decompression ratio limit (input.maxDecompressionRatio)', () => {
  /** 64 MiB of NUL bytes: about 64 KiB of gzip, a ratio of about 1,000. */
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));

  it('stops reading a gzip bomb past its first MiB: one reject, the rest never decompressed', async () => {
    const store = new MemoryObjectStore();
    await store.put('bomb.jsonl.gz', bomb);
    const whole = await wholeSlice(store, 'bomb.jsonl.gz', 'jsonl', 'gzip');

    const records = await readSlices(store, [whole], { ...fields, maxDecompressionRatio: 100 });

    expect(records).toEqual([
      {
        kind: 'reject',
        reason: expect.stringMatching(
          /^gzip data expands more than 100 times \(\d+ bytes from \d+\): read no further \(input\.maxDecompressionRatio\)$/,
        ),
        line: 1,
        byteOffset: 0,
        excerpt: '',
      },
    ]);
  });

  it('keeps the records before the point where a stream turns into a bomb', async () => {
    const store = new MemoryObjectStore();
    const good = Array.from({ length: 2_000 }, (_, i) =>
      JSON.stringify({ id: `d${i}`, text: `${i} ${Math.random()}` }),
    );
    const text = Buffer.concat([Buffer.from(`${good.join('\n')}\n`), Buffer.alloc(32 * 1024 * 1024, 0x20)]);
    await store.put('tail.jsonl.gz', gzipSync(text));
    const whole = await wholeSlice(store, 'tail.jsonl.gz', 'jsonl', 'gzip');

    const records = await readSlices(store, [whole], { ...fields, maxRecordBytes: 1024 * 1024 });

    expect(records.filter((r) => r.kind === 'doc')).toHaveLength(2_000);
    expect(records.at(-1)).toMatchObject({
      kind: 'reject',
      reason: expect.stringContaining('expands more than 100 times'),
    });
  });

  it('reads a very repetitive file under the limit, and any small file whatever its ratio', async () => {
    const store = new MemoryObjectStore();
    const repetitive = `${Array.from({ length: 40_000 }, () => '{"id":"same","text":"the same line again"}').join('\n')}\n`;
    expect(repetitive.length).toBeGreaterThan(DECOMPRESSION_GRACE_BYTES);
    await store.put('rep.jsonl.gz', gzipSync(repetitive));
    await store.put('small.jsonl.gz', gzipSync(`${'{"text":"aaaa"}\n'.repeat(50_000)}`.slice(0, 900_000)));

    const rep = await readSlices(store, [await wholeSlice(store, 'rep.jsonl.gz', 'jsonl', 'gzip')], {
      ...fields,
      maxDecompressionRatio: 1_000,
    });
    const small = await readSlices(
      store,
      [await wholeSlice(store, 'small.jsonl.gz', 'jsonl', 'gzip')],
      fields,
    );

    expect(rep.filter((r) => r.kind === 'doc')).toHaveLength(40_000);
    expect(small.every((r) => r.kind !== 'reject' || !r.reason.includes('expands'))).toBe(true);
  });

  it('re-staging stops at the limit as the reader does, with the fault in the last part', async () => {
    const store = new PutSizes();
    await store.put('bomb.jsonl.gz', bomb);

    const { result, slices } = await restage(store, 'bomb.jsonl.gz', 'jsonl', {
      input: { ...config.input, maxRecordBytes: 1024 * 1024 * 1024 },
    });

    expect(store.puts.slice(1).every((size) => size === 0)).toBe(true);
    const records = await readSlices(store, slices, fields);
    expect(records).toHaveLength(result.faultBeforeFirstRecord ? 0 : 1);
  });

  it('plans a bomb from a sample of at most its ratio, not its expansion', async () => {
    const store = new MemoryObjectStore();
    await store.put('incoming/docs/bomb.jsonl.gz', bomb);

    const [estimate] = await estimateCosts(
      store,
      [{ key: 'incoming/docs/bomb.jsonl.gz', size: bomb.length, format: 'jsonl', compression: 'gzip' }],
      config,
      { counter },
    );

    // Priced as at most maxDecompressionRatio times its size: what the worker will read of it.
    expect(estimate!.estCost).toBeLessThanOrEqual(
      Math.ceil((bomb.length * 100) / config.planning.charsPerToken),
    );
  });
});

describe('binary text', () => {
  it('rejects a plain text document of NUL bytes instead of embedding it', async () => {
    const store = new MemoryObjectStore();
    await store.put('nul.txt', new Uint8Array(50_000));

    const records = await readSlices(store, [await wholeSlice(store, 'nul.txt', 'text')], {
      ...fields,
      maxRecordBytes: 1024 * 1024,
    });

    expect(records).toEqual([
      expect.objectContaining({
        kind: 'reject',
        reason: 'binary data (NUL bytes): not a text document',
        line: 1,
      }),
    ]);
  });

  it('rejects a JSONL or CSV text field holding NUL characters', async () => {
    const store = new MemoryObjectStore();
    await store.put('nul.jsonl', '{"id":"a","text":"fine"}\n{"id":"b","text":"bin\\u0000ary"}\n');
    await store.put('nul.csv', 'id,text\nc,"x\u0000y"\nd,ok\n');

    const jsonl = await readSlices(store, [await wholeSlice(store, 'nul.jsonl', 'jsonl')], fields);
    const csv = await readSlices(store, [await wholeSlice(store, 'nul.csv', 'csv')], fields);

    expect(jsonl.map((r) => (r.kind === 'reject' ? r.reason : r.kind))).toEqual([
      'doc',
      'text field "text" holds binary data (NUL bytes)',
    ]);
    expect(csv.map((r) => (r.kind === 'reject' ? r.reason : r.kind))).toEqual([
      'text field "text" holds binary data (NUL bytes)',
      'doc',
    ]);
  });
});
