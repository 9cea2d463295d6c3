import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { searchLocalChunks } from '../../cli/commands/search.ts';

const PIPELINE = 'p';
const MODEL = 'm';

/** A chunk row of `embeddings`: doc, index, vector; the rest is filled in. */
type Chunk = [docId: string, index: number, vector: number[]];

const sqlString = (value: string) => `'${value.replaceAll("'", "''")}'`;

/**
 * Three runs over two sources, written as the results layout holds them, where every chunk
 * that is NOT current points exactly the query's way ([1, 0, 0]) and the current ones do not:
 * a search that let one through would rank it first.
 */
describe('sluice search returns current chunks only, k of them when there are k', () => {
  let bucket: string;

  beforeAll(async () => {
    bucket = await mkdtemp(path.join(tmpdir(), 'sluice-nearest-'));
    const instance = await DuckDBInstance.create(':memory:');
    const db = await instance.connect();
    const partition = (table: string) =>
      path.join(bucket, 'results', table, `pipeline=${PIPELINE}`, 'run_date=2026-01-01');
    await mkdir(partition('embeddings'), { recursive: true });
    await mkdir(partition('sources'), { recursive: true });
    const writeChunks = async (runId: string, source: string, chunks: Chunk[], model = MODEL) => {
      const rows = chunks.map(
        ([doc, index, vector]) =>
          `(${sqlString(runId)}, ${sqlString(doc)}, ${sqlString(`${doc}#${index}`)}, ${index}::INTEGER, 0::INTEGER, 10::INTEGER, 3::INTEGER, 'sha', ${sqlString(model)}, [${vector.join(', ')}]::FLOAT[], ${sqlString(source)}, ${sqlString(`text of ${doc}#${index} in ${runId}`)}, NULL::VARCHAR)`,
      );
      const file = path.join(
        partition('embeddings'),
        `${runId}-${source.replace(/\W/g, '_')}-${model}.parquet`,
      );
      await db.run(
        `COPY (SELECT * FROM (VALUES ${rows.join(', ')}) t(run_id, doc_id, chunk_id, chunk_index, char_start, char_end, token_count, text_sha256, model, embedding, source_key, chunk_text, metadata)) TO ${sqlString(file)} (FORMAT parquet)`,
      );
    };
    const writeSources = async (
      runId: string,
      startedAt: string,
      verdicts: [source: string, status: string][],
    ) => {
      const rows = verdicts.map(
        ([source, status]) =>
          `(${sqlString(runId)}, ${sqlString(source)}, ${sqlString(status)}, ${sqlString(startedAt)}, 1::BIGINT, 1::BIGINT, 0::BIGINT, 0::BIGINT, NULL::VARCHAR)`,
      );
      await db.run(
        `COPY (SELECT * FROM (VALUES ${rows.join(', ')}) t(run_id, source_key, status, started_at, documents, chunks, removed_documents, removed_chunks, reason)) TO ${sqlString(path.join(partition('sources'), `${runId}.parquet`))} (FORMAT parquet)`,
      );
    };
    const [r1, r2, r3] = ['r-1', 'r-2', 'r-3'];
    // Run 1 reads a.jsonl and b.jsonl.
    await writeChunks(r1, 'a.jsonl', [
      ['edited', 0, [1, 0, 0]],
      ['edited', 1, [1, 0, 0]],
      ['kept', 0, [0.9, 0.1, 0]],
    ]);
    await writeChunks(r1, 'b.jsonl', [['in-deleted-file', 0, [1, 0, 0]]]);
    await writeSources(r1, '2026-01-01T00:00:01.000Z', [
      ['a.jsonl', 'read'],
      ['b.jsonl', 'read'],
    ]);
    // Run 2 reads a.jsonl again (one document edited, one carried) and finds b.jsonl deleted.
    await writeChunks(r2, 'a.jsonl', [
      ['edited', 0, [0, 1, 0]],
      ['edited', 1, [0, 0, 1]],
      ['kept', 0, [0.9, 0.1, 0]],
    ]);
    await writeSources(r2, '2026-01-01T00:00:02.000Z', [
      ['a.jsonl', 'read'],
      ['b.jsonl', 'deleted'],
    ]);
    // Run 3 wrote part of a.jsonl but skipped it (a unit failed): its chunks settle nothing.
    await writeChunks(r3, 'a.jsonl', [['edited', 0, [1, 0, 0]]]);
    await writeSources(r3, '2026-01-01T00:00:03.000Z', [['a.jsonl', 'skipped']]);
    // Another model's chunk of the current version: not comparable with the query.
    await writeChunks(r2, 'a.jsonl', [['edited', 2, [1, 0, 0]]], 'other-model');
    db.closeSync();
    instance.closeSync();
  }, 60_000);

  afterAll(async () => {
    if (bucket) await rm(bucket, { recursive: true, force: true });
  });

  const search = (k: number) =>
    searchLocalChunks(bucket, { pipeline: PIPELINE, model: MODEL, vector: [1, 0, 0], k });

  it('never returns an old version, a deleted file or a skipped run, though they score highest', async () => {
    const found = await search(10);
    expect(found.map((c) => [c.chunkId, c.runId])).toEqual([
      ['kept#0', 'r-2'],
      ['edited#0', 'r-2'],
      ['edited#1', 'r-2'],
    ]);
    expect(found[0]!.score).toBeCloseTo(0.9 / Math.hypot(0.9, 0.1), 6);
    expect(found[0]!.text).toBe('text of kept#0 in r-2');
    expect(found.map((c) => c.rank)).toEqual([1, 2, 3]);
  });

  it('returns exactly k current chunks when the corpus has k or more', async () => {
    expect((await search(1)).map((c) => c.chunkId)).toEqual(['kept#0']);
    expect((await search(2)).map((c) => c.chunkId)).toEqual(['kept#0', 'edited#0']);
    expect(await search(3)).toHaveLength(3);
  });
});
