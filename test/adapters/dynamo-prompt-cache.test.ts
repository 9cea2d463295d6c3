import { createHash } from 'node:crypto';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoPromptCache } from '../../shared/adapters/aws/dynamo-prompt-cache.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import {
  type CachedAnswer,
  ObjectStorePromptCache,
  PROMPT_ITEM_MAX_BYTES,
} from '../../shared/jobs/generate/prompt-cache.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-prompts' });

const sha = (n: number) => createHash('sha256').update(`prompt ${n}`).digest('hex');

const answer = (n: number, output = `answer ${n}`): CachedAnswer => ({
  promptSha256: sha(n),
  model: 'm',
  output,
  outputJson: null,
  finishReason: 'stop',
  attempts: 1,
  promptTokens: 10,
  completionTokens: 3,
  runId: 'run-1',
});

/**
 * The document client as seen through DynamoDB under pressure: each batch call is counted,
 * and the first call of each kind gets only its first half done, the rest handed back as
 * unprocessed (as DynamoDB does when a partition throttles).
 */
function pressuredDoc(tableName: string) {
  const calls = { gets: [] as number[], writes: [] as number[] };
  let gotHalf = false;
  let wroteHalf = false;
  const proxy = {
    async send(command: unknown) {
      if (command instanceof BatchGetCommand) {
        const keys = command.input.RequestItems?.[tableName]?.Keys ?? [];
        calls.gets.push(keys.length);
        if (!gotHalf && keys.length > 1) {
          gotHalf = true;
          const half = Math.ceil(keys.length / 2);
          const out = (await dynalite.doc.send(
            new BatchGetCommand({ RequestItems: { [tableName]: { Keys: keys.slice(0, half) } } }),
          )) as BatchGetCommandOutput;
          return { ...out, UnprocessedKeys: { [tableName]: { Keys: keys.slice(half) } } };
        }
      }
      if (command instanceof BatchWriteCommand) {
        const requests = command.input.RequestItems?.[tableName] ?? [];
        calls.writes.push(requests.length);
        if (!wroteHalf && requests.length > 1) {
          wroteHalf = true;
          const half = Math.ceil(requests.length / 2);
          const out = (await dynalite.doc.send(
            new BatchWriteCommand({ RequestItems: { [tableName]: requests.slice(0, half) } }),
          )) as BatchWriteCommandOutput;
          return { ...out, UnprocessedItems: { [tableName]: requests.slice(half) } };
        }
      }
      return dynalite.doc.send(command as BatchGetCommand);
    },
  } as unknown as DynamoDBDocumentClient;
  return { proxy, calls };
}

const noSleep = async () => {};

/** An object store that counts PUTs, to show the old cache is never written. */
function countingStore(store: ObjectStore) {
  const counts = { puts: 0, gets: 0 };
  const wrapped: ObjectStore = {
    head: (k, o) => store.head(k, o),
    readRange: (k, s, e, o) => store.readRange(k, s, e, o),
    get: (k) => {
      counts.gets += 1;
      return store.get(k);
    },
    put: (k, b, c) => {
      counts.puts += 1;
      return store.put(k, b, c);
    },
    list: (p) => store.list(p),
  };
  return { store: wrapped, counts };
}

describe('DynamoPromptCache', () => {
  it('records in batches of 25 and looks up in batches of 100, resending what DynamoDB left unprocessed', async () => {
    const tableName = await dynalite.newTable();
    const { proxy, calls } = pressuredDoc(tableName);
    const cache = new DynamoPromptCache({ doc: proxy, tableName, sleep: noSleep });
    const answers = Array.from({ length: 130 }, (_, i) => answer(i));
    await cache.record('triage', answers);
    // 130 answers: 25 x 5 + 5, the first batch half unprocessed and resent (13 + 12).
    expect(calls.writes).toEqual([25, 12, 25, 25, 25, 25, 5]);

    const wanted = [...answers.map((a) => a.promptSha256), sha(999)];
    const found = await cache.lookup('triage', [...wanted, sha(1)]);
    // 131 distinct keys: 100 + 31, the first half unprocessed and resent.
    expect(calls.gets).toEqual([100, 50, 31]);
    expect(found.size).toBe(130);
    expect(found.get(sha(7))).toEqual(answer(7));
    expect(found.has(sha(999))).toBe(false);
  });

  it('keeps pipelines apart: the same prompt of another pipeline is a miss', async () => {
    const tableName = await dynalite.newTable();
    const cache = new DynamoPromptCache({ doc: dynalite.doc, tableName });
    await cache.record('triage', [answer(1)]);
    expect((await cache.lookup('other', [sha(1)])).size).toBe(0);
    expect((await cache.lookup('triage', [sha(1)])).get(sha(1))).toEqual(answer(1));
  });

  it('does not cache an answer too large for an item, and says so, without failing the others', async () => {
    const tableName = await dynalite.newTable();
    const skipped: Array<{ sha: string; bytes: number }> = [];
    const cache = new DynamoPromptCache({
      doc: dynalite.doc,
      tableName,
      onSkipped: (_pipeline, promptSha256, bytes) => skipped.push({ sha: promptSha256, bytes }),
    });
    const huge = answer(2, 'x'.repeat(PROMPT_ITEM_MAX_BYTES));
    await cache.record('triage', [answer(1), huge]);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]?.sha).toBe(sha(2));
    expect(skipped[0]?.bytes).toBeGreaterThan(PROMPT_ITEM_MAX_BYTES);
    const found = await cache.lookup('triage', [sha(1), sha(2)]);
    expect([...found.keys()]).toEqual([sha(1)]);
  });

  it('finds on a miss what the old S3 cache holds, copies it in, and never writes to S3', async () => {
    const tableName = await dynalite.newTable();
    const bucket = new MemoryObjectStore();
    // Answers the S3 cache held before the upgrade.
    await new ObjectStorePromptCache(bucket).record('triage', [answer(1), answer(2)]);
    const { store, counts } = countingStore(bucket);
    const cache = new DynamoPromptCache({
      doc: dynalite.doc,
      tableName,
      legacy: new ObjectStorePromptCache(store),
    });

    const first = await cache.lookup('triage', [sha(1), sha(2), sha(3)]);
    expect([...first.keys()].sort()).toEqual([sha(1), sha(2)].sort());
    expect(first.get(sha(2))).toEqual(answer(2));
    expect(counts.gets).toBe(3);

    await cache.record('triage', [answer(3)]);
    expect(counts.puts).toBe(0);

    // The hits were copied: a lookup without the old cache finds all three.
    const tableOnly = new DynamoPromptCache({ doc: dynalite.doc, tableName });
    expect((await tableOnly.lookup('triage', [sha(1), sha(2), sha(3)])).size).toBe(3);
    // And the old cache is read again only for what the table misses.
    await cache.lookup('triage', [sha(1), sha(2), sha(3), sha(4)]);
    expect(counts.gets).toBe(4);
    expect(counts.puts).toBe(0);
  });
});
