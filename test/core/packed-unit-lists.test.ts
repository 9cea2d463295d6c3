import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../shared/adapters/local/memory-object-store.ts';
import type { WorkUnit } from '../../shared/domain/types.ts';
import { PackedEntries } from '../../shared/duplicates/packed-entries.ts';
import { readUnitIdList, UnitIdList, unitIdListKey } from '../../shared/duplicates/unit-id-list.ts';
import { compareDocIds, formatDocLine } from '../../shared/incremental/doc-lines.ts';
import { readUnitDocList, sectionDocs, UnitDocList } from '../../shared/incremental/unit-doc-list.ts';
import { putDocList } from '../../shared/jobs/embed/embed-stage.ts';
import { PendingDocUpdates } from '../../shared/jobs/embed/embed-unit.ts';
import { unitDocListKey } from '../../shared/output/keys.ts';
import type { ObjectWrite } from '../../shared/ports/object-store.ts';
import { putIdList } from '../../shared/work/unit-output.ts';

const RUN_ID = 'r-20261207T000000Z-abcdef';

/** Ids as inputs hold them: plain, astral characters, lone surrogates, empty. */
const anyId = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
  fc.constantFrom('a', 'ab', '\uffff', '\ud83d\ude00', '\ud800', '\udc00', ''),
);
const anySource = fc.constantFrom(
  'incoming/docs/a.jsonl',
  'incoming/docs/b.jsonl',
  'incoming/docs/\u00e9.jsonl',
);

interface IdRecord {
  id: string;
  sourceKey: string;
  byteOffset: number;
  line: number;
  rows: number;
  carried: number;
}

const idRecord = fc.record({
  id: anyId,
  sourceKey: anySource,
  byteOffset: fc.nat({ max: 2 ** 40 }),
  line: fc.nat({ max: 2 ** 33 }),
  rows: fc.integer({ min: 1, max: 40 }),
  carried: fc.nat({ max: 40 }),
});

/** The id list as it was written when every entry was a string and an array slot (the format is unchanged). */
function idListModel(records: readonly IdRecord[], unitId: string): string {
  const order = records.map((_, i) => i);
  order.sort(
    (a, b) =>
      compareDocIds(records[a]!.id, records[b]!.id) ||
      compareDocIds(records[a]!.sourceKey, records[b]!.sourceKey) ||
      records[a]!.byteOffset - records[b]!.byteOffset,
  );
  let text = `${JSON.stringify({ format: 'sluice-unit-ids/1', runId: RUN_ID, unitId, records: order.length })}\n`;
  for (const i of order) {
    const r = records[i]!;
    text += `${JSON.stringify([r.id, r.sourceKey, r.byteOffset, r.line, i, r.rows, r.carried])}\n`;
  }
  return text;
}

/** The doc list as it was written from a map of maps (the format is unchanged). */
function docListModel(
  adds: readonly { sourceKey: string; id: string; chunks: number }[],
  noted: readonly string[],
): string {
  const sources = new Map<string, Map<string, number>>(noted.map((s) => [s, new Map()]));
  for (const { sourceKey, id, chunks } of adds) {
    let docs = sources.get(sourceKey);
    if (!docs) {
      docs = new Map();
      sources.set(sourceKey, docs);
    }
    docs.set(id, (docs.get(id) ?? 0) + chunks);
  }
  const sections = [];
  let body = '';
  for (const [sourceKey, docs] of sources) {
    const start = Buffer.byteLength(body);
    let chunks = 0;
    const ids = [...docs.keys()].sort(compareDocIds);
    for (const id of ids) {
      chunks += docs.get(id)!;
      body += formatDocLine(id, docs.get(id)!);
    }
    sections.push({ sourceKey, docs: ids.length, chunks, start, end: Buffer.byteLength(body) });
  }
  return `${JSON.stringify({ format: 'sluice-unit-docs/1', runId: RUN_ID, unitId: 'u0', sections })}\n${body}`;
}

