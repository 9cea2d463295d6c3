import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { findRecordStarts } from '../../shared/plan/record-starts.ts';
import { restageGzip } from '../../shared/plan/restage-gzip.ts';
import type { SourceSlice } from '../../shared/readers/source-records.ts';
import { pipelineConfig } from '../core/factories.ts';
import { FIELDS, readSlices, wholeSlice } from './factories.ts';

const fields = { ...FIELDS, maxRecordBytes: 60 };
const config = pipelineConfig({ input: { maxRecordBytes: 60 } });

/** JSONL lines: documents with and without ids, blank lines, broken lines, multibyte text. */
const jsonlFile = fc
  .array(
    fc.oneof(
      fc
        .record({ id: fc.string({ maxLength: 6 }), text: fc.string({ maxLength: 40 }) })
        .map((r) => JSON.stringify(r)),
      fc.string({ maxLength: 30 }).map((text) => JSON.stringify({ text: `é ${text}` })),
      fc.constantFrom('', '{"broken', '[1,2]', '{"text": 5}'),
      fc.string({ maxLength: 90 }).map((s) => JSON.stringify({ text: s.repeat(2) })),
    ),
    { minLength: 1, maxLength: 40 },
  )
  .chain((lines) => fc.boolean().map((trailing) => lines.join('\n') + (trailing ? '\n' : '')));

const csvField = (quoted: boolean) =>
  quoted
    ? fc
        .array(fc.constantFrom('a', 'b', ' ', ',', '\n', '"', 'é'), { maxLength: 12 })
        .map((chars) => `"${chars.join('').replace(/"/g, '""')}"`)
    : fc.array(fc.constantFrom('a', 'b', ' ', 'é', '1'), { maxLength: 12 }).map((chars) => chars.join(''));

/** A CSV with a header; `quoted` rows may hold commas, quotes and newlines inside quotes. */
const csvFile = (quoted: boolean) =>
  fc
    .array(fc.tuple(csvField(false), csvField(quoted), fc.boolean()), { minLength: 1, maxLength: 30 })
    .chain((rows) =>
      fc.tuple(fc.boolean(), fc.boolean()).map(([crlf, bom]) => {
        const eol = crlf ? '\r\n' : '\n';
        const body = rows.map(([id, text, extra]) => (extra ? `${id},${text},x` : `${id},${text}`)).join(eol);
        return `${bom ? '\ufeff' : ''}id,text${eol}${body}${eol}`;
      }),
    );

/** Any bytes a CSV reader could meet: stray quotes, unterminated fields, CRs. */
const messyCsv = fc
  .array(fc.constantFrom('a', 'é', '"', ',', '\n', '\r', ' ', '""', 'id,text\n'), { maxLength: 120 })
  .map((parts) => `id,text\n${parts.join('')}`);

const cutPoints = fc.array(fc.nat(), { maxLength: 8 });

async function unionOfCuts(
  text: string,
  format: 'jsonl' | 'csv',
  rawCuts: number[],
  chunkSize: number,
  maybeQuoted: boolean,
) {
  const store = new MemoryObjectStore(chunkSize);
  const key = `in.${format}`;
  await store.put(key, text);
  const whole = await wholeSlice(store, key, format);
  const size = whole.byteEnd;
  const wanted = rawCuts.map((c) => c % (size + 1));
  const found = await findRecordStarts(store, { key, size, format }, wanted, { maybeQuoted, segments: 3 });
  const starts = [{ offset: 0, line: 1 }, ...found.starts];
  const slices: SourceSlice[] = starts.map((start, i) => ({
    ...whole,
    byteStart: start.offset,
    byteEnd: starts[i + 1]?.offset ?? size,
    firstLine: start.line,
    ...(format === 'csv' && start.offset > 0 ? { csvHeader: found.csvHeader! } : {}),
  }));
  return {
    union: await readSlices(store, slices, fields),
    expected: await readSlices(store, [whole], fields),
    method: found.method,
  };
}

