import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { LocalWorkQueue } from '../../shared/adapters/local/local-work-queue.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import { deadLetterUnit } from '../../shared/work/dead-letter-unit.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { pipelineConfig } from '../core/factories.ts';
import { type LocalAws, startLocalAws } from '../support/local-deployment.ts';

class VectorOfLength implements EmbeddingEndpoint {
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    stats.endpointCalls += 1;
    return inputs.map((t) => [t.length, 1, 0, 0]);
  }
}

const KEY = 'incoming/docs/overwritten.jsonl';
const records = (count: number, tag: string) =>
  Array.from({ length: count }, (_, i) => `{"id":"d${i}","text":"${tag} record ${i} of the file"}\n`).join(
    '',
  );

/**
 * Issue 13 on the wire: an object planned into units and overwritten (shorter) before the
 * units are worked. S3 (fauxqs) is read through the real SDK; fauxqs keeps no versions, so
 * the units pin the ETag and read with If-Match.
 */
describe('an input overwritten in S3 while its run is in flight (fauxqs)', () => {
  let local: LocalAws;
  let s3: S3Client;
  let dir: string;

  beforeAll(async () => {
    local = await startLocalAws({ bucket: 'sluice-pin', maxAttempts: 1 });
    s3 = local.clients.s3;
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-pin-wire-'));
  });

  afterAll(async () => {
    await local?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('fails every unit with the reason instead of succeeding with the records of the new object', async () => {
    const config = pipelineConfig({
      chunking: { maxTokens: 32, overlapTokens: 4 },
      planning: { targetUnitTokens: 2_000 },
      workers: { maxConcurrency: 4, maxReceiveCount: 3 },
      incremental: { enabled: false },
    });
    const store = new S3ObjectStore({ client: s3, bucket: 'sluice-pin' });
    const runs = new LocalRunStore(dir);
    const deps = { store, runs, endpoint: new VectorOfLength(), tokenCounter: new EstimatingTokenCounter() };
    const queue: LocalWorkQueue = new LocalWorkQueue({
      maxReceiveCount: config.workers.maxReceiveCount,
      concurrency: 2,
      onUnit: async (unit, delivery) => {
        await processUnit({ ...deps, queue }, config, unit, delivery);
      },
      onFinalize: async (runId) => {
        await finalizeRun(
          { store, runs, queue, pipelines: new Map([[config.name, config]]) },
          runId,
          new Date(),
        );
      },
      onDeadLetter: async (letter) => {
        if ('unitId' in letter.body)
          await deadLetterUnit({ store, runs, queue }, letter.body, { reason: letter.error });
      },
    });
    await store.put(KEY, records(500, 'first'));

    const plan = await planRun({ store, runs, queue }, config, {
      runId: 'r-20260101T000000Z-00pin1',
      trigger: 's3',
      keys: [KEY],
      now: new Date(),
    });
    await store.put(KEY, records(300, 'second'));
    await queue.drain();

    expect(plan.units.length).toBeGreaterThan(2);
    expect(plan.units.every((u) => u.sourceVersion?.startsWith('e:"'))).toBe(true);
    const units = await runs.listUnits(plan.run.runId);
    expect(units.map((u) => u.status)).toEqual(plan.units.map(() => 'failed'));
    for (const unit of units) {
      expect(unit.lastError).toContain(`s3://sluice-pin/${KEY} changed since the run was planned`);
      expect(unit.records).toBeNull();
    }
    const summary = await runs.getSummary(plan.run.runId);
    expect(summary).toMatchObject({ status: 'failed', counts: { records: 0, failedUnits: units.length } });
  });

  it('pins the inputs of a run over a prefix from the listing, as a HEAD would', async () => {
    const config = pipelineConfig({ incremental: { enabled: false } });
    const store = new S3ObjectStore({ client: s3, bucket: 'sluice-pin' });
    const runs = new LocalRunStore(path.join(dir, 'prefix'));
    const queue = { sendUnits: async () => {}, requestFinalize: async () => {} };
    await store.put('datasets/pin/a.jsonl', records(5, 'a'));
    await store.put('datasets/pin/b.jsonl', records(7, 'b'));

    const plan = await planRun({ store, runs, queue }, config, {
      runId: 'r-20260101T000000Z-00pin2',
      trigger: 'schedule',
      prefix: 'datasets/pin/',
      now: new Date(),
    });

    const pinned = [plan.units[0]!.sourceVersion, ...plan.units[0]!.packed.map((f) => f.version)];
    const heads = await Promise.all(
      ['datasets/pin/a.jsonl', 'datasets/pin/b.jsonl'].map((k) => store.head(k)),
    );
    expect(pinned.sort()).toEqual(heads.map((h) => h!.version).sort());
  });
});