/** A store whose piecewise writes note each piece, and whose puts note their keys. */
class NotingStore extends MemoryObjectStore {
  readonly pieces = new Map<string, number[]>();
  readonly puts: string[] = [];
  override async put(key: string, body: Uint8Array | string): Promise<void> {
    this.puts.push(key);
    await super.put(key, body);
  }
  async openWrite(key: string): Promise<ObjectWrite> {
    const parts: Uint8Array[] = [];
    const pieces: number[] = [];
    this.pieces.set(key, pieces);
    return {
      write: async (bytes) => {
        pieces.push(bytes.byteLength);
        parts.push(bytes);
      },
      finish: async () => {
        await super.put(key, Buffer.concat(parts));
      },
      abort: async () => {},
    };
  }
}

const unit = { pipeline: 'docs', runId: RUN_ID, unitId: 'u0' } as WorkUnit;

describe('PackedEntries', () => {
  it('gives back every id and number it was given, and orders ids as compareDocIds does', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(anyId, fc.double({ noNaN: true })), { maxLength: 3000 }), (items) => {
        const packed = new PackedEntries(['f64']);
        for (const [id, value] of items) packed.push(id, [value]);
        expect(packed.size).toBe(items.length);
        items.forEach(([id, value], i) => {
          expect(packed.id(i)).toBe(id);
          expect(packed.idEquals(i, id)).toBe(true);
          expect(packed.value(i, 0)).toBe(value);
        });
        for (let i = 1; i < items.length; i += 1)
          expect(Math.sign(packed.compareIds(i - 1, i))).toBe(
            Math.sign(compareDocIds(items[i - 1]![0], items[i]![0])),
          );
      }),
      { numRuns: 60 },
    );
  });

  it('keeps a long id whole', () => {
    const packed = new PackedEntries([]);
    const id = 'x\ud83d\ude00'.repeat(20_000);
    packed.push(id, []);
    expect(packed.id(0)).toBe(id);
  });
});

describe('UnitIdList', () => {
  it('writes the lines one string and array slot per entry wrote, for any ids, sources and numbers', () => {
    fc.assert(
      fc.property(fc.array(idRecord, { maxLength: 300 }), (records) => {
        const list = new UnitIdList();
        for (const r of records) list.add(r);
        expect(list.serialize(RUN_ID, 'u0')).toBe(idListModel(records, 'u0'));
      }),
      { numRuns: 150 },
    );
  });

  it('holds a short-record unit in about 50 bytes an entry, not an object and a string each', () => {
    const list = new UnitIdList();
    for (let i = 0; i < 100_000; i += 1)
      list.add({
        id: `g${i}`,
        sourceKey: 'incoming/docs/r.jsonl',
        byteOffset: i * 40,
        line: i + 1,
        rows: 1,
        carried: 0,
      });
    // 40 bytes of numbers and id place, the id's 6 bytes, and at most one block not yet filled.
    expect(list.heldBytes / list.size).toBeLessThan(64);
  });

  it('is written to the store block by block, and reads back as written', async () => {
    const store = new NotingStore();
    const list = new UnitIdList();
    const records = Array.from({ length: 20_000 }, (_, i) => ({
      id: `g${(i * 7919) % 20_000}`,
      sourceKey: 'incoming/docs/r.jsonl',
      byteOffset: i * 40,
      line: i + 1,
      rows: 1,
      carried: i % 3 === 0 ? 1 : 0,
    }));
    for (const r of records) list.add(r);
    await putIdList(store, unit, list);
    const key = unitIdListKey('docs', RUN_ID, 'u0');
    expect(store.puts).not.toContain(key);
    const pieces = store.pieces.get(key)!;
    // A header, then blocks of 4,096 lines: never the whole list in one piece.
    expect(pieces.length).toBe(1 + Math.ceil(20_000 / 4096));
    expect(Math.max(...pieces)).toBeLessThan(4096 * 64);
    expect(Buffer.from(store.objects.get(key)!).toString('utf8')).toBe(idListModel(records, 'u0'));
    let n = 0;
    for await (const entry of readUnitIdList(store, 'docs', RUN_ID, 'u0')) {
      expect(entry.id).toBe(records[entry.ordinal]!.id);
      n += 1;
    }
    expect(n).toBe(20_000);
  });
});