describe('record-aligned splitting', () => {
  it('JSONL: for random files and random cuts, the units read every record exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(
        jsonlFile,
        cutPoints,
        fc.integer({ min: 1, max: 13 }),
        async (text, cuts, chunkSize) => {
          const { union, expected } = await unionOfCuts(text, 'jsonl', cuts, chunkSize, false);
          expect(union).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('CSV without quoted newlines: cut at line starts counted in parallel', async () => {
    await fc.assert(
      fc.asyncProperty(
        csvFile(false),
        cutPoints,
        fc.integer({ min: 1, max: 13 }),
        async (text, cuts, chunkSize) => {
          const { union, expected, method } = await unionOfCuts(text, 'csv', cuts, chunkSize, false);
          expect(union).toEqual(expected);
          expect(method).toBe('parallel-lines');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('CSV with quoted newlines: cut only where a scan by the reader’s quote rules proves a record starts', async () => {
    await fc.assert(
      fc.asyncProperty(
        csvFile(true),
        cutPoints,
        fc.integer({ min: 1, max: 13 }),
        fc.boolean(),
        async (text, cuts, chunkSize, maybeQuoted) => {
          const { union, expected } = await unionOfCuts(text, 'csv', cuts, chunkSize, maybeQuoted);
          expect(union).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('CSV of any bytes (stray and unterminated quotes): still never a record lost or read twice', async () => {
    await fc.assert(
      fc.asyncProperty(messyCsv, cutPoints, fc.integer({ min: 1, max: 7 }), async (text, cuts, chunkSize) => {
        const { union, expected } = await unionOfCuts(text, 'csv', cuts, chunkSize, false);
        expect(union).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe('gzip re-staging', () => {
  const counter = new EstimatingTokenCounter();

  async function restaged(text: string, format: 'jsonl' | 'csv', partCost: number, truncateTo?: number) {
    const store = new MemoryObjectStore(11);
    const key = `in.${format}.gz`;
    const gz = gzipSync(text);
    await store.put(
      key,
      truncateTo === undefined ? gz : gz.subarray(0, Math.max(10, Math.floor(gz.length * truncateTo))),
    );
    const whole = await wholeSlice(store, key, format, 'gzip');
    const result = await restageGzip(
      store,
      config,
      { key, format },
      {
        runId: 'r-20260101T000000Z-000000',
        partCost,
        tokensPerByte: 0.25,
        counter,
        maxPartBytes: 200,
        sampleEveryBytes: 64,
      },
    );
    const slices: SourceSlice[] = result.parts.map(({ estCost: _, sourceKey, ...part }) => ({
      ...part,
      key: sourceKey,
      compression: 'gzip',
    }));
    return {
      result,
      union: await readSlices(store, slices, fields),
      expected: await readSlices(store, [whole], fields),
    };
  }

  it('JSONL: the parts hold every record exactly once, with the source key, lines and offsets', async () => {
    await fc.assert(
      fc.asyncProperty(jsonlFile, fc.integer({ min: 1, max: 60 }), async (text, partCost) => {
        const { union, expected, result } = await restaged(text, 'jsonl', partCost);
        expect(union).toEqual(expected);
        result.parts.forEach((part, i) => {
          expect(part.byteStart).toBe(i === 0 ? 0 : result.parts[i - 1]!.byteEnd);
        });
      }),
      { numRuns: 150 },
    );
  });

  it('CSV with quoted newlines: parts end only at record ends', async () => {
    await fc.assert(
      fc.asyncProperty(csvFile(true), fc.integer({ min: 1, max: 60 }), async (text, partCost) => {
        const { union, expected } = await restaged(text, 'csv', partCost);
        expect(union).toEqual(expected);
      }),
      { numRuns: 150 },
    );
  });

  it('a truncated stream: the records before the fault, then the fault once, as a direct read reports them', async () => {
    await fc.assert(
      fc.asyncProperty(
        jsonlFile.filter((t) => t.length > 200),
        fc.integer({ min: 1, max: 60 }),
        fc.double({ min: 0.2, max: 0.95, noNaN: true }),
        async (text, partCost, keep) => {
          const { union, expected, result } = await restaged(text, 'jsonl', partCost, keep);
          if (result.faultBeforeFirstRecord) {
            expect(result.parts).toEqual([]);
            return;
          }
          expect(union).toEqual(expected);
          expect(union.at(-1)).toMatchObject({
            kind: 'reject',
            reason: expect.stringMatching(/^corrupt or truncated gzip data/),
          });
        },
      ),
      { numRuns: 150 },
    );
  });
});
