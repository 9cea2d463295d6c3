import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects, readOffsetIndex } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddingRow, RejectRow } from '../../shared/domain/types.ts';
import {
  DEFAULT_PAGE_SIZE,
  encodePage,
  type FloatList,
  pageRows,
  writeFloatListColumn,
} from '../../shared/output/float-list-column.ts';
import {
  embeddingsParquet,
  embeddingsPartWriter,
  rejectsParquet,
  schemaOf,
  TABLE_COLUMNS,
} from '../../shared/output/parquet-tables.ts';
import { embeddingRow } from './factories.ts';

/** float32 values that a lossy copy would change: signed zeros, NaN, infinities, subnormals, extremes. */
const SPECIALS = [
  Number.NaN,
  -0,
  0,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  2 ** -149, // smallest subnormal
  -(2 ** -149),
  2 ** -126 - 2 ** -149, // largest subnormal
  2 ** -126, // smallest normal
  3.4028234663852886e38, // largest float32
  -3.4028234663852886e38,
  1 / 3,
];

/** A deterministic vector of `dim` floats, some of them special. */
function vector(seed: number, dim: number): Float32Array {
  const v = new Float32Array(dim);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < dim; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    v[i] = x % 17 === 0 ? (SPECIALS[x % SPECIALS.length] as number) : (x / 2 ** 31 - 1) * 10 ** ((x % 9) - 4);
  }
  return v;
}

const rowsOf = (count: number, dimOf: (i: number) => number) =>
  Array.from({ length: count }, (_, i) => embeddingRow(i, vector(i, dimOf(i))));

/**
 * The embeddings part as it was written before the specialised encoder: every row through
 * hyparquet-writer's generic `ParquetWriter.write`, the vectors as arrays.
 */
function genericEmbeddingsParquet(runId: string, rows: readonly EmbeddingRow[]): Uint8Array {
  const bytes = new ByteWriter();
  const writer = new ParquetWriter({ writer: bytes, schema: schemaOf(TABLE_COLUMNS.embeddings) as never });
  const plain = new Set(['chunk_id', 'text_sha256', 'embedding', 'chunk_text', 'metadata']);
  for (let start = 0; start < rows.length; start += 2048) {
    const records = rows.slice(start, start + 2048).map((r) => ({
      ...r,
      run_id: runId,
      metadata: Object.keys(r.metadata).length ? JSON.stringify(r.metadata) : null,
    })) as Record<string, unknown>[];
    const columnData = TABLE_COLUMNS.embeddings.map((col) => ({
      name: col.name,
      data: records.map((rec) => {
        const value = rec[col.name];
        if (col.type === 'float-list') return Array.from(value as ArrayLike<number>);
        return value ?? null;
      }),
      ...(plain.has(col.name) ? { encoding: 'PLAIN' as const, statistics: false } : {}),
    }));
    void writer.write({ columnData, rowGroupSize: records.length });
  }
  writer.finish();
  return new Uint8Array(bytes.getBuffer());
}

const readHyparquet = async (bytes: Uint8Array) =>
  (await parquetReadObjects({ file: bytes.slice().buffer })) as Record<string, unknown>[];

/** The bits of each value as float32, so that -0 differs from 0 and NaN equals NaN. */
const bits = (values: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(values).buffer));

function expectEmbeddings(decoded: readonly unknown[], rows: readonly EmbeddingRow[]): void {
  expect(decoded).toHaveLength(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const got = decoded[i] as number[];
    const want = rows[i]!.embedding;
    // One assertion per mismatching row keeps failures readable.
    if (got.length !== want.length || bits(got).join() !== bits(want).join()) {
      expect({ row: i, values: bits(got) }).toEqual({ row: i, values: bits(want) });
    }
  }
}

let dir: string;
let duck: DuckDBInstance;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'float-list-'));
  duck = await DuckDBInstance.create(':memory:');
});

