import { createHash } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { DynamoPromptCache } from '../../shared/adapters/aws/dynamo-prompt-cache.ts';
import { dynamoItemStorageBytes } from '../../shared/cost/dynamo-item-size.ts';
import { UsageMeter } from '../../shared/cost/unit-usage.ts';
import type { CachedAnswer } from '../../shared/jobs/generate/prompt-cache.ts';
import { type IndexedDoc, indexFingerprint } from '../../shared/ports/chunk-index.ts';
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

  it('chunk index: one entry per document, each as stored plus 100 bytes; a re-run that finds and rewrites them adds none', async () => {
    const tableName = await dynalite.newTable();
    const index = new DynamoChunkIndex({ doc: dynalite.doc, tableName });
    const doc = (n: number, chunks: number, runId: string, firstRow: number): IndexedDoc => ({
      docId: `doc-${n}`,
      chunkCount: chunks,
      ...(n === 1 ? { sourceKey: 'incoming/docs/2026-12-07/part-0001.jsonl' } : {}),
      chunks: {
        fingerprints: Buffer.concat(
          Array.from({ length: chunks }, (_, c) => indexFingerprint(sha(n * 100 + c))),
        ),
        at: { runId, unitId: 'u00000', firstRow },
      },
    });
    const first = 'r-20261207T120000Z-abcdef';
    const docs = [doc(1, 2, first, 0), doc(2, 1, first, 2), doc(3, 40, first, 3)];
    const meter = new UsageMeter();
    const metered = meter.chunkIndex(index);
    await metered.lookupDocs(
      'docs',
      docs.map((d) => d.docId),
    );
    // A document found removed: no fingerprints and no place.
    await metered.record('docs', [...docs, { docId: 'doc-4', chunkCount: 0 }]);
    const items = await storedItems(tableName);
    expect(items).toHaveLength(4);
    const stored = items.reduce((sum, item) => sum + dynamoItemStorageBytes(item), 0);
    expect(meter.usage.dynamoBytesAdded).toBe(stored);
    // 43 chunks of 16-byte fingerprints, and no vector: under 1 KB an item.
    expect(stored).toBeGreaterThan(43 * 16 + 4 * 100);
    expect(stored).toBeLessThan(43 * 16 + 4 * 300);

    // The next run finds them unchanged and moves their vectors' place to its own part.
    const second = new UsageMeter();
    const again = second.chunkIndex(index);
    const next = 'r-20261208T120000Z-abcdef';
    await again.lookupDocs(
      'docs',
      docs.map((d) => d.docId),
    );
    await again.record('docs', [doc(1, 2, next, 10), doc(2, 1, next, 12), doc(3, 40, next, 13)]);
    expect(second.usage.dynamoBytesAdded).toBe(0);
    const after = await storedItems(tableName);
    expect(after.reduce((sum, item) => sum + dynamoItemStorageBytes(item), 0)).toBe(stored);
  });
});
