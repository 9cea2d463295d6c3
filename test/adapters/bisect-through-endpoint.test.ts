import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  InvokeEndpointCommand,
  ModelError as SageMakerModelError,
  SageMakerRuntimeClient,
  SageMakerRuntimeServiceException,
} from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendInputError } from '../../cli/model-server/backend.ts';
import { HashEmbedder } from '../../cli/model-server/hash-embedder.ts';
import { startModelServer } from '../../cli/model-server/server.ts';
import { SageMakerEmbeddingEndpoint } from '../../shared/adapters/aws/sagemaker-embedding-endpoint.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { AdaptiveLimiter } from '../../shared/endpoint/adaptive-limiter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { type TableName, unitPartKey } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { localClientConfig } from '../support/local-aws.ts';
import { blobBody } from '../support/sdk-bodies.ts';

/**
 * The bisect path end to end: a unit whose documents are batched together, one of them
 * refused by the model (a container 4xx relayed as SageMaker's ModelError), runs through
 * the real SageMakerEmbeddingEndpoint and the unit worker. The refused document, and only
 * it, goes to `rejects`; every other one is embedded; throttling on the way is retried.
 * Once with aws-sdk-client-mock, once against the local model server on loopback.
 */
const RUN_ID = 'r-20261129T060000Z-b15ec7';
const POISONED = new Set([7, 30]);
const docs = Array.from({ length: 40 }, (_, i) => ({
  id: `d${i}`,
  text: `${POISONED.has(i) ? 'POISON ' : ''}document ${i} about batching and retries `.repeat(1 + (i % 4)),
}));
const config = pipelineConfig({
  endpoint: { name: 'test-embed', dimension: 8, maxRetries: 4 },
  batching: { maxBatchTokens: 4096, maxBatchSize: 16, sortWindow: 64 },
  incremental: { enabled: false },
});

class NoQueue implements WorkQueue {
  async sendUnits(_units: readonly WorkUnit[]) {}
  async requestFinalize(_runId: string) {}
}