afterAll(() => {
  duck.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
/** The `embedding` and `char_start` columns as DuckDB reads them, in row order. */
async function readDuckDb(bytes: Uint8Array): Promise<{ embeddings: number[][]; charStarts: number[] }> {
  const file = path.join(dir, `part-${files++}.parquet`);
  writeFileSync(file, bytes);
  const connection = await duck.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT char_start, embedding, len(embedding) AS n FROM read_parquet('${file}') ORDER BY char_start`,
    );
    const rows = reader.getRowsJS() as [number, number[] | null, number][];
    for (const [, embedding, n] of rows) expect(embedding?.length).toBe(Number(n));
    return { embeddings: rows.map((r) => r[1] ?? []), charStarts: rows.map((r) => r[0]) };
  } finally {
    connection.closeSync();
  }
}

function embeddingChunks(bytes: Uint8Array) {
  const meta = parquetMetadata(bytes.slice().buffer);
  return meta.row_groups.map((group) => {
    const chunk = group.columns.find(
      (c) => c.meta_data?.path_in_schema.join('.') === 'embedding.list.element',
    );
    return chunk!;
  });
}

describe('list<float> column encoder', () => {
  for (const [dim, count] of [
    [1, 2048 + 5],
    [4, 2048 * 2 + 1],
    [384, 2048 + 300],
  ] as const) {
    it(`round-trips ${count} rows of ${dim} floats through hyparquet and DuckDB`, async () => {
      const rows = rowsOf(count, () => dim);
      const bytes = embeddingsParquet('r-1', rows);

      const decoded = await readHyparquet(bytes);
      expect(decoded.map((r) => r.char_start)).toEqual(rows.map((r) => r.char_start));
      expectEmbeddings(
        decoded.map((r) => r.embedding),
        rows,
      );
      expect(decoded[7]).toMatchObject({ run_id: 'r-1', chunk_id: 'd2#1', metadata: '{"title":"t7"}' });

      const duckRows = await readDuckDb(bytes);
      expect(duckRows.charStarts).toEqual(rows.map((r) => r.char_start));
      expectEmbeddings(duckRows.embeddings, rows);

      for (const chunk of embeddingChunks(bytes)) {
        expect(chunk.meta_data).toMatchObject({ type: 'FLOAT', codec: 'SNAPPY', statistics: undefined });
        expect(chunk.meta_data?.encodings).toContain('PLAIN');
        expect(chunk.meta_data?.encodings).not.toContain('RLE_DICTIONARY');
      }
    });
  }

  it('splits 768-float rows into pages of about 1 MiB at row boundaries, with an offset index', async () => {
    const count = 2048 * 2 + 17;
    const rows = rowsOf(count, () => 768);
    const bytes = embeddingsParquet('r-1', rows);
    const chunks = embeddingChunks(bytes);
    expect(chunks.map((c) => Number(c.meta_data?.num_values))).toEqual([2048 * 768, 2048 * 768, 17 * 768]);
    // 2048 rows of 3072 bytes are 6 MiB: several pages, so an offset index; 17 rows are one page.
    expect(chunks[0]!.offset_index_length).toBeGreaterThan(0);
    expect(chunks[2]!.offset_index_length).toBeUndefined();
    for (const chunk of chunks) {
      const size = Number(chunk.meta_data?.total_uncompressed_size);
      const values = Number(chunk.meta_data?.num_values) * 4;
      expect(size).toBeGreaterThan(values);
      expect(size).toBeLessThan(values + 64 * 1024);
    }

    // The offset index matches the pages: where each starts, its size and its first row.
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const chunk of chunks.slice(0, 2)) {
      const reader = { view, offset: Number(chunk.offset_index_offset) };
      const locations = readOffsetIndex(reader).page_locations;
      expect(locations.length).toBeGreaterThanOrEqual(6);
      let offset = Number(chunk.meta_data?.data_page_offset);
      let firstRow = 0;
      for (const location of locations) {
        expect({ offset: Number(location.offset), firstRow: Number(location.first_row_index) }).toEqual({
          offset,
          firstRow,
        });
        const page = { view, offset };
        const header = parquetHeader(page);
        expect(header.type).toBe('DATA_PAGE_V2');
        expect(header.uncompressed_page_size).toBeLessThanOrEqual(1024 * 1024 + 8192);
        offset = page.offset + header.compressed_page_size;
        expect(location.compressed_page_size).toBe(offset - Number(location.offset));
        firstRow += header.data_page_header_v2!.num_rows;
      }
      expect(firstRow).toBe(2048);
      expect(offset - Number(chunk.meta_data?.data_page_offset)).toBe(
        Number(chunk.meta_data?.total_compressed_size),
      );
    }

    expectEmbeddings(
      (await readHyparquet(bytes)).map((r) => r.embedding),
      rows,
    );
    // A slice read through the offset index, starting and ending inside pages.
    const slice = await parquetReadObjects({
      file: bytes.slice().buffer,
      columns: ['embedding'],
      rowStart: 2048 + 1000,
      rowEnd: 2048 + 1500,
      useOffsetIndex: true,
    });
    expectEmbeddings(
      slice.map((r) => r.embedding),
      rows.slice(2048 + 1000, 2048 + 1500),
    );
    const duckRows = await readDuckDb(bytes);
    expectEmbeddings(duckRows.embeddings, rows);
  });

  it('handles rows of different lengths, empty ones and plain arrays', async () => {
    const lengths = [3, 0, 1, 384, 0, 0, 7, 768, 2, 0];
    const rows = Array.from({ length: 2048 + 600 }, (_, i) => {
      const v = vector(i, lengths[i % lengths.length]!);
      return embeddingRow(i, i % 5 === 2 ? Array.from(v) : v);
    });
    const bytes = embeddingsParquet('r-1', rows);
    expectEmbeddings(
      (await readHyparquet(bytes)).map((r) => r.embedding),
      rows,
    );
    expectEmbeddings((await readDuckDb(bytes)).embeddings, rows);
    // Every row is one level slot at least: an empty list is a slot with definition level 0.
    const slots = rows.slice(0, 2048).reduce((n, r) => n + Math.max(1, r.embedding.length), 0);
    expect(Number(embeddingChunks(bytes)[0]!.meta_data?.num_values)).toBe(slots);
  });

  it('decodes to the same values as the generic hyparquet-writer path, other columns byte for byte', async () => {
    const lengths = [384, 384, 384, 0, 5];
    const rows = Array.from({ length: 2048 * 2 + 17 }, (_, i) => embeddingRow(i, vector(i, lengths[i % 5]!)));
    const bytes = embeddingsParquet('r-1', rows);
    const generic = genericEmbeddingsParquet('r-1', rows);
    expect(await readHyparquet(bytes)).toEqual(await readHyparquet(generic));

    // Every other column chunk is the same bytes as before.
    const chunkBytes = (file: Uint8Array) =>
      parquetMetadata(file.slice().buffer).row_groups.flatMap((g) =>
        g.columns.map((c) => {
          const m = c.meta_data!;
          const start = Number(m.dictionary_page_offset ?? m.data_page_offset);
          return {
            name: m.path_in_schema.join('.'),
            bytes: Buffer.from(file.subarray(start, start + Number(m.total_compressed_size))),
          };
        }),
      );
    const ours = chunkBytes(bytes);
    const theirs = chunkBytes(generic);
    expect(ours.map((c) => c.name)).toEqual(theirs.map((c) => c.name));
    for (let i = 0; i < ours.length; i++) {
      const { name, bytes: chunk } = ours[i]!;
      if (name !== 'embedding.list.element') expect(chunk.equals(theirs[i]!.bytes), name).toBe(true);
    }
  });

  it('writes tables without list columns byte for byte as ParquetWriter.write did', () => {
    const rows: RejectRow[] = Array.from({ length: 300 }, (_, i) => ({
      source_key: `k${i % 4}`,
      byte_offset: i * 100,
      line: i + 1,
      reason: 'invalid JSON',
      excerpt: i % 3 ? `{x${i}` : null,
    })) as RejectRow[];
    const bytes = new ByteWriter();
    const writer = new ParquetWriter({ writer: bytes, schema: schemaOf(TABLE_COLUMNS.rejects) as never });
    const records = rows.map((r) => ({ ...r, run_id: 'r-2' })) as Record<string, unknown>[];
    void writer.write({
      columnData: TABLE_COLUMNS.rejects.map((col) => ({
        name: col.name,
        data: records.map((rec) =>
          col.type === 'int64' ? BigInt(rec[col.name] as number) : (rec[col.name] ?? null),
        ),
        ...(col.name === 'excerpt' ? { encoding: 'PLAIN' as const, statistics: false } : {}),
      })),
      rowGroupSize: 100_000,
    });
    writer.finish();
    expect(Buffer.from(rejectsParquet('r-2', rows)).equals(Buffer.from(bytes.getBuffer()))).toBe(true);
  });

  it('rejects a missing embedding: the list column is required', () => {
    const writer = embeddingsPartWriter('r-1');
    writer.add([embeddingRow(0, [1, 2]), { ...embeddingRow(1, [3]), embedding: undefined as never }]);
    expect(() => writer.finish()).toThrow(/embedding is required: row 1/);
  });
});

/** One column chunk written alone after 3 bytes of something else, and what the encoder returned. */
function columnChunk(
  rows: readonly (FloatList | null)[],
  codec: 'SNAPPY' | 'UNCOMPRESSED',
  pageSize: number,
) {
  const writer = new ByteWriter();
  writer.appendBytes(Uint8Array.of(1, 2, 3));
  const { compressors } = new ParquetWriter({ writer: new ByteWriter(), schema: schemaOf([]) as never });
  const result = writeFloatListColumn(writer as never, rows, {
    path: ['embedding', 'list', 'element'],
    codec,
    compressors,
    pageSize,
  });
  const metadata = JSON.stringify(result, (_key, value) => (typeof value === 'bigint' ? `${value}n` : value));
  return { bytes: writer.getBytes(), metadata };
}

const sha256 = (...parts: (Uint8Array | string)[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
};

describe('writeFloatListColumn steps', () => {
  const mixedLengths = [3, 0, 1, 384, 0, 0, 7, 768, 2, 0];
  const mixed = () =>
    Array.from({ length: 2600 }, (_, i) => {
      const v = vector(i, mixedLengths[i % mixedLengths.length]!);
      return i % 5 === 2 ? Array.from(v) : v;
    });

  // Digests of the pages and returned metadata as written by the encoder before it was split
  // into pageRows / encodePage / FloatListChunk (commit e2c7062): any change of a byte fails.
  it.each([
    [
      '384 floats, SNAPPY, 1 MiB pages',
      () => Array.from({ length: 2100 }, (_, i) => vector(i, 384)),
      'SNAPPY',
      DEFAULT_PAGE_SIZE,
      '1d947c99ced908d355b317d866aac42ae756ac0c9f917ec9d4e8c96dc650ef9a',
    ],
    [
      '768 floats, UNCOMPRESSED, several pages',
      () => Array.from({ length: 1500 }, (_, i) => vector(i, 768)),
      'UNCOMPRESSED',
      DEFAULT_PAGE_SIZE,
      'e6fda6a83cadf853f2c72d5321ba95b31d43d2e34799f3e0fc9391142be06673',
    ],
    [
      'mixed lengths, empty rows and plain arrays, 4 KiB pages',
      mixed,
      'SNAPPY',
      4096,
      'dd18adae2f454d9271fc2617b54bc8c53e2a6cfe5d69fd4793652fe646d35a63',
    ],
    [
      'one float a row, a page per row',
      () => Array.from({ length: 3000 }, (_, i) => vector(i, 1)),
      'SNAPPY',
      1,
      '1f99361c66510bdd3d2717c6cce76a1c58177a6cc4f82e800e971ebde994cbbb',
    ],
  ] as const)('writes %s byte for byte as before', (_name, rows, codec, pageSize, digest) => {
    const { bytes, metadata } = columnChunk(rows(), codec, pageSize);
    expect(sha256(bytes, metadata)).toBe(digest);
  });

  it('cuts pages of whole rows up to the page size, at least one row, and names a missing row', () => {
    const rows = [vector(0, 10), vector(1, 10), vector(2, 30), new Float32Array(0), vector(3, 5)];
    expect(pageRows(rows, 0, 80, 'v')).toEqual({ end: 2, values: 20 });
    expect(pageRows(rows, 2, 80, 'v')).toEqual({ end: 3, values: 30 });
    expect(pageRows(rows, 2, 1, 'v')).toEqual({ end: 3, values: 30 });
    expect(pageRows(rows, 3, 80, 'v')).toEqual({ end: 5, values: 5 });
    expect(() => pageRows([vector(0, 2), null], 0, 80, 'v')).toThrow(
      'parquet list column v is required: row 1 is null',
    );
  });

  it('encodes levels as RLE runs of whole rows, empty rows as nulls, floats the same on either byte order', () => {
    const rows = [Float32Array.of(1, -0, Number.NaN), new Float32Array(0), [2.5], Float32Array.of(3, 4)];
    const page = encodePage(rows, 0, 4, 6);
    expect(page).toMatchObject({ rows: 4, slots: 7, nulls: 1 });
    // Repetition 0 1 1 | 0 | 0 | 0 1; definition 1 1 1 | 0 | 1 | 1 1: runs (count << 1, value).
    expect([...page.repetition]).toEqual([2, 0, 4, 1, 6, 0, 2, 1]);
    expect([...page.definition]).toEqual([6, 1, 2, 0, 6, 1]);
    expect(Buffer.from(page.data)).toEqual(Buffer.from(Float32Array.of(1, -0, Number.NaN, 2.5, 3, 4).buffer));
    expect(encodePage(rows, 0, 4, 6, false)).toEqual(page);
    const big = Array.from({ length: 50 }, (_, i) => vector(i, 37));
    expect(encodePage(big, 10, 50, 40 * 37, false)).toEqual(encodePage(big, 10, 50, 40 * 37, true));
  });
});
