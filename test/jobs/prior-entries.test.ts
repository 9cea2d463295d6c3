import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import { FingerprintBlocks } from '../../shared/jobs/embed/packed-docs.ts';
import { PendingDocUpdates } from '../../shared/jobs/embed/pending-doc-updates.ts';
import { PriorEntries, replacedEntriesKey } from '../../shared/jobs/embed/prior-entries.ts';
import type { IndexedDoc } from '../../shared/ports/chunk-index.ts';

const RUN = 'r-20261110T010000Z-000009';
const OLD = 'r-20261102T010000Z-000001';
const fingerprints = (chunks: number, fill: number) => new Uint8Array(16 * chunks).fill(fill);
const entry = (docId: string, chunks: number, runId: string, unitId = 'u00000'): IndexedDoc => ({
  docId,
  chunkCount: chunks,
  sourceKey: 'incoming/docs/a.jsonl',
  chunks: { fingerprints: fingerprints(chunks, chunks), at: { runId, unitId, firstRow: 7 * chunks } },
});

describe('FingerprintBlocks', () => {
  it('gives back what it stored by one number, a document longer than a block in one of its own', () => {
    const blocks = new FingerprintBlocks();
    const sizes = [1, 3, 16_384, 20_000, 2, 16_383, 5];
    const refs = sizes.map((chunks, i) => blocks.store(fingerprints(chunks, i + 1)));
    expect(refs.every((ref) => ref > 0)).toBe(true);
    sizes.forEach((chunks, i) => {
      // Compared as buffers: toEqual walks 320 KB element by element for seconds.
      expect(Buffer.from(blocks.read(refs[i]!, chunks)).equals(fingerprints(chunks, i + 1)), `doc ${i}`).toBe(
        true,
      );
    });
  });
});

describe('PendingDocUpdates and the entries they replace', () => {
  it('gives each slice the entries its documents replace, and puts a restored entry back as it was', () => {
    const pending = new PendingDocUpdates();
    const replaced = entry('d1\ud800', 2, OLD);
    pending.add({
      docId: 'd1\ud800',
      chunkCount: 3,
      sourceKey: 's',
      chunks: { fingerprints: fingerprints(3, 9), firstRow: 4 },
      replaces: replaced,
    });
    pending.add({ docId: 'd2', chunkCount: 1, sourceKey: 's' });
    const kept = { docId: 'd3', chunkCount: 0 };
    pending.add({ docId: 'd3', chunkCount: 1, sourceKey: 's', replaces: kept });
    const fresh = entry('d4', 2, OLD, 'u00003');
    pending.add({ docId: 'd4', chunkCount: 2, sourceKey: 's', replaces: fresh, restores: true });
    // Refreshed: the same fingerprints as its entry's, kept once.
    const refreshed = entry('d5', 2, OLD, 'u00004');
    pending.add({
      docId: 'd5',
      chunkCount: 2,
      sourceKey: 's',
      chunks: { fingerprints: fingerprints(2, 2), firstRow: 9 },
      replaces: refreshed,
    });
    const [slice, ...rest] = [...pending.recordSlices(RUN, 'u00001')];
    expect(rest).toEqual([]);
    expect(slice!.docs).toEqual([
      {
        docId: 'd1\ud800',
        chunkCount: 3,
        sourceKey: 's',
        chunks: { fingerprints: fingerprints(3, 9), at: { runId: RUN, unitId: 'u00001', firstRow: 4 } },
      },
      { docId: 'd2', chunkCount: 1, sourceKey: 's' },
      { docId: 'd3', chunkCount: 1, sourceKey: 's' },
      fresh,
      {
        docId: 'd5',
        chunkCount: 2,
        sourceKey: 's',
        chunks: { fingerprints: fingerprints(2, 2), at: { runId: RUN, unitId: 'u00001', firstRow: 9 } },
      },
    ]);
    expect(slice!.replacing).toEqual(
      new Map<string, IndexedDoc>([
        ['d1\ud800', replaced],
        ['d3', kept],
        ['d4', fresh],
        ['d5', refreshed],
      ]),
    );
    expect([...pending.replacedEntries()]).toEqual([replaced, kept, fresh, refreshed]);
  });
});

