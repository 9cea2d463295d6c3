import {
  appendFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkIndexFileError,
  type CrashPoint,
  LocalChunkIndex,
  type LocalChunkIndexOptions,
  sha1Hash52,
} from '../../shared/adapters/local/local-chunk-index.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import type { IndexedChunk } from '../../shared/ports/chunk-index.ts';
import { chunkIndexContract } from '../contract/chunk-index-contract.ts';

chunkIndexContract('LocalChunkIndex', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-index-'));
  return { index: new LocalChunkIndex(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

const aChunk = (chunkId: string, version = 1): IndexedChunk => ({
  chunkId,
  textSha256: `sha-${chunkId}-v${version}`,
  embedding: Float32Array.of(version, version / 4, -version),
  runId: `r-${version}`,
});

/** What a lookup should give for a chunk recorded at `version`, in plain values. */
const seen = (chunk: IndexedChunk | undefined) =>
  chunk && { sha: chunk.textSha256, vector: Array.from(chunk.embedding), runId: chunk.runId };

async function inTempDir(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-index-'));
  try {
    await test(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every key hashes to the same slot, so each record hides the one before it. */
const oneSlot: LocalChunkIndexOptions['hashKey'] = () => 7;

describe('LocalChunkIndex on disk', () => {
  it('is read back by a new instance, with the latest of superseded entries', () =>
    inTempDir(async (dir) => {
      const first = new LocalChunkIndex(dir);
      const ids = Array.from({ length: 3000 }, (_, i) => `doc${i}#0`);
      await first.record(
        'docs',
        ids.map((id) => aChunk(id, 1)),
        ids.map((_, i) => ({ docId: `doc${i}`, chunkCount: 1 })),
      );
      const edited = ids.filter((_, i) => i % 2 === 0);
      await first.record(
        'docs',
        edited.map((id) => aChunk(id, 2)),
        [{ docId: 'doc0', chunkCount: 3 }],
      );

      const again = new LocalChunkIndex(dir);
      const found = await again.lookupChunks('docs', ids);
      expect(found.size).toBe(3000);
      expect(seen(found.get('doc0#0'))).toEqual(seen(aChunk('doc0#0', 2)));
      expect(seen(found.get('doc1#0'))).toEqual(seen(aChunk('doc1#0', 1)));
      expect(seen(found.get('doc2998#0'))).toEqual(seen(aChunk('doc2998#0', 2)));
      expect((await again.lookupDocs('docs', ['doc0', 'doc1'])).get('doc0')).toEqual({
        docId: 'doc0',
        chunkCount: 3,
      });
      expect(await again.stats('docs')).toMatchObject({ entries: 6000, keyLines: 7501, generation: 0 });
    }));

  it('ignores a torn last record and a manifest cut short, and appends cleanly after them', () =>
    inTempDir(async (dir) => {
      await new LocalChunkIndex(dir).record('docs', [aChunk('a#0'), aChunk('b#0')], []);
      // A crash mid-append (part of a record) and mid-commit (part of the next manifest).
      await appendFile(path.join(dir, 'docs.jsonl'), '{"c":"z#0","h":"sha-z');
      await appendFile(path.join(dir, 'docs.manifest.tmp'), '{"format":"sluice-chunk-index/2","da');

      const reopened = new LocalChunkIndex(dir);
      expect([...(await reopened.lookupChunks('docs', ['a#0', 'b#0', 'z#0'])).keys()].sort()).toEqual([
        'a#0',
        'b#0',
      ]);
      await reopened.record('docs', [aChunk('c#0'), aChunk('z#0', 2)], []);

      const again = new LocalChunkIndex(dir);
      const found = await again.lookupChunks('docs', ['a#0', 'b#0', 'c#0', 'z#0']);
      expect(found.size).toBe(4);
      expect(seen(found.get('z#0'))).toEqual(seen(aChunk('z#0', 2)));
      expect(await again.stats('docs')).toMatchObject({ entries: 4, keyLines: 4 });

      expect(await readdir(dir)).not.toContain('docs.manifest.tmp');

      // The record after the torn one starts on a line of its own, so the log still scans line by line.
      await rm(path.join(dir, 'docs.manifest'));
      expect((await new LocalChunkIndex(dir).lookupChunks('docs', ['a#0', 'b#0', 'c#0', 'z#0'])).size).toBe(
        4,
      );
    }));

  it('treats a record the data log lost as a miss, not an error', () =>
    inTempDir(async (dir) => {
      await new LocalChunkIndex(dir).record('docs', [aChunk('a#0'), aChunk('b#0')], []);
      // The key line survived but the end of its record did not (power lost before the data reached disk).
      const data = path.join(dir, 'docs.jsonl');
      await truncate(data, (await stat(data)).size - 10);

      const reopened = new LocalChunkIndex(dir);
      expect([...(await reopened.lookupChunks('docs', ['a#0', 'b#0'])).keys()]).toEqual(['a#0']);
      await reopened.record('docs', [aChunk('b#0', 2)], []);
      expect(seen((await new LocalChunkIndex(dir).lookupChunks('docs', ['b#0'])).get('b#0'))).toEqual(
        seen(aChunk('b#0', 2)),
      );
    }));

  it('never gives one key the entry of another whose hash collides with it', () =>
    inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { hashKey: oneSlot });
      await index.record('docs', [aChunk('a#0'), aChunk('b#0')], []);
      expect(seen((await index.lookupChunks('docs', ['a#0', 'b#0'])).get('b#0'))).toEqual(
        seen(aChunk('b#0')),
      );
      expect((await index.lookupChunks('docs', ['a#0'])).size).toBe(0);

      // Documents share the table with chunks: the doc entry now holds the slot.
      await index.record('docs', [], [{ docId: 'a', chunkCount: 1 }]);
      expect((await index.lookupChunks('docs', ['a#0', 'b#0'])).size).toBe(0);
      expect((await index.lookupDocs('docs', ['a', 'b'])).get('a')).toEqual({ docId: 'a', chunkCount: 1 });

      await index.record('docs', [aChunk('a#0', 2)], []);
      const reloaded = new LocalChunkIndex(dir, { hashKey: oneSlot });
      expect(seen((await reloaded.lookupChunks('docs', ['a#0', 'b#0'])).get('a#0'))).toEqual(
        seen(aChunk('a#0', 2)),
      );
      expect((await reloaded.lookupChunks('docs', ['b#0'])).size).toBe(0);
      expect((await reloaded.lookupDocs('docs', ['a'])).size).toBe(0);
    }));

  it('compacts a log that is mostly superseded into a new generation, removing the old one', () =>
    inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { compactMinBytes: 0 });
      const ids = Array.from({ length: 50 }, (_, i) => `doc${i}#0`);
      for (let version = 1; version <= 4; version += 1)
        await index.record(
          'docs',
          ids.map((id) => aChunk(id, version)),
          [],
        );
      // Compacted once the third version made the log three times its live size; the fourth is appended.
      const stats = await index.stats('docs');
      expect(stats.generation).toBe(1);
      expect(stats.dataBytes).toBeLessThanOrEqual(2 * stats.liveBytes);
      expect(stats.compactionFailure).toBeUndefined();
      expect((await readdir(dir)).sort()).toEqual([`docs.${stats.generation}.jsonl`, 'docs.manifest']);
      expect((await stat(path.join(dir, `docs.${stats.generation}.jsonl`))).size).toBe(stats.dataBytes);

      const reloaded = new LocalChunkIndex(dir);
      const found = await reloaded.lookupChunks('docs', ids);
      expect(found.size).toBe(50);
      expect(ids.every((id) => seen(found.get(id))?.sha === aChunk(id, 4).textSha256)).toBe(true);
      expect(await reloaded.stats('docs')).toMatchObject({ entries: 50, generation: 1, keyLines: 100 });
    }));

  it('keeps its records when a compaction fails, and says why', () =>
    inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { compactMinBytes: 0 });
      await index.record('docs', [aChunk('a#0', 1)], []);
      // Where the next generation would go there is a folder, so it cannot be written.
      await mkdir(path.join(dir, 'docs.1.jsonl'));
      await index.record('docs', [aChunk('a#0', 2)], []);
      await index.record('docs', [aChunk('a#0', 3)], []);
      const stats = await index.stats('docs');
      expect(stats).toMatchObject({ generation: 0, keyLines: 3 });
      expect(stats.compactionFailure).toMatch(/docs\.1\.jsonl/);
      expect(seen((await index.lookupChunks('docs', ['a#0'])).get('a#0'))).toEqual(seen(aChunk('a#0', 3)));
      expect(seen((await new LocalChunkIndex(dir).lookupChunks('docs', ['a#0'])).get('a#0'))).toEqual(
        seen(aChunk('a#0', 3)),
      );
    }));

  it('answers lookups while it compacts, from the old log or the new', () =>
    inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { compactMinBytes: 0 });
      const ids = Array.from({ length: 400 }, (_, i) => `doc${i}#0`);
      const recordAll = (version: number) =>
        index.record(
          'docs',
          ids.map((id) => aChunk(id, version)),
          [],
        );
      const lookUp = () => Array.from({ length: 10 }, () => index.lookupChunks('docs', ids));
      await recordAll(1);
      // The third version makes the log three times its live size: compaction runs among the lookups.
      const results = await Promise.all([...lookUp(), recordAll(2), ...lookUp(), recordAll(3), ...lookUp()]);
      for (const found of results) {
        if (!found) continue;
        expect(found.size).toBe(400);
        for (const id of ids)
          expect([1, 2, 3].map((version) => aChunk(id, version).textSha256)).toContain(
            found.get(id)?.textSha256,
          );
      }
      expect((await index.stats('docs')).generation).toBe(1);
      const after = await index.lookupChunks('docs', ids);
      expect(ids.every((id) => after.get(id)?.textSha256 === aChunk(id, 3).textSha256)).toBe(true);
    }));

  it('builds its index from a log written before key files existed', () =>
    inTempDir(async (dir) => {
      const vector = Float32Array.of(0.25, -1);
      const lines = [
        { c: 'a#0', h: 'old', v: Buffer.from(vector.buffer).toString('base64'), r: 'r1' },
        { d: 'a', n: 1 },
        { c: 'a#0', h: 'new', v: Buffer.from(vector.buffer).toString('base64'), r: 'r2' },
      ].map((line) => JSON.stringify(line));
      await writeFile(path.join(dir, 'docs.jsonl'), `${lines.join('\n')}\n{"c":"b#0","h":`);

      const index = new LocalChunkIndex(dir);
      const found = await index.lookupChunks('docs', ['a#0', 'b#0']);
      expect([...found.keys()]).toEqual(['a#0']);
      expect(found.get('a#0')).toMatchObject({ textSha256: 'new', runId: 'r2' });
      expect(Array.from(found.get('a#0')!.embedding)).toEqual([0.25, -1]);
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(1);
      expect(await readFile(path.join(dir, 'docs.manifest'), 'utf8')).toContain('"data":"docs.jsonl"');
      await index.record('docs', [aChunk('b#0')], []);
      expect((await new LocalChunkIndex(dir).lookupChunks('docs', ['a#0', 'b#0'])).size).toBe(2);
    }));

  it('rejects unknown options and hashes outside 52 bits', async () => {
    expect(() => new LocalChunkIndex('x', { hashKeys: oneSlot } as LocalChunkIndexOptions)).toThrow(
      ConfigError,
    );
    expect(() => new LocalChunkIndex('x', { compactMinBytes: -1 })).toThrow(/compactMinBytes/);
    await inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { hashKey: () => 2 ** 52 });
      await expect(index.record('docs', [aChunk('a#0')], [])).rejects.toThrow(/hashKey returned/);
    });
  });

  it('hashes keys to 52-bit integers', () => {
    for (const key of ['c:a#0', 'd:a', 'c:odd id / with spaces#0', '']) {
      const value = sha1Hash52(key);
      expect(Number.isSafeInteger(value) && value >= 0 && value < 2 ** 52).toBe(true);
    }
    expect(sha1Hash52('c:a#0')).not.toBe(sha1Hash52('c:a#1'));
  });

  const threeSlots = (key: string) => (key.charCodeAt(2) + key.length) % 3;
  describe.each([
    ['sha1 (no collisions)', sha1Hash52, undefined],
    ['a 3-slot hash (collisions everywhere)', threeSlots, undefined],
    ['sha1 and a memtable of 2 (runs written and merged all the time)', sha1Hash52, 2],
    ['a 3-slot hash and a memtable of 1', threeSlots, 1],
  ])('with %s', (_, hashKey, memtableEntries) => {
    type Op =
      | { kind: 'chunk'; id: string; version: number }
      | { kind: 'doc'; id: string; count: number }
      | { kind: 'reload' }
      | { kind: 'crash' };
    const chunkIds = ['a#0', 'a#1', 'b#0', 'c#0', 'odd id#0'];
    const docIds = ['a', 'b', 'c'];
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('chunk' as const),
          id: fc.constantFrom(...chunkIds),
          version: fc.nat(9),
        }),
        weight: 5,
      },
      {
        arbitrary: fc.record({
          kind: fc.constant('doc' as const),
          id: fc.constantFrom(...docIds),
          count: fc.nat(9),
        }),
        weight: 2,
      },
      { arbitrary: fc.constant({ kind: 'reload' as const }), weight: 1 },
      { arbitrary: fc.constant({ kind: 'crash' as const }), weight: 1 },
    );

    it('finds exactly the latest entry of the key last written to each hash slot, across reloads, crashes and compactions', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops: Op[]) =>
          inTempDir(async (dir) => {
            const options = { hashKey, compactMinBytes: 0, ...(memtableEntries ? { memtableEntries } : {}) };
            let index = new LocalChunkIndex(dir, options);
            // The model: per hash slot, the last key written and its value.
            const slots = new Map<number, { key: string; value: unknown }>();
            const check = async () => {
              const chunks = await index.lookupChunks('docs', chunkIds);
              const docs = await index.lookupDocs('docs', docIds);
              for (const id of chunkIds) {
                const slot = slots.get(hashKey(`c:${id}`));
                expect(seen(chunks.get(id))).toEqual(slot?.key === `c:${id}` ? slot.value : undefined);
              }
              for (const id of docIds) {
                const slot = slots.get(hashKey(`d:${id}`));
                expect(docs.get(id)?.chunkCount).toEqual(slot?.key === `d:${id}` ? slot.value : undefined);
              }
            };
            for (const step of ops) {
              if (step.kind === 'chunk') {
                await index.record('docs', [aChunk(step.id, step.version)], []);
                slots.set(hashKey(`c:${step.id}`), {
                  key: `c:${step.id}`,
                  value: seen(aChunk(step.id, step.version)),
                });
              } else if (step.kind === 'doc') {
                await index.record('docs', [], [{ docId: step.id, chunkCount: step.count }]);
                slots.set(hashKey(`d:${step.id}`), { key: `d:${step.id}`, value: step.count });
              } else {
                if (step.kind === 'crash') {
                  const names = await readdir(dir);
                  const data = names.find((name) => name.endsWith('.jsonl'));
                  if (data) await appendFile(path.join(dir, data), '{"c":"a#0","h":"torn');
                  // And one mid-commit: part of the next manifest.
                  await appendFile(
                    path.join(dir, 'docs.manifest.tmp'),
                    '{"format":"sluice-chunk-index/2","runs":[',
                  );
                }
                index = new LocalChunkIndex(dir, options);
              }
              await check();
            }
          }),
        ),
        { numRuns: 40 },
      );
    });
  });
});

