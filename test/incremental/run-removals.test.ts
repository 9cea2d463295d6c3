import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRunStore } from '../../shared/adapters/local/local-run-store.ts';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { EstimatingTokenCounter } from '../../shared/embedding/token-counter.ts';
import { ModelError } from '../../shared/errors/errors.ts';
import { finalizeRun } from '../../shared/finalize/finalize-run.ts';
import {
  deletedSourcesKey,
  prefixSourcesKey,
  readPrefixSources,
} from '../../shared/incremental/deleted-sources.ts';
import { readUnitDocList, sectionDocs } from '../../shared/incremental/unit-doc-list.ts';
import { tablePartitionPrefix } from '../../shared/output/keys.ts';
import { planRun } from '../../shared/plan/plan-run.ts';
import type { CallStats, EmbeddingEndpoint } from '../../shared/ports/embedding-endpoint.ts';
import { processUnit } from '../../shared/work/process-unit.ts';
import { jsonl, pipelineConfig } from '../core/factories.ts';
import { lengthVector } from '../support/length-vector.ts';
import { currentManifest, RecordingQueue, runIdOf, stopAfterAsks } from './factories.ts';

/** Embeds anything but a text that says REFUSE, which the model rejects (a 4xx). */
class RefusingEndpoint implements EmbeddingEndpoint {
  async embed(inputs: readonly string[], stats: CallStats): Promise<number[][]> {
    stats.endpointCalls += 1;
    if (inputs.some((t) => t.includes('REFUSE'))) throw new ModelError('input refused', 400);
    return inputs.map((t) => lengthVector(t));
  }
}

