import { createHash } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { DynamoPromptCache } from '../../shared/adapters/aws/dynamo-prompt-cache.ts';
import { dynamoItemStorageBytes } from '../../shared/cost/dynamo-item-size.ts';
import { UsageMeter } from '../../shared/cost/unit-usage.ts';
import type { CachedAnswer } from '../../shared/jobs/generate/prompt-cache.ts';
import type { IndexedChunk } from '../../shared/ports/chunk-index.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';

// Marshalled as the deployed Lambdas' document client does (functions/config/adapters.ts).
const dynalite = useDynaliteTables({
  tablePrefix: 'sluice-storage',
  translateConfig: { marshallOptions: { removeUndefinedValues: true } },
});

/** Every item of the table, as DynamoDB returns it, back in native values (binary as Uint8Array). */
async function storedItems(tableName: string): Promise<Record<string, unknown>[]> {
  const out = await dynalite.doc.send(new ScanCommand({ TableName: tableName }));
  return out.Items ?? [];
}

const sha = (n: number) => createHash('sha256').update(`prompt ${n}`).digest('hex');

const answer = (n: number, json: boolean): CachedAnswer => ({
  promptSha256: sha(n),
  model: 'Qwen/Qwen2.5-7B-Instruct',
  output: `{"priority":"high","category":"bug","summary":"crash ${n} on sign-in, ünïcode"}`,
  outputJson: json ? `{"priority":"high","category":"bug","summary":"crash ${n}"}` : null,
  finishReason: n % 2 ? 'stop' : null,
  attempts: 1 + (n % 3),
  promptTokens: 100 + n,
  completionTokens: 7 * n,
  runId: 'r-20261207T120000Z-abcdef',
});

describe('the DynamoDB storage a run adds, against what the adapters store', () => {
  it('prompt cache: the meter’s bytes are the stored items’ sizes plus 100 bytes each', async () => {
    const tableName = await dynalite.newTable();
    const meter = new UsageMeter();
    const cache = meter.promptCache(new DynamoPromptCache({ doc: dynalite.doc, tableName }));
    const answers = Array.from({ length: 30 }, (_, n) => answer(n, n % 2 === 0));
    await cache.lookup(
      'generate-triage',
      answers.map((a) => a.promptSha256),
    );
    await cache.record('generate-triage', answers);
    const items = await storedItems(tableName);
    expect(items).toHaveLength(30);
    const stored = items.reduce((sum, item) => sum + dynamoItemStorageBytes(item), 0);
    expect(meter.usage.dynamoBytesAdded).toBe(stored);
  });

  it('chunk index: chunk and document entries, each as stored plus 100 bytes; a re-run that finds them adds none', async () => {
    const tableName = await dynalite.newTable();
    const index = new DynamoChunkIndex({ doc: dynalite.doc, tableName });
    const chunk = (doc: number, n: number): IndexedChunk => ({
      chunkId: `doc-${doc}#${n}`,
      textSha256: sha(doc * 100 + n),
      embedding: Float32Array.from({ length: 384 }, (_, i) => Math.sin(doc + n + i)),
      runId: 'r-20261207T120000Z-abcdef',
    });
    const chunks = [chunk(1, 0), chunk(1, 1), chunk(2, 0)];
    const docs = [
      { docId: 'doc-1', chunkCount: 2, sourceKey: 'incoming/docs/2026-12-07/part-0001.jsonl' },
      { docId: 'doc-2', chunkCount: 1 },
    ];
    const first = new UsageMeter();
    const metered = first.chunkIndex(index);
    await metered.lookupChunks(
      'docs',
      chunks.map((c) => c.chunkId),
    );
    await metered.record('docs', chunks, []);
    await metered.lookupDocs('docs', ['doc-1', 'doc-2']);
    await metered.record('docs', [], docs);
    const items = await storedItems(tableName);
    expect(items).toHaveLength(5);
    const stored = items.reduce((sum, item) => sum + dynamoItemStorageBytes(item), 0);
    expect(first.usage.dynamoBytesAdded).toBe(stored);
    // A 384-float vector is 1,536 bytes of the chunk item.
    expect(stored).toBeGreaterThan(3 * 1536);

    const second = new UsageMeter();
    const again = second.chunkIndex(index);
    await again.lookupChunks(
      'docs',
      chunks.map((c) => c.chunkId),
    );
    await again.record('docs', [chunk(2, 0)], []);
    expect(second.usage.dynamoBytesAdded).toBe(0);
  });
});