/** Stops, as a crash would, the `nth` time a write reaches `at`: that write never settles and its files stay as they are. */
class CrashingIndex extends LocalChunkIndex {
  private reached = 0;
  private onCrash: () => void = () => undefined;
  readonly crashed = new Promise<void>((resolve) => {
    this.onCrash = resolve;
  });

  constructor(
    dir: string,
    options: LocalChunkIndexOptions,
    private readonly at: CrashPoint,
    private readonly nth = 1,
  ) {
    super(dir, options);
  }

  protected override crashPoint(step: CrashPoint): Promise<void> | undefined {
    if (step !== this.at || ++this.reached !== this.nth) return undefined;
    this.onCrash();
    return new Promise(() => undefined);
  }
}

/** Chunk ids with the version last recorded for each, and the doc ids with their chunk counts. */
class Model {
  readonly chunks = new Map<string, number>();
  readonly docs = new Map<string, number>();

  async record(index: LocalChunkIndex, ids: readonly string[], version: number): Promise<void> {
    const docIds = ids.map((id) => id.split('#')[0]!);
    await index.record(
      'docs',
      ids.map((id) => aChunk(id, version)),
      docIds.map((docId) => ({ docId, chunkCount: version })),
    );
    for (const id of ids) this.chunks.set(id, version);
    for (const docId of docIds) this.docs.set(docId, version);
  }