describe('UnitDocList', () => {
  const add = fc.record({ sourceKey: anySource, id: anyId, chunks: fc.integer({ min: 1, max: 5 }) });

  it('writes what a map of chunk counts per source wrote: repeats summed, sources in the order read', () => {
    fc.assert(
      fc.property(
        fc.array(add, { maxLength: 300 }),
        fc.option(anySource, { nil: undefined }),
        (adds, first) => {
          const list = new UnitDocList();
          if (first !== undefined) list.noteSource(first);
          for (const { sourceKey, id, chunks } of adds) list.add(sourceKey, id, chunks);
          const expected = docListModel(adds, first === undefined ? [] : [first]);
          expect(list.serialize(RUN_ID, 'u0').toString('utf8')).toBe(expected);
          expect(list.documents).toBe(new Set(adds.map((a) => `${a.sourceKey}\n${a.id}`)).size);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('is written to the store block by block, its sections read back as the header places them', async () => {
    const store = new NotingStore();
    const list = new UnitDocList();
    list.noteSource('incoming/docs/empty.jsonl');
    for (let i = 0; i < 12_000; i += 1)
      list.add(i % 2 ? 'incoming/docs/b.jsonl' : 'incoming/docs/a.jsonl', `d${i}`);
    for (let i = 0; i < 100; i += 1) list.add('incoming/docs/a.jsonl', `d${i * 2}`, 2);
    await putDocList(store, unit, list);
    const key = unitDocListKey('docs', RUN_ID, 'u0');
    expect(store.puts).not.toContain(key);
    expect(store.pieces.get(key)!.length).toBe(1 + Math.ceil(12_000 / 4096));
    const stored = (await readUnitDocList(store, 'docs', RUN_ID, 'u0'))!;
    expect(stored.header.sections.map((s) => [s.sourceKey, s.docs, s.chunks])).toEqual([
      ['incoming/docs/empty.jsonl', 0, 0],
      ['incoming/docs/a.jsonl', 6000, 6200],
      ['incoming/docs/b.jsonl', 6000, 6000],
    ]);
    const a = [];
    for await (const doc of sectionDocs(store, stored, stored.header.sections[1]!)) a.push(doc);
    expect(a[0]).toEqual({ id: 'd0', chunks: 3 });
    expect(a.map((d) => d.id)).toEqual([...a.map((d) => d.id)].sort(compareDocIds));
  });
});

describe('PendingDocUpdates', () => {
  it('gives back its entries in slices, in the order added, pointing at the unit part', () => {
    const pending = new PendingDocUpdates();
    const fingerprintsOf = (i: number, chunks: number) => new Uint8Array(16 * chunks).fill(i % 251);
    for (let i = 0; i < 5000; i += 1) {
      const chunkCount = (i % 4) + 1;
      const doc = { docId: `d${i}\ud800`, chunkCount, sourceKey: i < 10 ? 's0' : 's1' };
      // Every seventh document over the cap: recorded without fingerprints.
      pending.add(
        i % 7 === 0
          ? doc
          : { ...doc, chunks: { fingerprints: fingerprintsOf(i, chunkCount), firstRow: 3 * i } },
      );
    }
    const slices = [...pending.slices('run-1', 'u-2', 2048)];
    expect(slices.map((s) => s.length)).toEqual([2048, 2048, 904]);
    const all = slices.flat();
    expect(all[0]).toEqual({ docId: 'd0\ud800', chunkCount: 1, sourceKey: 's0' });
    expect(all[3]).toEqual({
      docId: 'd3\ud800',
      chunkCount: 4,
      sourceKey: 's0',
      chunks: { fingerprints: fingerprintsOf(3, 4), at: { runId: 'run-1', unitId: 'u-2', firstRow: 9 } },
    });
    expect(all[4999]!.chunks).toEqual({
      fingerprints: fingerprintsOf(4999, 4),
      at: { runId: 'run-1', unitId: 'u-2', firstRow: 14997 },
    });
  });

  it('holds a one-chunk document in about 60 bytes: packed numbers and fingerprint blocks, no object each', () => {
    const pending = new PendingDocUpdates();
    const fingerprints = new Uint8Array(16).fill(7);
    for (let i = 0; i < 100_000; i += 1)
      pending.add({
        docId: `doc-${i}`,
        chunkCount: 1,
        sourceKey: 's',
        chunks: { fingerprints, firstRow: i },
      });
    // 8 words of numbers, ~9 bytes of id, 16 of fingerprint, and the last blocks' slack.
    expect(pending.heldBytes / pending.size).toBeLessThan(68);
  });
});