describe('PriorEntries', () => {
  it('writes the entries a unit replaces and reads them back for an entry of this run, once per unit', async () => {
    const store = new MemoryObjectStore();
    const pending = new PendingDocUpdates();
    const before = [
      entry('a', 2, OLD),
      { docId: 'b', chunkCount: 4 },
      { ...entry('c', 1, OLD), sourceKey: undefined },
    ];
    for (const doc of before) pending.add({ docId: doc.docId, chunkCount: 1, sourceKey: 's', replaces: doc });
    pending.add({ docId: 'new', chunkCount: 1, sourceKey: 's' });
    await new PriorEntries(store, 'docs', RUN, 'u00001').write(pending);
    expect(store.objects.has(replacedEntriesKey('docs', RUN, 'u00001'))).toBe(true);

    let gets = 0;
    const counting = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'get') gets += 1;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const prior = new PriorEntries(counting, 'docs', RUN, 'u00001');
    const ofThisRun = (docId: string, unitId = 'u00001') => entry(docId, 1, RUN, unitId);
    const older = entry('older', 3, OLD);
    const { previous, rewritten } = await prior.before(
      new Map([
        ['a', ofThisRun('a')],
        ['b', ofThisRun('b')],
        ['c', ofThisRun('c')],
        ['new', ofThisRun('new')],
        ['older', older],
        ['elsewhere', ofThisRun('elsewhere', 'u00002')],
      ]),
    );
    expect(previous).toEqual(
      new Map<string, IndexedDoc>([
        ['a', before[0]!],
        ['b', before[1]!],
        ['c', { docId: 'c', chunkCount: 1, chunks: before[2]!.chunks! }],
        ['older', older],
      ]),
    );
    expect([...rewritten].sort()).toEqual(['a', 'b', 'c', 'elsewhere', 'new']);
    // One GET per unit named (u00002 wrote none: its documents had no entry before).
    expect(gets).toBe(2);
    await prior.before(new Map([['a', ofThisRun('a')]]));
    expect(gets).toBe(2);
  });

  it('a retry keeps what the earlier delivery wrote and adds its own, and writes nothing when nothing was replaced', async () => {
    const store = new MemoryObjectStore();
    const first = new PendingDocUpdates();
    first.add({ docId: 'x', chunkCount: 1, sourceKey: 's', replaces: entry('x', 2, OLD) });
    first.add({ docId: 'y', chunkCount: 1, sourceKey: 's', replaces: entry('y', 3, OLD) });
    await new PriorEntries(store, 'docs', RUN, 'u00001').write(first);

    // The retry stops after x, and meets z, which had an entry the first delivery never reached.
    const retry = new PriorEntries(store, 'docs', RUN, 'u00001');
    const { previous } = await retry.before(new Map([['x', entry('x', 1, RUN, 'u00001')]]));
    const again = new PendingDocUpdates();
    again.add({ docId: 'x', chunkCount: 1, sourceKey: 's', replaces: previous.get('x')! });
    again.add({ docId: 'z', chunkCount: 1, sourceKey: 's', replaces: entry('z', 4, OLD) });
    await retry.write(again);
    const next = new PriorEntries(store, 'docs', RUN, 'u00002');
    const found = await next.before(
      new Map(['x', 'y', 'z'].map((id) => [id, entry(id, 1, RUN, 'u00001')] as const)),
    );
    expect(found.previous).toEqual(
      new Map(['x', 'y', 'z'].map((id, i) => [id, entry(id, i + 2, OLD)] as const)),
    );

    const none = new MemoryObjectStore();
    const unchanged = new PendingDocUpdates();
    unchanged.add({ docId: 'n', chunkCount: 1, sourceKey: 's' });
    await new PriorEntries(none, 'docs', RUN, 'u00001').write(unchanged);
    expect(none.objects.size).toBe(0);
  });
});
