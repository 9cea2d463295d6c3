import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parquetFile, words } from '../ingest/factories.ts';
import { sluice } from '../support/cli.ts';

/**
 * `sluice cost` over inputs of known records, each document several chunks long: the chunk
 * index's line prices one entry per record (counted, or sampled from the planner's sample),
 * not one per chunk.
 */
describe('sluice cost counts the documents the chunk index keeps', () => {
  let dir: string;
  /** A document of about 1,500 tokens: 6 chunks of the docs pipeline’s 256 (32 overlap). */
  const doc = (i: number) => ({ id: `d${String(i).padStart(5, '0')}`, text: words(i + 1, 700) });
  const jsonl = (n: number, from = 0) =>
    `${Array.from({ length: n }, (_, i) => JSON.stringify(doc(from + i))).join('\n')}\n`;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-cost-docs-'));
    await writeFile(path.join(dir, 'small.jsonl'), jsonl(40));
    // Over 4 sample windows of 64 KiB: priced, and counted, from its windows.
    await writeFile(path.join(dir, 'big.jsonl'), jsonl(150, 1000));
    const parquet = path.join(dir, 'parquet');
    await mkdir(parquet);
    const rows = Array.from({ length: 37 }, (_, i) => doc(2000 + i));
    await writeFile(
      path.join(parquet, 'docs.parquet'),
      parquetFile({ id: rows.map((r) => r.id), text: rows.map((r) => r.text) }, 16),
    );
    await writeFile(path.join(dir, 'small.jsonl.gz'), gzipSync(jsonl(12, 3000)));
    // Not gzip: the planner's sample finds no record and falls back to bytes per token.
    await writeFile(path.join(dir, 'broken.jsonl.gz'), 'not gzip at all\n'.repeat(100));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const cost = async (input: string, ...flags: string[]) => {
    const run = await sluice('cost', path.join(dir, input), '--pipeline', 'docs', '--json', ...flags);
    expect(run.code).toBe(0);
    return run.json();
  };
  const indexLine = async (input: string) =>
    (await sluice('cost', path.join(dir, input), '--pipeline', 'docs')).out.find((l) =>
      l.startsWith('  index'),
    );

  it('prices a re-run of the same text: the index only (lookups found, 1 entry in 7 refreshed, vectors read back), no GPU', async () => {
    const report = await cost('small.jsonl');
    expect(report.unchangedRerun).toMatchObject({
      endpointUsd: 0,
      readUnits: 20, // 40 entries found, each under 4 KB: half a read unit
      rewrittenDocuments: 6, // ceil(40 / 7)
      writeUnits: 6,
      heldPartDays: 8,
    });
    expect(report.unchangedRerun.s3Gets).toBeGreaterThan(0);
    expect(report.unchangedRerun.indexUsd).toBeLessThan(report.chunkIndex.requestsUsd);
    const line = (await sluice('cost', path.join(dir, 'small.jsonl'), '--pipeline', 'docs')).out.find((l) =>
      l.startsWith('  re-run'),
    );
    expect(line).toMatch(
      /^ {2}re-run {4}\$[\d.]+ for the index when the same text comes again, and no GPU deployed \(copies on demand\): 20 read \+ 6 write units/,
    );
  });

  it('a file read whole: one entry, one write unit, per record, however many chunks each has', async () => {
    const report = await cost('small.jsonl');
    expect(report.chunkIndex.chunks).toBeGreaterThanOrEqual(3 * 40);
    expect(report.chunkIndex).toMatchObject({
      documents: 40,
      documentsCounted: true,
      documentsFrom: 'exact',
      writeUnits: 40,
      readUnits: 20,
    });
    expect(await indexLine('small.jsonl')).toMatch(
      /^ {2}index {5}\$[\d.]+ of the requests: 40 document entries \(exact: every record counted\), 20 read \+ 40 write units$/,
    );
  });

  it('a sampled file: its records scaled from the sample’s records per byte, and said to be sampled', async () => {
    const report = await cost('big.jsonl');
    expect(report.chunkIndex.chunks).toBeGreaterThanOrEqual(3 * 150);
    expect(report.chunkIndex.documentsFrom).toBe('sampled');
    expect(report.chunkIndex.documents).toBeGreaterThanOrEqual(140);
    expect(report.chunkIndex.documents).toBeLessThanOrEqual(160);
    expect(report.chunkIndex.writeUnits).toBe(report.chunkIndex.documents);
    expect(await indexLine('big.jsonl')).toContain('(sampled: records per byte of the planning sample)');
  });

  it('a folder holding Parquet: the footer’s exact row count', async () => {
    const report = await cost('parquet');
    expect(report.chunkIndex.chunks).toBeGreaterThanOrEqual(3 * 37);
    expect(report.chunkIndex).toMatchObject({ documents: 37, documentsFrom: 'exact', writeUnits: 37 });
  });

  it('a gzip file read whole counts its records; files together sum theirs, sampled if any one was', async () => {
    expect((await cost('small.jsonl.gz')).chunkIndex).toMatchObject({
      documents: 12,
      documentsFrom: 'exact',
    });
    const both = await sluice(
      'cost',
      path.join(dir, 'small.jsonl'),
      path.join(dir, 'small.jsonl.gz'),
      '--pipeline',
      'docs',
      '--json',
    );
    expect(both.json().chunkIndex).toMatchObject({ documents: 52, documentsFrom: 'exact', writeUnits: 52 });
  });

  it('a month of runs carries the per-document index in its requests', async () => {
    const report = await cost('small.jsonl', '--runs-per-month', '30');
    expect(report.perMonth.requests).toBeCloseTo(report.perRun.requests * 30, 5);
    expect(report.perRun.requests).toBeGreaterThanOrEqual(report.chunkIndex.requestsUsd);
    expect(report.chunkIndex.documents).toBe(40);
  });

  it('keeps the upper bound, one entry per chunk, when a file’s records could not be sampled', async () => {
    const report = await cost('broken.jsonl.gz');
    expect(report.chunkIndex).toMatchObject({ documentsCounted: false, documentsFrom: 'upper bound' });
    expect(report.chunkIndex.documents).toBe(report.chunkIndex.chunks);
    expect(await indexLine('broken.jsonl.gz')).toContain(
      '(one per chunk, an upper bound: documents not counted)',
    );
  });
});
