import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoChunkIndex } from '../../shared/adapters/aws/dynamo-chunk-index.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { RecordingQueue } from '../incremental/factories.ts';
import { useDynaliteTables } from '../support/dynalite-tables.ts';
import { DAY_MS, dailyRunId, HashModel, T0 } from '../support/hash-model.ts';

const DIMENSION = 8;

/** Each small source its own unit. */
const config = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: DIMENSION },
  chunking: { maxTokens: 16, overlapTokens: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
  planning: { targetUnitTokens: 20 },
});

const A = 'incoming/docs/a.jsonl';
const B = 'incoming/docs/b.jsonl';
const doc = (id: string, text: string) => ({ id, text });
/** Unchanged documents of a file, enough that one duplicate's rejected record stays under the tolerated 10%. */
const steady = (file: string) =>
  Array.from({ length: 6 }, (_, i) => doc(`${file}-${i}`, `document ${i} of ${file}, the same every run`));

const dynalite = useDynaliteTables({ tablePrefix: 'sluice-consistent' });

describe('chunk index reads: finalize reads consistently, units eventually (DynamoDB through aws-sdk-client-mock, on dynalite)', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  let index: DynamoChunkIndex;
  // The index's own client, mocked as an instance (dynalite's client stays real): every call is
  // recorded, then sent to dynalite.
  const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
  const dynamo = mockClient(client);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-consistent-'));
    store = new MemoryObjectStore(97);
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
    dynamo.reset();
    dynamo.on(BatchGetCommand).callsFake((input) => dynalite.doc.send(new BatchGetCommand(input)));
    dynamo.on(BatchWriteCommand).callsFake((input) => dynalite.doc.send(new BatchWriteCommand(input)));
    index = new DynamoChunkIndex({ doc: client, tableName: await dynalite.newTable() });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** The `ConsistentRead` of each BatchGetItem call from the `from`th on, and how many there were. */
  const consistencyOfCalls = (from: number) =>
    dynamo
      .commandCalls(BatchGetCommand)
      .slice(from)
      .flatMap((call) => Object.values(call.args[0].input.RequestItems ?? {}).map((r) => r.ConsistentRead));

  /** Run `n` of `files`, a's unit first; the BatchGetItem calls' `ConsistentRead` of its units and of its finalize. */
  async function runOf(n: number, files: Readonly<Record<string, readonly unknown[]>>) {
    for (const [key, records] of Object.entries(files)) await store.put(key, jsonl(records));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: dailyRunId(n),
      trigger: 'local',
      keys: Object.keys(files),
      now: new Date(T0 + n * DAY_MS),
    });
    queue.units = [];
    const before = dynamo.commandCalls(BatchGetCommand).length;
    const deps = {
      store,
      runs,
      queue,
      endpoint: new HashModel(DIMENSION),
      tokenCounter: new EstimatingTokenCounter(),
      chunkIndex: index,
    };
    const sorted = [...units].sort(
      (x, y) => x.sourceKey.localeCompare(y.sourceKey) || x.byteStart - y.byteStart,
    );
    for (const unit of sorted) await processUnit(deps, config, unit, { isLastAttempt: false });
    const afterUnits = dynamo.commandCalls(BatchGetCommand).length;
    const summary = await finalizeRun(
      { store, runs, chunkIndex: index, pipelines: new Map([['docs', config]]) },
      dailyRunId(n),
      new Date(T0 + n * DAY_MS + 60_000),
    );
    return {
      summary: summary!,
      units: consistencyOfCalls(before).slice(0, afterUnits - before),
      finalize: consistencyOfCalls(afterUnits),
    };
  }

  it("finalize's moves check and duplicate-id entries read with ConsistentRead; the units' lookups without", async () => {
    await runOf(1, {
      [A]: [doc('gone', 'a document a.jsonl drops in the next run'), ...steady('a')],
      [B]: steady('b'),
    });
    // Run 2: `gone` left a.jsonl (another source has documents: the moves check looks it up),
    // `dup` is in both files (finalize looks up the kept record's entry).
    const second = await runOf(2, {
      [A]: [...steady('a'), doc('dup', 'the record of dup that a.jsonl has')],
      [B]: [...steady('b'), doc('dup', 'the record of dup that b.jsonl has, kept')],
    });
    expect(second.summary.status).toBe('succeeded');
    expect(second.summary.sources?.removedDocuments).toBe(1);
    // The units looked their documents up, eventually consistent: no ConsistentRead at all.
    expect(second.units.length).toBeGreaterThanOrEqual(2);
    expect(second.units.every((consistent) => consistent === undefined)).toBe(true);
    // Finalize looked up `dup` (duplicate-id rule) and `gone` (moves check), each consistently.
    const finalizeKeys = dynamo
      .commandCalls(BatchGetCommand)
      .slice(-second.finalize.length)
      .flatMap((call) => Object.values(call.args[0].input.RequestItems ?? {}).flatMap((r) => r.Keys ?? []))
      .map((key) => key.pk);
    expect(finalizeKeys.sort()).toEqual(['DOC#docs#dup', 'DOC#docs#gone']);
    expect(second.finalize).toEqual(second.finalize.map(() => true));
  });
});
