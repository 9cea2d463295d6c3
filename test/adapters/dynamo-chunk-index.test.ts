import { GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import {
  INDEX_FINGERPRINT_BYTES,
  type IndexedDoc,
  MAX_INDEXED_CHUNKS,
} from '../../shared/ports/chunk-index.ts';
import { aDoc, chunkIndexContract, fingerprintsOf } from '../contract/chunk-index-contract.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-chunks' });

chunkIndexContract('DynamoChunkIndex on dynalite', async () => ({
  index: new DynamoChunkIndex({ doc: dynalite.doc, tableName: await dynalite.newTable() }),
  cleanup: async () => {},
}));

async function freshIndex(): Promise<{ index: DynamoChunkIndex; tableName: string }> {
  const tableName = await dynalite.newTable();
  return { index: new DynamoChunkIndex({ doc: dynalite.doc, tableName }), tableName };
}

describe('DynamoChunkIndex items', () => {
  it('writes one DOC item per document, fingerprints as one binary attribute and the place as plain ones', async () => {
    const { index, tableName } = await freshIndex();
    const doc = aDoc('a', 2, { seed: 4, unitId: 'u-0003', firstRow: 17, sourceKey: 'incoming/a.jsonl' });
    await index.record('docs', [doc, { docId: 'gone', chunkCount: 0 }]);

    const got = await dynalite.client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: 'DOC#docs#a' }, sk: { S: 'DOC' } } }),
    );
    expect(got.Item).toEqual({
      pk: { S: 'DOC#docs#a' },
      sk: { S: 'DOC' },
      chunkCount: { N: '2' },
      sourceKey: { S: 'incoming/a.jsonl' },
      fp: { B: fingerprintsOf(2, 4) },
      runId: { S: doc.chunks!.at.runId },
      unitId: { S: 'u-0003' },
      row: { N: '17' },
    });
    const all = await dynalite.client.send(new ScanCommand({ TableName: tableName }));
    expect(all.Items?.map((i) => i.pk?.S).sort()).toEqual(['DOC#docs#a', 'DOC#docs#gone']);
    expect(all.Items?.find((i) => i.pk?.S === 'DOC#docs#gone')).toEqual({
      pk: { S: 'DOC#docs#gone' },
      sk: { S: 'DOC' },
      chunkCount: { N: '0' },
    });
  });

  it('reads an item written before fingerprints were kept as a document without chunks, and never reads CHUNK items', async () => {
    const { index, tableName } = await freshIndex();
    await dynalite.doc.send(
      new PutCommand({
        TableName: tableName,
        Item: { pk: 'DOC#docs#old', sk: 'DOC', chunkCount: 3, sourceKey: 'incoming/old.jsonl' },
      }),
    );
    await dynalite.doc.send(
      new PutCommand({
        TableName: tableName,
        Item: { pk: 'CHUNK#docs#old#0', sk: 'CHUNK', sha: 'h0', vec: new Uint8Array(32), runId: 'r-1' },
      }),
    );
    const found = await index.lookupDocs('docs', ['old', 'old#0']);
    expect(found).toEqual(
      new Map([['old', { docId: 'old', chunkCount: 3, sourceKey: 'incoming/old.jsonl' }]]),
    );
  });

  it('returns fingerprints in a buffer of their own, not a view into the response', async () => {
    const { index } = await freshIndex();
    await index.record(
      'docs',
      Array.from({ length: 5 }, (_, i) => aDoc(`d${i}`, 1 + i, { seed: i })),
    );
    const found = await index.lookupDocs('docs', ['d0', 'd1', 'd2', 'd3', 'd4']);
    expect(found.size).toBe(5);
    for (const doc of found.values()) {
      const fp = doc.chunks!.fingerprints;
      expect(fp.byteOffset).toBe(0);
      expect(fp.buffer.byteLength).toBe(fp.byteLength);
    }
  });

  it.each([
    ['fewer fingerprint bytes than chunks need', 3, fingerprintsOf(2)],
    ['a partial fingerprint', 1, new Uint8Array(INDEX_FINGERPRINT_BYTES + 1)],
    ['more chunks than the cap', MAX_INDEXED_CHUNKS + 1, fingerprintsOf(MAX_INDEXED_CHUNKS + 1)],
  ])('refuses a document with %s, writing none of the call', async (_case, chunkCount, fingerprints) => {
    const { index, tableName } = await freshIndex();
    const bad: IndexedDoc = {
      docId: 'bad',
      chunkCount,
      chunks: { fingerprints, at: { runId: 'r-1', unitId: 'u-1', firstRow: 0 } },
    };
    const error = await index.record('docs', [aDoc('fine', 1), bad]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^chunk index: document "bad" has \d+ fingerprint bytes for \d+ chunks/,
    );
    expect((error as Error).message).not.toContain('\n');
    const all = await dynalite.client.send(new ScanCommand({ TableName: tableName }));
    expect(all.Items).toEqual([]);
  });
});
