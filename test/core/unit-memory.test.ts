import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { ChunkIndex, IndexedDoc } from '../../shared/ports/chunk-index.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import type { ObjectWrite } from '../../shared/ports/object-store.ts';
import type { WorkQueue } from '../../shared/ports/work-queue.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from './factories.ts';

const RUN_ID = 'r-20261207T000000Z-abcdef';

/** 384 floats per input that do not compress, as a real model's do not. */
class Endpoint implements EmbeddingEndpoint {
  private seed = 0;
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    stats.endpointCalls += 1;
    return inputs.map(() => {
      this.seed += 384;
      return Array.from({ length: 384 }, (_, i) => Math.sin(this.seed + i));
    });
  }
}

/** A store that writes parts piecewise and notes each piece. */
class PiecewiseStore extends MemoryObjectStore {
  constructor(
    private readonly events: string[],
    readonly pieces: number[],
  ) {
    super();
  }
  async openWrite(key: string): Promise<ObjectWrite> {
    const parts: Uint8Array[] = [];
    return {
      write: async (bytes) => {
        this.events.push('part piece');
        this.pieces.push(bytes.byteLength);
        parts.push(bytes);
      },
      finish: async () => {
        this.events.push('part finished');
        await this.put(key, Buffer.concat(parts));
      },
      abort: async () => {},
    };
  }
}

class NoQueue implements WorkQueue {
  async sendUnits(_units: readonly WorkUnit[]) {}
  async requestFinalize(_runId: string) {}
}

/** Notes, in order, what reaches the chunk index and the store while a unit runs. */
class Journal implements ChunkIndex {
  readonly events: string[] = [];
  async lookupDocs(): Promise<Map<string, IndexedDoc>> {
    return new Map();
  }
  async record(_pipeline: string, docs: readonly IndexedDoc[]) {
    this.events.push(`record ${docs.length} docs`);
  }
}

describe('a unit of short records', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-unit-memory-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('hands its vectors on window by window: the part in pieces, then small index entries in slices', async () => {
    const config = pipelineConfig({
      endpoint: { name: 'test-embed', dimension: 384 },
      batching: { maxBatchTokens: 16384, maxBatchSize: 32, sortWindow: 512 },
    });
    const journal = new Journal();
    const writes: number[] = [];
    const store = new PiecewiseStore(journal.events, writes);
    const records = Array.from({ length: 6000 }, (_, i) => ({ id: `g${i}`, text: `rg text ${i}` }));
    await store.put('incoming/docs/r.jsonl', jsonl(records));
    const runs = new LocalRunStore(dir);
    const queue = new NoQueue();
    const { units } = await planRun({ store, runs, queue }, config, {
      runId: RUN_ID,
      trigger: 'local',
      keys: ['incoming/docs/r.jsonl'],
      now: new Date('2026-12-07T00:00:00Z'),
    });
    expect(units).toHaveLength(1);
    const outcome = await processUnit(
      {
        store,
        runs,
        queue,
        endpoint: new Endpoint(),
        tokenCounter: new EstimatingTokenCounter(),
        chunkIndex: journal,
      },
      config,
      units[0]!,
      { isLastAttempt: false },
    );
    expect(outcome).toMatchObject({ status: 'succeeded', counts: { chunks: 6000, embedded: 6000 } });
    const recorded = journal.events.filter((e) => e.startsWith('record '));
    // No vector reaches the index: one entry per document, in slices, once the part is written
    // (the entries point at its rows)...
    expect(recorded.reduce((sum, e) => sum + Number(e.split(' ')[1]), 0)).toBe(6000);
    for (const e of recorded) expect(Number(e.split(' ')[1])).toBeLessThanOrEqual(2048);
    expect(journal.events.indexOf('part finished')).toBeLessThan(journal.events.indexOf(recorded[0]!));
    // ...which was written in pieces of a few MiB, not at once.
    expect(writes.length).toBeGreaterThan(1);
    expect(Math.max(...writes)).toBeLessThan(8 * 1024 * 1024);
  });
});
