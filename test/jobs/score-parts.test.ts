import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import type { ScoreRow } from '../../shared/domain/types.ts';
import {
  embeddingsParquet,
  extraColumnsOfPart,
  rewrittenPartWriter,
  scoresPartWriter,
} from '../../shared/output/parquet-tables.ts';

const PASS = [
  { column: 'region', type: 'string' },
  { column: 'visits', type: 'bigint' },
  { column: 'amount', type: 'double' },
  { column: 'vip', type: 'boolean' },
];

const row = (i: number, passThrough: ScoreRow['passThrough']): ScoreRow => ({
  record_id: `c${i}`,
  score: 0.5,
  model: 'm',
  source_key: 'incoming/x.csv',
  line: i + 2,
  outputs: [0.5],
  metadata: {},
  reasons: JSON.stringify([{ feature: 'age', contribution: 0.1, value: '40' }]),
  passThrough,
});

async function read(bytes: Uint8Array) {
  const file = bytes.slice().buffer;
  return { rows: await parquetReadObjects({ file }), schema: parquetMetadata(file).schema };
}

describe('scores parts with reasons and pass-through columns', () => {
  it('writes pass-through columns typed after the table own columns, nulls for missing values', async () => {
    const writer = scoresPartWriter('r1', PASS);
    writer.add([
      row(0, { region: 'north', visits: 3n, amount: 1.5, vip: true }),
      row(1, { region: null, visits: null, amount: null, vip: null }),
    ]);
    const { rows, schema } = await read(writer.finish());
    expect(rows[0]).toMatchObject({
      region: 'north',
      visits: 3n,
      amount: 1.5,
      vip: true,
      reasons: expect.stringContaining('"age"'),
    });
    expect(rows[1]).toMatchObject({ region: null, visits: null, amount: null, vip: null });
    expect(extraColumnsOfPart('scores', schema)).toEqual([
      { name: 'region', type: 'string' },
      { name: 'visits', type: 'int64' },
      { name: 'amount', type: 'double' },
      { name: 'vip', type: 'boolean' },
    ]);
  });

  it('keeps them when a part is rewritten (the duplicate-id rule drops rows by rewriting)', async () => {
    const writer = scoresPartWriter('r1', PASS);
    writer.add([row(0, { region: 'north', visits: 3n, amount: 1.5, vip: false })]);
    const first = await read(writer.finish());
    const rewrite = rewrittenPartWriter('scores', [], extraColumnsOfPart('scores', first.schema));
    rewrite.add(first.rows);
    const again = await read(rewrite.finish());
    expect(again.rows).toEqual(first.rows);
  });

  it('finds no extra column in a part of the table own layout (nested list columns included)', async () => {
    const bytes = embeddingsParquet('r1', [
      {
        doc_id: 'd',
        chunk_id: 'd#0',
        chunk_index: 0,
        char_start: 0,
        char_end: 1,
        token_count: 1,
        chunk_text: 'x',
        text_sha256: 'h',
        model: 'm',
        embedding: [0.5, 0.25],
        source_key: 'k',
        metadata: {},
      },
    ]);
    expect(extraColumnsOfPart('embeddings', (await read(bytes)).schema)).toEqual([]);
  });
});