  /** Every id is found with the version last recorded (or one of `alsoAllowed`), and nothing else. */
  async check(index: LocalChunkIndex, alsoAllowed = new Map<string, number>()): Promise<void> {
    const ids = [...this.chunks.keys()];
    const found = await index.lookupChunks('docs', [...ids, 'never#0']);
    expect(found.size).toBe(ids.length);
    for (const id of ids) {
      const allowed = [this.chunks.get(id)!, alsoAllowed.get(id)].filter((v) => v !== undefined);
      const got = seen(found.get(id));
      expect(allowed.map((version) => seen(aChunk(id, version)))).toContainEqual(got);
    }
    const docIds = [...this.docs.keys()];
    const docs = await index.lookupDocs('docs', [...docIds, 'never']);
    expect(docs.size).toBe(docIds.length);
    for (const docId of docIds) {
      const allowed = [this.docs.get(docId)!];
      for (const [id, version] of alsoAllowed) if (id.startsWith(`${docId}#`)) allowed.push(version);
      expect(allowed).toContain(docs.get(docId)?.chunkCount);
    }
  }
}

const idsFrom = (from: number, count: number, step = 1) =>
  Array.from({ length: count }, (_, i) => `doc${from + i * step}#0`);

/** The manifest's data log and runs, and every file of the pipeline in the folder. */
async function filesOf(dir: string): Promise<{ named: string[]; present: string[] }> {
  const manifest = JSON.parse(await readFile(path.join(dir, 'docs.manifest'), 'utf8')) as {
    data: string;
    runs: { file: string }[];
  };
  return {
    named: [manifest.data, ...manifest.runs.map((run) => run.file), 'docs.manifest'].sort(),
    present: (await readdir(dir)).filter((name) => name.startsWith('docs.')).sort(),
  };
}