describe('bisecting a refused batch through the SageMaker endpoint client', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-bisect-'));
    store = new MemoryObjectStore(50);
    runs = new LocalRunStore(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** Plans the documents as one unit, runs it with `endpoint`, finalizes, and reads what it wrote. */
  async function runUnit(endpoint: SageMakerEmbeddingEndpoint) {
    const queue = new NoQueue();
    await store.put('incoming/docs/a.jsonl', jsonl(docs));
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/docs/a.jsonl'],
      now: new Date('2026-11-29T06:00:00Z'),
    });
    expect(units).toHaveLength(1);
    const deps = { store, runs, queue, endpoint, tokenCounter: new EstimatingTokenCounter() };
    const outcome = await processUnit(deps, config, units[0]!, { isLastAttempt: false });
    expect(outcome).toMatchObject({ status: 'succeeded' });
    const summary = await finalizeRun({ store, runs }, RUN_ID, new Date('2026-11-29T06:01:00Z'));
    const read = async (table: TableName) =>
      parquetReadObjects({
        file: (store.objects.get(unitPartKey(table, 'docs', RUN_ID, units[0]!.unitId))! as Uint8Array).slice()
          .buffer,
      });
    if (!summary) throw new Error('finalize returned no summary');
    return { summary, embeddings: await read('embeddings'), rejects: await read('rejects') };
  }

  function expectOnlyPoisonRejected(result: Awaited<ReturnType<typeof runUnit>>) {
    const { summary, embeddings, rejects } = result;
    const embeddedDocs = new Set(embeddings.map((row) => row.doc_id));
    expect(embeddedDocs).toEqual(new Set(docs.filter((_, i) => !POISONED.has(i)).map((d) => d.id)));
    expect(rejects.map((row) => row.line).sort()).toEqual([...POISONED].map((i) => BigInt(i + 1)).sort());
    for (const row of rejects) expect(row.reason).toMatch(/^model rejected the input: .*poison/i);
    expect(summary.counts).toMatchObject({ records: docs.length, rejected: POISONED.size });
    for (const row of embeddings) expect((row.embedding as number[]).length).toBe(8);
  }

  it('with aws-sdk-client-mock: a ModelError (400) is bisected to the poisoned documents, throttles retried', async () => {
    const sagemaker = mockClient(SageMakerRuntimeClient);
    try {
      let calls = 0;
      let refused = 0;
      sagemaker.on(InvokeEndpointCommand).callsFake((input: { Body: Uint8Array }) => {
        calls += 1;
        const { inputs } = JSON.parse(new TextDecoder().decode(input.Body)) as { inputs: string[] };
        // Every third call is throttled once, so retries and bisection interleave.
        if (calls % 3 === 0) {
          throw new SageMakerRuntimeServiceException({
            name: 'ThrottlingException',
            $fault: 'client',
            message: 'Rate exceeded',
            $metadata: { httpStatusCode: 400 },
          });
        }
        if (inputs.some((text) => text.includes('POISON'))) {
          refused += 1;
          throw new SageMakerModelError({
            message: 'Received client error (400) from primary with message "input is poison"',
            OriginalStatusCode: 400,
            OriginalMessage: 'input is poison',
            $metadata: { httpStatusCode: 424 },
          });
        }
        return {
          Body: blobBody(
            JSON.stringify(inputs.map((text) => Array.from({ length: 8 }, () => text.length))),
          ) as never,
          ContentType: 'application/json',
        };
      });
      const endpoint = new SageMakerEmbeddingEndpoint({
        client: new SageMakerRuntimeClient({ region: 'us-east-1', maxAttempts: 1 }),
        endpointName: 'test-embed',
        maxRetries: 4,
        timeoutMs: 5_000,
        sleep: async () => {},
      });

      const result = await runUnit(endpoint);

      expectOnlyPoisonRejected(result);
      // A refused batch is split until each poisoned document is alone: at least one refusal per level.
      expect(refused).toBeGreaterThanOrEqual(2 * Math.log2(16));
      expect(result.summary.stats).toMatchObject({
        throttled: expect.any(Number),
        retries: expect.any(Number),
      });
      expect(result.summary.stats?.throttled).toBeGreaterThan(0);
      expect(result.summary.stats?.retries).toBe(result.summary.stats?.throttled);
    } finally {
      sagemaker.restore();
    }
  });

  it('against the local model server: the real client, a throttling GPU, and a model that refuses one input', async () => {
    const embedder = new HashEmbedder(8);
    const server = await startModelServer({
      backend: {
        description: 'hash embedder that refuses POISON',
        model: embedder.model,
        dimension: 8,
        embed: (inputs) => {
          if (inputs.some((text) => text.includes('POISON'))) throw new BackendInputError('input is poison');
          return embedder.embed(inputs);
        },
      },
      gpu: { capacity: 1, latencyMsFixed: 5 },
    });
    const client = new SageMakerRuntimeClient({ ...localClientConfig(server.url), maxAttempts: 1 });
    try {
      const endpoint = new SageMakerEmbeddingEndpoint({
        client,
        endpointName: 'test-embed',
        maxRetries: 8,
        timeoutMs: 10_000,
        baseDelayMs: 2,
        maxDelayMs: 20,
        limiter: new AdaptiveLimiter({ initialLimit: 4, maxLimit: 8 }),
      });

      const result = await runUnit(endpoint);

      expectOnlyPoisonRejected(result);
      const served = server.stats();
      expect(served.failed).toBeGreaterThanOrEqual(2 * Math.log2(16));
      expect(served.throttled).toBeGreaterThan(0);
      expect(result.summary.stats?.throttled).toBe(served.throttled);
      // The vectors written are the model's own, not made up by the client.
      const byDoc = new Map(result.embeddings.map((row) => [row.chunk_id as string, row]));
      const first = byDoc.get('d0#0')!;
      const expected = embedder.embed([first.chunk_text as string])[0]!;
      expect((first.embedding as number[]).map((x) => Math.fround(x))).toEqual(
        Array.from(expected, (x) => Math.fround(Math.round(x * 1e7) / 1e7)),
      );
    } finally {
      client.destroy();
      await server.close();
    }
  });
});