const docsOf = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${String(i).padStart(3, '0')}`,
    text: `Paragraph ${i} of ${prefix}. `.repeat(1 + (i % 5) * 30),
  }));

describe('documents gone from a re-dropped source, through plan, work and finalize', () => {
  let dir: string;
  let store: MemoryObjectStore;
  let runs: LocalRunStore;
  let queue: RecordingQueue;
  const config = pipelineConfig({
    chunking: { maxTokens: 64, overlapTokens: 8 },
    batching: { maxBatchTokens: 4096, maxBatchSize: 8, sortWindow: 16 },
  });
  const deps = () => ({
    store,
    runs,
    queue,
    endpoint: new RefusingEndpoint(),
    tokenCounter: new EstimatingTokenCounter(),
  });
  const finalize = (runId: string) =>
    finalizeRun(
      {
        store,
        runs,
        pipelines: new Map([[config.name, config]]),
        sourceManifests: { segmentDocs: 7, readWindowBytes: 256 },
      },
      runId,
      new Date('2026-03-01T12:00:00Z'),
    );

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-removals-'));
    store = new MemoryObjectStore(97);
    runs = new LocalRunStore(dir);
    queue = new RecordingQueue();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function plan(runId: string, files: Record<string, string>): Promise<readonly WorkUnit[]> {
    for (const [key, body] of Object.entries(files)) await store.put(key, body);
    const { units } = await planRun({ store, runs, queue }, config, {
      runId,
      trigger: 'local',
      keys: Object.keys(files),
      now: new Date('2026-03-01T10:00:00Z'),
    });
    queue.units = [];
    return units;
  }

  /** Chunks per document in a run's embeddings parts. */
  async function chunksByDoc(runId: string): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const prefix = tablePartitionPrefix('embeddings', config.name, runId);
    for (const [key, body] of store.objects) {
      if (!key.startsWith(`${prefix}${runId}-`)) continue;
      for (const row of await parquetReadObjects({ file: body.slice().buffer })) {
        const id = String(row.doc_id);
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    return counts;
  }

  async function listed(runId: string, unitId: string): Promise<Record<string, string[]>> {
    const list = await readUnitDocList(store, config.name, runId, unitId);
    const out: Record<string, string[]> = {};
    for (const section of list!.header.sections) {
      out[section.sourceKey] = [];
      for await (const doc of sectionDocs(store, list!, section)) out[section.sourceKey]!.push(doc.id);
    }
    return out;
  }

  it('a checkpointed unit lists what it wrote and its continuation the rest; rejected and refused documents are not listed', async () => {
    const key = 'incoming/docs/big.jsonl';
    const docs = docsOf('d', 40);
    docs[7] = { id: 'd007', text: 'Please REFUSE this one.' };
    const body = jsonl([...docs.slice(0, 20), '{"id": "broken', ...docs.slice(20)]);
    const [unit] = await plan(runIdOf(1), { [key]: body });
    await processUnit(deps(), config, unit!, { isLastAttempt: false, ...stopAfterAsks(14) });
    const continuation = queue.units[0]!;
    await processUnit(deps(), config, continuation, { isLastAttempt: false });
    const first = await finalize(runIdOf(1));

    const ids = docs.map((d) => d.id).filter((id) => id !== 'd007');
    expect(await listed(runIdOf(1), unit!.unitId)).toEqual({ [key]: ids.slice(0, 14) });
    expect(await listed(runIdOf(1), continuation.unitId)).toEqual({ [key]: ids.slice(14) });
    expect(first).toMatchObject({ counts: { rejected: 2, removedDocuments: 0, removedChunks: 0 } });
    const chunks = await chunksByDoc(runIdOf(1));
    expect((await currentManifest(store, key)).map(([id]) => id)).toEqual(ids);
    expect(Object.fromEntries(await currentManifest(store, key))).toEqual(Object.fromEntries(chunks));

    // Re-dropped without 5 documents (and with d007 now accepted): those 5 count, with their chunks.
    const gone = new Set(['d000', 'd013', 'd014', 'd025', 'd039']);
    const kept = docsOf('d', 40).filter((d) => !gone.has(d.id));
    const [again] = await plan(runIdOf(2), { [key]: jsonl(kept) });
    await processUnit(deps(), config, again!, { isLastAttempt: false, ...stopAfterAsks(5) });
    for (const next of queue.units) await processUnit(deps(), config, next, { isLastAttempt: false });
    const second = await finalize(runIdOf(2));
    const expected = [...gone].reduce((sum, id) => sum + chunks.get(id)!, 0);
    expect(second).toMatchObject({
      status: 'succeeded',
      counts: { removedDocuments: 5, removedChunks: expected },
      sources: { compared: 1, skipped: 0, removedDocuments: 5, removedChunks: expected },
    });
  });

  it('packed small files: each file has its own manifest, and a document moved between them is not removed', async () => {
    const files = {
      'incoming/docs/p0.jsonl': jsonl(docsOf('a', 6)),
      'incoming/docs/p1.jsonl': jsonl(docsOf('b', 6)),
      'incoming/docs/p2.jsonl': jsonl(docsOf('c', 6)),
    };
    const units = await plan(runIdOf(1), files);
    expect(units).toHaveLength(1);
    await processUnit(deps(), config, units[0]!, { isLastAttempt: false });
    await finalize(runIdOf(1));
    const chunks = await chunksByDoc(runIdOf(1));

    // p1 loses b001 (deleted) and b002 (moved to p2); p0 and p2 keep theirs.
    const b = docsOf('b', 6);
    const again = await plan(runIdOf(2), {
      ...files,
      'incoming/docs/p1.jsonl': jsonl(b.filter((d) => d.id !== 'b001' && d.id !== 'b002')),
      'incoming/docs/p2.jsonl': jsonl([...docsOf('c', 6), b[2]!]),
    });
    await processUnit(deps(), config, again[0]!, { isLastAttempt: false });
    const summary = await finalize(runIdOf(2));

    expect(summary).toMatchObject({
      counts: { removedDocuments: 1, removedChunks: chunks.get('b001') },
      sources: { compared: 3, skipped: 0 },
    });
    expect((await currentManifest(store, 'incoming/docs/p2.jsonl')).map(([id]) => id)).toContain('b002');
  });

  it('a source deleted from the bucket: a notice naming it plans a run that removes its documents', async () => {
    const files = {
      'incoming/docs/p0.jsonl': jsonl(docsOf('a', 6)),
      'incoming/docs/p1.jsonl': jsonl(docsOf('b', 6)),
    };
    const [unit] = await plan(runIdOf(1), files);
    await processUnit(deps(), config, unit!, { isLastAttempt: false });
    await finalize(runIdOf(1));
    const chunks = await chunksByDoc(runIdOf(1));

    // p1 is deleted; p0 is named by a stale deletion notice but exists (uploaded again since).
    store.objects.delete('incoming/docs/p1.jsonl');
    const planned = await planRun({ store, runs, queue }, config, {
      runId: runIdOf(2),
      trigger: 's3',
      removedKeys: ['incoming/docs/p1.jsonl', 'incoming/docs/p0.jsonl'],
      now: new Date('2026-03-01T10:00:02Z'),
    });
    expect(planned).toMatchObject({ units: [], missing: ['incoming/docs/p1.jsonl'], inputCount: 0 });
    const summary = await finalize(runIdOf(2));

    const removedChunks = docsOf('b', 6).reduce((sum, d) => sum + chunks.get(d.id)!, 0);
    expect(summary).toMatchObject({
      status: 'succeeded',
      counts: { records: 0, removedDocuments: 6, removedChunks },
      sources: { compared: 1, deleted: 1, skipped: 0 },
    });
    expect(await currentManifest(store, 'incoming/docs/p1.jsonl')).toEqual([]);
    expect((await currentManifest(store, 'incoming/docs/p0.jsonl')).map(([id]) => id)).toEqual(
      docsOf('a', 6).map((d) => d.id),
    );
  });

  it('a run over a prefix counts the files gone since the last run over it as deleted sources', async () => {
    const prefix = 'datasets/docs/';
    const files = {
      [`${prefix}f0.jsonl`]: jsonl(docsOf('x', 5)),
      [`${prefix}f1.jsonl`]: jsonl(docsOf('y', 5)),
      [`${prefix}nested/f2.jsonl`]: jsonl(docsOf('z', 5)),
    };
    for (const [key, body] of Object.entries(files)) await store.put(key, body);
    const scheduled = async (n: number) => {
      const planned = await planRun({ store, runs, queue }, config, {
        runId: runIdOf(n),
        trigger: 'schedule',
        prefix,
        now: new Date(Date.UTC(2026, 2, 1, 10, 0, n)),
      });
      for (const unit of queue.units) await processUnit(deps(), config, unit, { isLastAttempt: false });
      queue.units = [];
      return { planned, summary: await finalize(runIdOf(n)) };
    };
    const first = await scheduled(1);
    expect(first.planned.missing).toEqual([]);
    const chunks = await chunksByDoc(runIdOf(1));

    store.objects.delete(`${prefix}f1.jsonl`);
    const second = await scheduled(2);

    expect(second.planned.missing).toEqual([`${prefix}f1.jsonl`]);
    expect(second.summary).toMatchObject({
      counts: {
        removedDocuments: 5,
        removedChunks: docsOf('y', 5).reduce((sum, d) => sum + chunks.get(d.id)!, 0),
      },
      sources: { compared: 3, deleted: 1, skipped: 0 },
    });
    // The next run over the prefix lists what is there now: nothing more is deleted.
    const third = await scheduled(3);
    expect(third.planned.missing).toEqual([]);
    expect(third.summary?.counts.removedDocuments).toBe(0);

    // An unreadable list is replaced; what it would have said goes uncounted.
    await store.put(prefixSourcesKey(config.name, prefix), '{"format": "something else"}');
    store.objects.delete(`${prefix}f0.jsonl`);
    expect((await scheduled(4)).planned.missing).toEqual([]);
    expect(await readPrefixSources(store, config.name, prefix)).toEqual([`${prefix}nested/f2.jsonl`]);
  });

  it('a pipeline that is not incremental writes no doc list and keeps no manifest', async () => {
    const plain = pipelineConfig({ incremental: { enabled: false } });
    const key = 'incoming/docs/plain.jsonl';
    await store.put(key, jsonl(docsOf('p', 5)));
    const { units } = await planRun({ store, runs, queue }, plain, {
      runId: runIdOf(1),
      trigger: 'local',
      keys: [key],
      now: new Date('2026-03-01T10:00:00Z'),
    });
    await processUnit(deps(), plain, units[0]!, { isLastAttempt: false });
    const summary = await finalizeRun(
      { store, runs, pipelines: new Map([[plain.name, plain]]) },
      runIdOf(1),
      new Date(),
    );
    expect(summary?.sources).toBeUndefined();
    expect(summary?.counts.removedDocuments).toBeUndefined();

    // A source it was told was deleted is not recorded either: it has nothing to count.
    await planRun({ store, runs, queue }, plain, {
      runId: runIdOf(2),
      trigger: 's3',
      removedKeys: ['incoming/docs/gone.jsonl'],
      now: new Date('2026-03-01T10:00:02Z'),
    });
    expect(store.objects.has(deletedSourcesKey(plain.name, runIdOf(2)))).toBe(false);
    await planRun({ store, runs, queue }, plain, {
      runId: runIdOf(3),
      trigger: 'schedule',
      prefix: 'incoming/docs/',
      now: new Date('2026-03-01T10:00:03Z'),
    });
    expect(store.objects.has(prefixSourcesKey(plain.name, 'incoming/docs/'))).toBe(false);
    expect([...store.objects.keys()].filter((k) => /^runs\/docs\/(r-[^/]+\/docs|sources)\//.test(k))).toEqual(
      [],
    );
  });
});