describe('LocalChunkIndex keys on disk', () => {
  it('finds the newest entry among many runs and merges, reopened after each stage', () =>
    inTempDir(async (dir) => {
      const options = { memtableEntries: 500, compactMinBytes: 0 };
      const model = new Model();
      let index = new LocalChunkIndex(dir, options);
      const inUnits = async (ids: string[], version: number) => {
        for (let i = 0; i < ids.length; i += 700) await model.record(index, ids.slice(i, i + 700), version);
      };
      const stage = async () => {
        await model.check(index);
        index = new LocalChunkIndex(dir, options);
        await model.check(index);
        const stats = await index.stats('docs');
        expect(stats.memtableEntries).toBeLessThanOrEqual(500);
        expect(stats.runs).toBeGreaterThan(0);
        expect(stats.runs).toBeLessThanOrEqual(8);
        const files = await filesOf(dir);
        expect(files.present).toEqual(files.named);
        return stats;
      };

      // 12,000 entries: 24 memtables written out as runs, merged by size as they come.
      await inUnits(idsFrom(0, 6000), 1);
      const first = await stage();
      expect(first).toMatchObject({ entries: 12000, keyLines: 12000, generation: 0 });
      expect(first.runEntries + first.memtableEntries).toBe(12000);

      // Overwrites of keys in old runs, with new keys among them.
      await inUnits(idsFrom(0, 2000, 3), 2);
      await inUnits(idsFrom(6000, 2000), 1);
      await stage();
      await inUnits(idsFrom(0, 1600, 5), 3);
      await inUnits(idsFrom(7990, 20), 3);
      const third = await stage();
      expect(third.generation).toBe(0);
      expect(third.keyLines).toBe(12000 + 4000 + 4000 + 3200 + 40);

      // Everything again, twice: superseded records outweigh live ones and the log is compacted.
      await inUnits(idsFrom(0, 8000), 4);
      await inUnits(idsFrom(0, 8000, 2).slice(0, 4000), 5);
      const last = await stage();
      expect(last.generation).toBeGreaterThan(0);
      expect((await readdir(dir)).filter((name) => name.endsWith('.jsonl'))).toEqual([
        `docs.${last.generation}.jsonl`,
      ]);
    }));

  it('holds a bounded amount in memory however many entries it has', () =>
    inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { memtableEntries: 4096 });
      const resident: number[] = [];
      for (let unit = 0; unit < 20; unit += 1) {
        const ids = Array.from({ length: 10_000 }, (_, i) => `u${unit}d${i}#0`);
        await index.record(
          'docs',
          ids.map((id) => aChunk(id)),
          [],
        );
        const stats = await index.stats('docs');
        expect(stats.memtableEntries).toBeLessThanOrEqual(4096);
        expect(stats.runs).toBeLessThanOrEqual(8);
        resident.push(stats.residentBytes);
      }
      const stats = await index.stats('docs');
      expect(stats).toMatchObject({ entries: 200_000, keyLines: 200_000 });
      expect(stats.runEntries + stats.memtableEntries).toBe(200_000);
      // A memtable of 4096 entries (8192 slots of 20 bytes), one read buffer, and 8 bytes of
      // fence per 204 entries on disk: a table of all 200,000 entries would be 4 MiB or more.
      expect(Math.max(...resident)).toBeLessThan(300 * 1024);
      // Past the first units it grows only by fences, 40 bytes per thousand entries.
      expect(Math.max(...resident.slice(10))).toBeLessThan(Math.max(...resident.slice(0, 5)) + 16 * 1024);

      const sample = Array.from({ length: 500 }, (_, i) => `u${i % 20}d${(i * 7919) % 10_000}#0`);
      expect((await index.lookupChunks('docs', sample)).size).toBe(new Set(sample).size);
      expect((await new LocalChunkIndex(dir).lookupChunks('docs', sample)).size).toBe(new Set(sample).size);
    }));

  describe.each([
    ['a run written but not yet committed', 'run-written' as const, 3],
    ['runs merged but not yet committed', 'merged' as const, 2],
    ['a commit whose replaced runs were not yet removed', 'committed' as const, 4],
    ['a compacted log and its runs written but not yet committed', 'compacted' as const, 1],
  ])('after a crash with %s', (_, at, nth) => {
    it('answers every key with its newest or the one being written, and removes what was left', () =>
      inTempDir(async (dir) => {
        const options = { memtableEntries: 100, compactMinBytes: 0 };
        const model = new Model();
        const ids = idsFrom(0, 1000);
        const before = new LocalChunkIndex(dir, options);
        for (let i = 0; i < ids.length; i += 200) await model.record(before, ids.slice(i, i + 200), 1);

        const crashing = new CrashingIndex(dir, options, at, nth);
        let crashedUnit: Map<string, number> | undefined;
        writing: for (let version = 2; version <= 4; version += 1) {
          for (let i = 0; i < ids.length; i += 200) {
            const unit = ids.slice(i, i + 200);
            const done = model.record(crashing, unit, version).then(() => false);
            if (await Promise.race([done, crashing.crashed.then(() => true)])) {
              crashedUnit = new Map(unit.map((id) => [id, version]));
              break writing;
            }
          }
        }
        expect(crashedUnit).toBeDefined();
        // And a run cut short by the crash, as if it had been mid-write.
        await writeFile(path.join(dir, 'docs.0.9999.run.tmp'), Buffer.alloc(300, 7));

        const reopened = new LocalChunkIndex(dir, options);
        await model.check(reopened, crashedUnit);
        const files = await filesOf(dir);
        expect(files.present).toEqual(files.named);

        // It carries on: the keys the crash left either way are written again.
        await model.record(reopened, [...crashedUnit!.keys()], 9);
        await model.record(reopened, ids.slice(0, 300), 10);
        await model.check(reopened);
        await model.check(new LocalChunkIndex(dir, options));
      }));
  });

  it('rebuilds its runs from the data log when one is damaged or missing', () =>
    inTempDir(async (dir) => {
      const options = { memtableEntries: 64 };
      const model = new Model();
      for (let version = 1; version <= 3; version += 1)
        await model.record(new LocalChunkIndex(dir, options), idsFrom(0, 400, version), version);
      const { named } = await filesOf(dir);
      const runs = named.filter((name) => name.endsWith('.run'));
      expect(runs.length).toBeGreaterThan(0);

      await truncate(path.join(dir, runs[0]!), 100);
      await model.check(new LocalChunkIndex(dir, options));
      const rebuilt = await filesOf(dir);
      expect(rebuilt.present).toEqual(rebuilt.named);
      expect(rebuilt.named).not.toContain(runs[0]);

      await rm(path.join(dir, rebuilt.named.find((name) => name.endsWith('.run'))!));
      await model.check(new LocalChunkIndex(dir, options));
    }));

  it('rebuilds the index of the log a key file of the previous format names, then removes that file', () =>
    inTempDir(async (dir) => {
      const record = (id: string, sha: string) =>
        JSON.stringify({
          c: id,
          h: sha,
          v: Buffer.from(Float32Array.of(1).buffer).toString('base64'),
          r: 'r1',
        });
      // The log of generation 2 is current; generation 0's was left by a crash mid-compaction.
      await writeFile(path.join(dir, 'docs.jsonl'), `${record('a#0', 'stale')}\n${record('z#0', 'gone')}\n`);
      await writeFile(path.join(dir, 'docs.2.jsonl'), `${record('a#0', 'live')}\n{"d":"a","n":1}\n`);
      await writeFile(
        path.join(dir, 'docs.keys'),
        `${JSON.stringify({ format: 'sluice-chunk-index/1', data: 'docs.2.jsonl', generation: 2 })}\n["c:a#0",0,70]\n`,
      );

      const index = new LocalChunkIndex(dir);
      const found = await index.lookupChunks('docs', ['a#0', 'z#0']);
      expect([...found.keys()]).toEqual(['a#0']);
      expect(found.get('a#0')?.textSha256).toBe('live');
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(1);
      expect((await readdir(dir)).sort()).toEqual(['docs.2.jsonl', 'docs.manifest']);
      expect(await index.stats('docs')).toMatchObject({ generation: 2, entries: 2 });
    }));

  it('rejects a manifest or key file it does not know, naming it', () =>
    inTempDir(async (dir) => {
      await writeFile(path.join(dir, 'docs.manifest'), '{"format":"sluice-chunk-index/9"}\n');
      await expect(new LocalChunkIndex(dir).lookupChunks('docs', ['a#0'])).rejects.toThrow(
        ChunkIndexFileError,
      );
      await expect(new LocalChunkIndex(dir).record('docs', [aChunk('a#0')], [])).rejects.toThrow(
        /docs\.manifest is not a sluice-chunk-index\/2 manifest; remove it/,
      );
      await rm(path.join(dir, 'docs.manifest'));
      await writeFile(path.join(dir, 'docs.keys'), 'not a header\n');
      await expect(new LocalChunkIndex(dir).lookupChunks('docs', ['a#0'])).rejects.toThrow(
        /docs\.keys is not a sluice-chunk-index\/1 key file/,
      );
      await rm(path.join(dir, 'docs.keys'));
      expect((await new LocalChunkIndex(dir).lookupChunks('docs', ['a#0'])).size).toBe(0);
    }));

  it('answers lookups while it writes runs, merges them and compacts, from the old state or the new', () =>
    inTempDir(async (dir) => {
      const index = new LocalChunkIndex(dir, { compactMinBytes: 0, memtableEntries: 30 });
      const ids = idsFrom(0, 400);
      const recordAll = (version: number) =>
        index.record(
          'docs',
          ids.map((id) => aChunk(id, version)),
          [],
        );
      await recordAll(1);
      const versions = [2, 3, 4, 5];
      let writing = true;
      let lookups = 0;
      const wrong: string[] = [];
      const allowed = new Map(
        ids.map((id) => [id, new Set([1, ...versions].map((version) => aChunk(id, version).textSha256))]),
      );
      // Lookups one after another, from three callers, for as long as the writes go on.
      const lookUp = async () => {
        while (writing) {
          const found = await index.lookupChunks('docs', ids);
          lookups += 1;
          for (const id of ids) {
            const sha = found.get(id)?.textSha256;
            if (!sha || !allowed.get(id)!.has(sha)) wrong.push(`${id}: ${sha}`);
          }
        }
      };
      const write = async () => {
        for (const version of versions) await recordAll(version);
        writing = false;
      };
      await Promise.all([write(), lookUp(), lookUp(), lookUp()]);
      expect(lookups).toBeGreaterThan(20);
      expect(wrong.slice(0, 5)).toEqual([]);
      expect((await index.stats('docs')).generation).toBeGreaterThan(0);
      const after = await index.lookupChunks('docs', ids);
      expect(ids.every((id) => after.get(id)?.textSha256 === aChunk(id, 5).textSha256)).toBe(true);
    }));

  it('rejects a memtable size that is not a whole number of entries', () => {
    expect(() => new LocalChunkIndex('x', { memtableEntries: 0 })).toThrow(/memtableEntries/);
    expect(() => new LocalChunkIndex('x', { memtableEntries: 1.5 })).toThrow(ConfigError);
  });
});
