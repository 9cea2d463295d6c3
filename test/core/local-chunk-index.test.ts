import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkIndexFileError,
  LocalChunkIndex,
  type LocalChunkIndexOptions,
} from '../../shared/adapters/local/local-chunk-index.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import { type IndexedDoc, MAX_INDEXED_CHUNKS } from '../../shared/ports/chunk-index.ts';
import { aDoc, chunkIndexContract, fingerprintsOf, plain } from '../contract/chunk-index-contract.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const indexModule = pathToFileURL(path.join(repoRoot, 'shared/adapters/local/local-chunk-index.ts')).href;
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

chunkIndexContract('LocalChunkIndex', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-index-'));
  const index = new LocalChunkIndex(dir);
  return {
    index,
    cleanup: async () => {
      await index.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** Runs `test` in a fresh folder, closing the indexes it opened (through `opened`) before removing it. */
async function inTempDir(test: (dir: string, opened: LocalChunkIndex[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-index-'));
  const opened: LocalChunkIndex[] = [];
  try {
    await test(dir, opened);
  } finally {
    for (const index of opened) await index.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes raw entries into the index's LevelDB under `dir`, as an older Sluice left them. */
async function writeRaw(dir: string, entries: readonly [string, Buffer][]): Promise<void> {
  const db = new ClassicLevel<string, Buffer>(path.join(dir, 'db'), { valueEncoding: 'buffer' });
  await db.open();
  try {
    for (let at = 0; at < entries.length; at += 1000)
      await db.batch(entries.slice(at, at + 1000).map(([key, value]) => ({ type: 'put', key, value })));
  } finally {
    await db.close();
  }
}

/** Every key in the index's LevelDB under `dir` (closed), in order. */
async function rawKeys(dir: string): Promise<string[]> {
  const db = new ClassicLevel<string, Buffer>(path.join(dir, 'db'), { valueEncoding: 'buffer' });
  await db.open();
  try {
    return await db.keys().all();
  } finally {
    await db.close();
  }
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    total += entry.isDirectory() ? await bytesUnder(file) : (await stat(file)).size;
  }
  return total;
}

/** A value of format 1: `[1]` then JSON `{n, s?}`, as the index wrote documents before it kept fingerprints. */
const formatOne = (json: object) => Buffer.concat([Buffer.of(1), Buffer.from(JSON.stringify(json))]);

/** A per-chunk entry of the index before it kept fingerprints: format 1, sha, run id, then a 384-float vector (random: Snappy does not shrink it). */
function oldChunkValue(sha: string, runId: string): Buffer {
  const text = (s: string) => {
    const bytes = Buffer.from(s);
    const length = Buffer.alloc(2);
    length.writeUInt16LE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  return Buffer.concat([Buffer.of(1), text(sha), text(runId), randomBytes(384 * 4)]);
}

/** A process that runs `body` (an ES module body with `LocalChunkIndex` and `dir` in scope) on the index in `dir`. */
async function startChild(
  dir: string,
  body: string,
): Promise<{ child: ChildProcess; lines: string[]; exited: Promise<number | null> }> {
  const script = path.join(dir, '..', `${path.basename(dir)}-child.mts`);
  await writeFile(
    script,
    `import { LocalChunkIndex } from ${JSON.stringify(indexModule)};\nconst dir = ${JSON.stringify(dir)};\n${body}\n`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buffered = '';
  child.stdout!.on('data', (data: Buffer) => {
    buffered += data.toString('utf8');
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  exited.finally(() => rm(script, { force: true }));
  return { child, lines, exited };
}

/** Resolves once the child has printed `count` lines (or rejects if it exits first). */
async function linesFrom(started: Awaited<ReturnType<typeof startChild>>, count: number): Promise<void> {
  while (started.lines.length < count) {
    const exited = await Promise.race([
      started.exited.then(() => true),
      new Promise((r) => setTimeout(r, 20)).then(() => false),
    ]);
    if (exited && started.lines.length < count)
      throw new Error(`child exited after ${started.lines.length} of ${count} lines`);
  }
}

describe('LocalChunkIndex on LevelDB', () => {
  it('is read back by a new instance, with the latest of superseded entries', () =>
    inTempDir(async (dir, opened) => {
      const first = new LocalChunkIndex(dir);
      opened.push(first);
      const ids = Array.from({ length: 3000 }, (_, i) => `doc${i}`);
      await first.record(
        'docs',
        ids.map((id, i) => aDoc(id, 1 + (i % 4), { seed: 1, firstRow: i })),
      );
      const edited = ids.filter((_, i) => i % 2 === 0);
      await first.record(
        'docs',
        edited.map((id) => aDoc(id, 2, { seed: 2, unitId: 'u-0002', sourceKey: 'incoming/docs/b.jsonl' })),
      );
      await first.record('docs', [{ docId: 'doc1', chunkCount: 0 }]);
      const want = (i: number) =>
        plain(
          i === 1
            ? { docId: 'doc1', chunkCount: 0 }
            : i % 2 === 0
              ? aDoc(`doc${i}`, 2, { seed: 2, unitId: 'u-0002', sourceKey: 'incoming/docs/b.jsonl' })
              : aDoc(`doc${i}`, 1 + (i % 4), { seed: 1, firstRow: i }),
        );

      // A second instance in the same process shares the open database.
      const again = new LocalChunkIndex(dir);
      opened.push(again);
      const found = await again.lookupDocs('docs', ids);
      expect(found.size).toBe(3000);
      for (const i of [0, 1, 3, 2998, 2999]) expect(plain(found.get(`doc${i}`))).toEqual(want(i));

      // Closed, then opened again from disk: by a new instance, or by a closed one called again.
      await first.close();
      await again.close();
      const reopened = new LocalChunkIndex(dir);
      opened.push(reopened);
      expect(plain((await reopened.lookupDocs('docs', ['doc2'])).get('doc2'))).toEqual(want(2));
      await reopened.close();
      const all = await first.lookupDocs('docs', ids);
      expect(ids.every((id, i) => JSON.stringify(plain(all.get(id))) === JSON.stringify(want(i)))).toBe(true);
      expect((await readdir(dir)).sort()).toEqual(['db']);
    }));

  it('keeps each record() whole or absent, and every one that resolved, when its process is killed mid-write', () =>
    inTempDir(async (dir, opened) => {
      const perBatch = 400;
      const started = await startChild(
        dir,
        `const index = new LocalChunkIndex(dir);
for (let b = 0; ; b += 1) {
  const docs = Array.from({ length: ${perBatch} }, (_, i) => ({
    docId: 'b' + b + '-' + i, chunkCount: 2, sourceKey: 'src-' + b,
    chunks: { fingerprints: new Uint8Array(32).fill(b % 256), at: { runId: 'r-' + b, unitId: 'u', firstRow: 2 * i } },
  }));
  await index.record('docs', docs);
  process.stdout.write(b + '\\n');
}`,
      );
      await linesFrom(started, 30);
      started.child.kill('SIGKILL');
      await started.exited;
      const resolved = Number(started.lines.at(-1));
      expect(resolved).toBeGreaterThanOrEqual(29);

      const index = new LocalChunkIndex(dir);
      opened.push(index);
      for (let b = 0; b <= resolved + 3; b += 1) {
        const ids = Array.from({ length: perBatch }, (_, i) => `b${b}-${i}`);
        const found = await index.lookupDocs('docs', ids);
        if (b <= resolved) expect(found.size).toBe(perBatch);
        // A batch the kill cut short is all there or not at all.
        else expect([0, perBatch]).toContain(found.size);
        for (const doc of found.values()) {
          expect(doc.sourceKey).toBe(`src-${b}`);
          expect(doc.chunks?.at.runId).toBe(`r-${b}`);
          expect([...doc.chunks!.fingerprints]).toEqual(new Array(32).fill(b % 256));
        }
      }
    }));

  it('tells a second process that the index is in use, naming its folder, and opens once it is free', () =>
    inTempDir(async (dir, opened) => {
      const holder = await startChild(
        dir,
        `const index = new LocalChunkIndex(dir);
await index.record('docs', [{ docId: 'a', chunkCount: 3, sourceKey: 'held' }]);
process.stdout.write('open\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await index.close(); process.exit(0); });`,
      );
      await linesFrom(holder, 1);
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const refused = index.lookupDocs('docs', ['a']);
      await expect(refused).rejects.toThrow(ChunkIndexFileError);
      await expect(index.lookupDocs('docs', ['a'])).rejects.toThrow(
        `the chunk index ${dir} is in use by another process`,
      );
      holder.child.stdin!.end();
      expect(await holder.exited).toBe(0);
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.sourceKey).toBe('held');
    }));

  it('rejects unknown options and a cache that is not a whole number of bytes', () => {
    expect(() => new LocalChunkIndex('x', { hashKey: () => 1 } as LocalChunkIndexOptions)).toThrow(
      ConfigError,
    );
    expect(() => new LocalChunkIndex('x', { cacheBytes: -1 })).toThrow(/cacheBytes/);
    expect(() => new LocalChunkIndex('x', { cacheBytes: 1.5 })).toThrow(ConfigError);
  });

  it('refuses in one line, and writes none of, a record() with a document its entry cannot hold', () =>
    inTempDir(async (dir, opened) => {
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const good = aDoc('good', 2);
      const short = {
        ...aDoc('short', 3),
        chunks: { ...aDoc('short', 3).chunks!, fingerprints: fingerprintsOf(2) },
      };
      const over = aDoc('over', MAX_INDEXED_CHUNKS + 1);
      const badRow = aDoc('row', 1, { firstRow: -1 });
      const badCount = { docId: 'count', chunkCount: 1.5 };
      const longSource = { docId: 'long', chunkCount: 1, sourceKey: 'x'.repeat(70_000) };
      const cases: [IndexedDoc, RegExp][] = [
        [
          short,
          /^chunk index: document "short" has 32 fingerprint bytes for 3 chunks \(16 a chunk, at most 16384 chunks\)$/,
        ],
        [over, /has 262160 fingerprint bytes for 16385 chunks/],
        [badRow, /document "row" has first row -1/],
        [badCount, /document "count" has chunk count 1.5/],
        [longSource, /document "long" has a sourceKey of over 65535 bytes/],
      ];
      for (const [bad, message] of cases) {
        const refused = index.record('docs', [good, bad]);
        await expect(refused).rejects.toThrow(message);
        await refused.catch((error: Error) => expect(error.message).not.toContain('\n'));
      }
      expect((await index.lookupDocs('docs', ['good', 'short', 'over', 'row', 'count', 'long'])).size).toBe(
        0,
      );
      await index.record('docs', [good, aDoc('cap', MAX_INDEXED_CHUNKS)]);
      expect((await index.lookupDocs('docs', ['good', 'cap'])).get('cap')?.chunks?.fingerprints.length).toBe(
        MAX_INDEXED_CHUNKS * 16,
      );
    }));

  it('reads documents of format 1 (JSON, written before fingerprints were kept) as documents without chunks', () =>
    inTempDir(async (dir, opened) => {
      await writeRaw(dir, [
        ['docs/d/a', formatOne({ n: 3, s: 'incoming/docs/a b+1.jsonl' })],
        ['docs/d/b', formatOne({ n: 0 })],
        ['docs/d/torn', Buffer.concat([Buffer.of(1), Buffer.from('{"n":')])],
        ['docs/d/future', Buffer.of(9, 0, 0)],
        ['docs/d/cut', Buffer.of(2, 2, 1, 0, 0, 0, 3)],
      ]);
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const found = await index.lookupDocs('docs', ['a', 'b', 'torn', 'future', 'cut']);
      expect(Object.fromEntries([...found].map(([id, doc]) => [id, plain(doc)]))).toEqual({
        a: { docId: 'a', chunkCount: 3, sourceKey: 'incoming/docs/a b+1.jsonl' },
        b: { docId: 'b', chunkCount: 0 },
      });
      // Embedded again, it is written in the new format, with its chunks.
      await index.record('docs', [aDoc('a', 3, { sourceKey: 'incoming/docs/c.jsonl' })]);
      await index.close();
      const reopened = new LocalChunkIndex(dir);
      opened.push(reopened);
      expect(plain((await reopened.lookupDocs('docs', ['a'])).get('a'))).toEqual(
        plain(aDoc('a', 3, { sourceKey: 'incoming/docs/c.jsonl' })),
      );
    }));

  it('removes the per-chunk entries an older index kept, in every pipeline, and gives their space back', () =>
    inTempDir(async (dir, opened) => {
      const old: [string, Buffer][] = [];
      // `docs-2` sorts before `docs` (`-` before `/`), `docs0` after it; `a` only has chunks.
      for (const pipeline of ['a', 'docs', 'docs-2', 'docs0'])
        for (let i = 0; i < 2000; i += 1)
          old.push([`${pipeline}/c/doc${i}#0`, oldChunkValue(`sha-${i}`, 'r-20261101T000000Z-000001')]);
      old.push(['docs/d/doc1', formatOne({ n: 1, s: 'incoming/docs/x.jsonl' })]);
      old.push(['docs-2/d/doc1', formatOne({ n: 2 })]);
      old.push(['docs0/d/doc1', formatOne({ n: 4 })]);
      await writeRaw(dir, old);
      const before = await bytesUnder(dir);
      expect(before).toBeGreaterThan(8000 * 1536);

      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const found = await index.lookupDocs('docs', ['doc1', 'doc2']);
      expect([...found.values()]).toEqual([
        { docId: 'doc1', chunkCount: 1, sourceKey: 'incoming/docs/x.jsonl' },
      ]);
      await index.record('docs', [aDoc('doc2', 1)]);
      await index.close();

      expect(await rawKeys(dir)).toEqual(['docs-2/d/doc1', 'docs/d/doc1', 'docs/d/doc2', 'docs0/d/doc1']);
      expect(await bytesUnder(dir)).toBeLessThan(before / 10);
      // A later open finds nothing to remove and keeps every entry.
      const reopened = new LocalChunkIndex(dir);
      opened.push(reopened);
      expect((await reopened.lookupDocs('docs-2', ['doc1'])).get('doc1')?.chunkCount).toBe(2);
      expect((await reopened.lookupDocs('docs0', ['doc1'])).get('doc1')?.chunkCount).toBe(4);
    }));

  it('compacts on demand (sluice gc), keeping every entry', () =>
    inTempDir(async (dir, opened) => {
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      for (let round = 0; round < 5; round += 1)
        await index.record(
          'docs',
          Array.from({ length: 500 }, (_, i) => aDoc(`doc${i}`, 16, { seed: round })),
        );
      await index.compact();
      const found = await index.lookupDocs('docs', ['doc0', 'doc499']);
      expect(plain(found.get('doc499'))).toEqual(plain(aDoc('doc499', 16, { seed: 4 })));
      await index.close();
      expect(await rawKeys(dir)).toHaveLength(500);
    }));

  type Op =
    | { kind: 'doc'; id: string; count: number; source: string | undefined; chunks: boolean; seed: number }
    | { kind: 'reload' };
  const docIds = ['a', 'b', 'c', 'odd id / with spaces'];
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      arbitrary: fc.record({
        kind: fc.constant('doc' as const),
        id: fc.constantFrom(...docIds),
        count: fc.nat(9),
        source: fc.option(fc.constantFrom('incoming/docs/a.jsonl', 'incoming/docs/b c.jsonl'), {
          nil: undefined,
        }),
        chunks: fc.boolean(),
        seed: fc.nat(9),
      }),
      weight: 5,
    },
    { arbitrary: fc.constant({ kind: 'reload' as const }), weight: 1 },
  );

  it('finds exactly the latest entry of each document, across closes and reopens', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops: Op[]) =>
        inTempDir(async (dir, opened) => {
          let index = new LocalChunkIndex(dir);
          opened.push(index);
          const docs = new Map<string, IndexedDoc>();
          const check = async () => {
            const found = await index.lookupDocs('docs', docIds);
            for (const id of docIds) expect(plain(found.get(id))).toEqual(plain(docs.get(id)));
          };
          for (const step of ops) {
            if (step.kind === 'doc') {
              const source = step.source === undefined ? {} : { sourceKey: step.source };
              const doc: IndexedDoc = step.chunks
                ? aDoc(step.id, step.count, { seed: step.seed, firstRow: step.seed * 100, ...source })
                : { docId: step.id, chunkCount: step.count, ...source };
              await index.record('docs', [doc]);
              docs.set(step.id, doc);
            } else {
              await index.close();
              index = new LocalChunkIndex(dir);
              opened.push(index);
            }
            await check();
          }
        }),
      ),
      { numRuns: 30 },
    );
  });
});

describe('LocalChunkIndex importing the files of the index before LevelDB', () => {
  it('finds every document of an index the old code wrote, skips its chunks, then removes its files', () =>
    inTempDir(async (dir, opened) => {
      const folder = path.join(dir, 'chunk-index');
      await cp(path.join(fixtures, 'old-chunk-index'), folder, { recursive: true });
      const { expected } = JSON.parse(
        await readFile(path.join(fixtures, 'old-chunk-index.expected.json'), 'utf8'),
      ) as { expected: Record<string, { docs: Record<string, IndexedDoc> }> };
      const index = new LocalChunkIndex(folder);
      opened.push(index);
      const docIds = [...Array.from({ length: 300 }, (_, i) => `doc${i}`), 'odd id / with spaces'];
      for (const pipeline of ['docs', 'other-2']) {
        const want = expected[pipeline]!.docs;
        expect(Object.keys(want).length).toBeGreaterThan(0);
        expect(Object.fromEntries(await index.lookupDocs(pipeline, docIds))).toEqual(want);
      }
      // Docs kept their sources; none has chunks (their vectors were in the old entries).
      expect((await index.lookupDocs('docs', ['odd id / with spaces'])).get('odd id / with spaces')).toEqual({
        docId: 'odd id / with spaces',
        chunkCount: 1,
        sourceKey: 'incoming/docs/a b+1.jsonl',
      });
      expect(await readdir(folder)).toEqual(['db']);
      await index.close();
      // Only documents were written: no key of the old per-chunk kind.
      const keys = await rawKeys(folder);
      expect(keys.length).toBe(
        Object.keys(expected.docs!.docs).length + Object.keys(expected['other-2']!.docs).length,
      );
      expect(keys.every((key) => /^(docs|other-2)\/d\//.test(key))).toBe(true);

      // Imported once: a reopen reads LevelDB alone, and takes new records.
      const reopened = new LocalChunkIndex(folder);
      opened.push(reopened);
      await reopened.record('docs', [aDoc('doc0', 2)]);
      expect(plain((await reopened.lookupDocs('docs', ['doc0'])).get('doc0'))).toEqual(
        plain(aDoc('doc0', 2)),
      );
      expect((await reopened.lookupDocs('docs', docIds)).size).toBe(Object.keys(expected.docs!.docs).length);
    }));

  it('imports a log written before key files existed, skipping chunk records and a torn last line', () =>
    inTempDir(async (dir, opened) => {
      const vector = Buffer.from(Float32Array.of(0.25, -1).buffer).toString('base64');
      const lines = [
        { c: 'a#0', h: 'old', v: vector, r: 'r1' },
        { d: 'a', n: 1 },
        { d: 'b', n: 2, s: 'incoming/docs/b.jsonl' },
        { h: 'h', c: 'b#0', v: vector, r: 'r2' },
        { d: 'a', n: 4 },
      ].map((line) => JSON.stringify(line));
      await writeFile(path.join(dir, 'docs.jsonl'), `${lines.join('\n')}\n{"d":"c","n":`);

      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const found = await index.lookupDocs('docs', ['a', 'b', 'c']);
      expect(Object.fromEntries(found)).toEqual({
        a: { docId: 'a', chunkCount: 4 },
        b: { docId: 'b', chunkCount: 2, sourceKey: 'incoming/docs/b.jsonl' },
      });
      await index.record('docs', [aDoc('c', 1)]);
      expect((await index.lookupDocs('docs', ['a', 'b', 'c'])).size).toBe(3);
      expect(await readdir(dir)).toEqual(['db']);
    }));

  it('imports the log a key file of the previous format names, not an older generation', () =>
    inTempDir(async (dir, opened) => {
      // The log of generation 2 is current; generation 0's was left by a crash mid-compaction.
      await writeFile(path.join(dir, 'docs.jsonl'), '{"d":"a","n":7}\n{"d":"z","n":1}\n');
      await writeFile(
        path.join(dir, 'docs.2.jsonl'),
        '{"c":"a#0","h":"live","v":"AACAPw==","r":"r1"}\n{"d":"a","n":1}\n',
      );
      await writeFile(
        path.join(dir, 'docs.keys'),
        `${JSON.stringify({ format: 'sluice-chunk-index/1', data: 'docs.2.jsonl', generation: 2 })}\n["d:a",0,70]\n`,
      );

      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const found = await index.lookupDocs('docs', ['a', 'z']);
      expect([...found.values()]).toEqual([{ docId: 'a', chunkCount: 1 }]);
      expect(await readdir(dir)).toEqual(['db']);
    }));

  it('imports again what a crash while removing the old files left: the data log, removed last', () =>
    inTempDir(async (dir, opened) => {
      const folder = path.join(dir, 'chunk-index');
      await cp(path.join(fixtures, 'old-chunk-index'), folder, { recursive: true });
      // The manifest, runs and temporary file are gone; the log the manifest named is not.
      for (const name of await readdir(folder))
        if (!name.endsWith('.jsonl')) await rm(path.join(folder, name));
      const index = new LocalChunkIndex(folder);
      opened.push(index);
      const found = await index.lookupDocs('docs', ['doc0', 'doc1', 'doc299']);
      expect([...found.keys()].sort()).toEqual(['doc0', 'doc1', 'doc299']);
      expect(found.get('doc0')?.chunkCount).toBe(6);
      expect(await readdir(folder)).toEqual(['db']);
    }));

  it('rejects a manifest or key file it does not know, naming it, and imports once it is removed', () =>
    inTempDir(async (dir, opened) => {
      await writeFile(path.join(dir, 'docs.jsonl'), `${JSON.stringify({ d: 'a', n: 2 })}\n`);
      await writeFile(path.join(dir, 'docs.manifest'), '{"format":"sluice-chunk-index/9"}\n');
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      await expect(index.lookupDocs('docs', ['a'])).rejects.toThrow(ChunkIndexFileError);
      await expect(index.record('docs', [aDoc('a', 1)])).rejects.toThrow(
        /docs\.manifest is not a sluice-chunk-index\/2 manifest; remove it/,
      );
      await rm(path.join(dir, 'docs.manifest'));
      await writeFile(path.join(dir, 'docs.keys'), 'not a header\n');
      await expect(index.lookupDocs('docs', ['a'])).rejects.toThrow(
        /docs\.keys is not a sluice-chunk-index\/1 key file/,
      );
      await rm(path.join(dir, 'docs.keys'));
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(2);
    }));
});
