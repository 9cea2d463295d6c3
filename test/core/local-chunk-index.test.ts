import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkIndexFileError,
  LocalChunkIndex,
  type LocalChunkIndexOptions,
} from '../../shared/adapters/local/local-chunk-index.ts';
import { ConfigError } from '../../shared/errors/errors.ts';
import type { IndexedChunk, IndexedDoc } from '../../shared/ports/chunk-index.ts';
import { chunkIndexContract } from '../contract/chunk-index-contract.ts';

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

const aChunk = (chunkId: string, version = 1): IndexedChunk => ({
  chunkId,
  textSha256: `sha-${chunkId}-v${version}`,
  embedding: Float32Array.of(version, version / 4, -version),
  runId: `r-${version}`,
});

/** What a lookup should give for a chunk recorded at `version`, in plain values. */
const seen = (chunk: IndexedChunk | undefined) =>
  chunk && { sha: chunk.textSha256, vector: Array.from(chunk.embedding), runId: chunk.runId };

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

      // A second instance in the same process shares the open database.
      const again = new LocalChunkIndex(dir);
      opened.push(again);
      const found = await again.lookupChunks('docs', ids);
      expect(found.size).toBe(3000);
      expect(seen(found.get('doc0#0'))).toEqual(seen(aChunk('doc0#0', 2)));
      expect(seen(found.get('doc1#0'))).toEqual(seen(aChunk('doc1#0', 1)));
      expect(seen(found.get('doc2998#0'))).toEqual(seen(aChunk('doc2998#0', 2)));
      expect((await again.lookupDocs('docs', ['doc0', 'doc1'])).get('doc0')).toEqual({
        docId: 'doc0',
        chunkCount: 3,
      });

      // Closed, then opened again from disk: by a new instance, or by a closed one called again.
      await first.close();
      await again.close();
      const reopened = new LocalChunkIndex(dir);
      opened.push(reopened);
      expect(seen((await reopened.lookupChunks('docs', ['doc2#0'])).get('doc2#0'))).toEqual(
        seen(aChunk('doc2#0', 2)),
      );
      await reopened.close();
      expect(seen((await first.lookupChunks('docs', ['doc3#0'])).get('doc3#0'))).toEqual(
        seen(aChunk('doc3#0', 1)),
      );
      expect((await readdir(dir)).sort()).toEqual(['db']);
    }));

  it('keeps each record() whole or absent, and every one that resolved, when its process is killed mid-write', () =>
    inTempDir(async (dir, opened) => {
      const perBatch = 400;
      const started = await startChild(
        dir,
        `const index = new LocalChunkIndex(dir);
for (let b = 0; ; b += 1) {
  const chunks = Array.from({ length: ${perBatch} }, (_, i) => ({
    chunkId: 'b' + b + '-' + i + '#0', textSha256: 'sha-' + b, embedding: Float32Array.of(b, i), runId: 'r-' + b,
  }));
  await index.record('docs', chunks, [{ docId: 'batch' + b, chunkCount: ${perBatch} }]);
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
        const ids = Array.from({ length: perBatch }, (_, i) => `b${b}-${i}#0`);
        const found = await index.lookupChunks('docs', ids);
        const doc = await index.lookupDocs('docs', [`batch${b}`]);
        if (b <= resolved) expect(found.size).toBe(perBatch);
        // A batch the kill cut short is all there or not at all.
        else expect([0, perBatch]).toContain(found.size);
        expect(doc.size).toBe(found.size === 0 ? 0 : 1);
        for (const chunk of found.values()) expect(chunk.textSha256).toBe(`sha-${b}`);
      }
    }));

  it('tells a second process that the index is in use, naming its folder, and opens once it is free', () =>
    inTempDir(async (dir, opened) => {
      const holder = await startChild(
        dir,
        `const index = new LocalChunkIndex(dir);
await index.record('docs', [{ chunkId: 'a#0', textSha256: 'h', embedding: Float32Array.of(1), runId: 'r' }], []);
process.stdout.write('open\\n');
process.stdin.resume();
process.stdin.on('end', async () => { await index.close(); process.exit(0); });`,
      );
      await linesFrom(holder, 1);
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const refused = index.lookupChunks('docs', ['a#0']);
      await expect(refused).rejects.toThrow(ChunkIndexFileError);
      await expect(index.lookupChunks('docs', ['a#0'])).rejects.toThrow(
        `the chunk index ${dir} is in use by another process`,
      );
      holder.child.stdin!.end();
      expect(await holder.exited).toBe(0);
      expect((await index.lookupChunks('docs', ['a#0'])).get('a#0')?.textSha256).toBe('h');
    }));

  it('rejects unknown options and a cache that is not a whole number of bytes', () => {
    expect(() => new LocalChunkIndex('x', { hashKey: () => 1 } as LocalChunkIndexOptions)).toThrow(
      ConfigError,
    );
    expect(() => new LocalChunkIndex('x', { cacheBytes: -1 })).toThrow(/cacheBytes/);
    expect(() => new LocalChunkIndex('x', { cacheBytes: 1.5 })).toThrow(ConfigError);
  });

  type Op =
    | { kind: 'chunk'; id: string; version: number }
    | { kind: 'doc'; id: string; count: number; source: string | undefined }
    | { kind: 'reload' };
  const chunkIds = ['a#0', 'a#1', 'b#0', 'c#0', 'odd id#0'];
  const docIds = ['a', 'b', 'c'];
  const op: fc.Arbitrary<Op> = fc.oneof(
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
        source: fc.option(fc.constantFrom('incoming/docs/a.jsonl', 'incoming/docs/b c.jsonl'), {
          nil: undefined,
        }),
      }),
      weight: 2,
    },
    { arbitrary: fc.constant({ kind: 'reload' as const }), weight: 1 },
  );

  it('finds exactly the latest entry of each key, across closes and reopens', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops: Op[]) =>
        inTempDir(async (dir, opened) => {
          let index = new LocalChunkIndex(dir);
          opened.push(index);
          const chunks = new Map<string, number>();
          const docs = new Map<string, IndexedDoc>();
          const check = async () => {
            const foundChunks = await index.lookupChunks('docs', chunkIds);
            const foundDocs = await index.lookupDocs('docs', docIds);
            for (const id of chunkIds) {
              const version = chunks.get(id);
              expect(seen(foundChunks.get(id))).toEqual(
                version === undefined ? undefined : seen(aChunk(id, version)),
              );
            }
            for (const id of docIds) expect(foundDocs.get(id)).toEqual(docs.get(id));
          };
          for (const step of ops) {
            if (step.kind === 'chunk') {
              await index.record('docs', [aChunk(step.id, step.version)], []);
              chunks.set(step.id, step.version);
            } else if (step.kind === 'doc') {
              const doc = {
                docId: step.id,
                chunkCount: step.count,
                ...(step.source === undefined ? {} : { sourceKey: step.source }),
              };
              await index.record('docs', [], [doc]);
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
  it('finds every entry of an index the old code wrote, then removes its files', () =>
    inTempDir(async (dir, opened) => {
      const folder = path.join(dir, 'chunk-index');
      await cp(path.join(fixtures, 'old-chunk-index'), folder, { recursive: true });
      const { expected } = JSON.parse(
        await readFile(path.join(fixtures, 'old-chunk-index.expected.json'), 'utf8'),
      ) as {
        expected: Record<
          string,
          {
            chunks: Record<string, { textSha256: string; runId: string; embedding: number[] }>;
            docs: Record<string, IndexedDoc>;
          }
        >;
      };
      const index = new LocalChunkIndex(folder);
      opened.push(index);
      const ids = [
        ...Array.from({ length: 300 }, (_, i) => `doc${i}#${i % 3}`),
        'odd id / with spaces#0',
        'doc1#1',
      ];
      const docIds = [...new Set(ids.map((id) => id.split('#')[0]!))];
      for (const pipeline of ['docs', 'other-2']) {
        const want = expected[pipeline]!;
        expect(Object.keys(want.chunks).length).toBeGreaterThan(0);
        const chunks = await index.lookupChunks(pipeline, ids);
        expect(
          Object.fromEntries(
            [...chunks].map(([id, c]) => [
              id,
              { textSha256: c.textSha256, runId: c.runId, embedding: Array.from(c.embedding) },
            ]),
          ),
        ).toEqual(want.chunks);
        expect(Object.fromEntries(await index.lookupDocs(pipeline, docIds))).toEqual(want.docs);
      }
      // The torn record at the end of the log is not an entry; docs kept their sources.
      expect((await index.lookupChunks('docs', ['doc1#1'])).get('doc1#1')?.textSha256).toBe('sha-doc1#1-v1');
      expect((await index.lookupDocs('docs', ['odd id / with spaces'])).get('odd id / with spaces')).toEqual({
        docId: 'odd id / with spaces',
        chunkCount: 1,
        sourceKey: 'incoming/docs/a b+1.jsonl',
      });
      expect(await readdir(folder)).toEqual(['db']);

      // Imported once: a reopen reads LevelDB alone, and takes new records.
      await index.record('docs', [aChunk('doc0#0', 9)], []);
      await index.close();
      const reopened = new LocalChunkIndex(folder);
      opened.push(reopened);
      expect(seen((await reopened.lookupChunks('docs', ['doc0#0'])).get('doc0#0'))).toEqual(
        seen(aChunk('doc0#0', 9)),
      );
      expect((await reopened.lookupChunks('docs', ids)).size).toBe(Object.keys(expected.docs!.chunks).length);
    }));

  it('imports a log written before key files existed, skipping its torn last record', () =>
    inTempDir(async (dir, opened) => {
      const vector = Float32Array.of(0.25, -1);
      const lines = [
        { c: 'a#0', h: 'old', v: Buffer.from(vector.buffer).toString('base64'), r: 'r1' },
        { d: 'a', n: 1 },
        { c: 'a#0', h: 'new', v: Buffer.from(vector.buffer).toString('base64'), r: 'r2' },
      ].map((line) => JSON.stringify(line));
      await writeFile(path.join(dir, 'docs.jsonl'), `${lines.join('\n')}\n{"c":"b#0","h":`);

      const index = new LocalChunkIndex(dir);
      opened.push(index);
      const found = await index.lookupChunks('docs', ['a#0', 'b#0']);
      expect([...found.keys()]).toEqual(['a#0']);
      expect(found.get('a#0')).toMatchObject({ textSha256: 'new', runId: 'r2' });
      expect(Array.from(found.get('a#0')!.embedding)).toEqual([0.25, -1]);
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(1);
      await index.record('docs', [aChunk('b#0')], []);
      expect((await index.lookupChunks('docs', ['a#0', 'b#0'])).size).toBe(2);
      expect(await readdir(dir)).toEqual(['db']);
    }));

  it('imports the log a key file of the previous format names, not an older generation', () =>
    inTempDir(async (dir, opened) => {
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
      opened.push(index);
      const found = await index.lookupChunks('docs', ['a#0', 'z#0']);
      expect([...found.keys()]).toEqual(['a#0']);
      expect(found.get('a#0')?.textSha256).toBe('live');
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(1);
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
      const found = await index.lookupChunks('docs', ['doc0#0', 'doc1#1', 'doc299#2']);
      expect([...found.keys()].sort()).toEqual(['doc0#0', 'doc1#1', 'doc299#2']);
      expect(found.get('doc0#0')?.textSha256).toBe('sha-doc0#0-v6');
      expect(await readdir(folder)).toEqual(['db']);
    }));

  it('rejects a manifest or key file it does not know, naming it, and imports once it is removed', () =>
    inTempDir(async (dir, opened) => {
      await writeFile(path.join(dir, 'docs.jsonl'), `${JSON.stringify({ d: 'a', n: 2 })}\n`);
      await writeFile(path.join(dir, 'docs.manifest'), '{"format":"sluice-chunk-index/9"}\n');
      const index = new LocalChunkIndex(dir);
      opened.push(index);
      await expect(index.lookupChunks('docs', ['a#0'])).rejects.toThrow(ChunkIndexFileError);
      await expect(index.record('docs', [aChunk('a#0')], [])).rejects.toThrow(
        /docs\.manifest is not a sluice-chunk-index\/2 manifest; remove it/,
      );
      await rm(path.join(dir, 'docs.manifest'));
      await writeFile(path.join(dir, 'docs.keys'), 'not a header\n');
      await expect(index.lookupChunks('docs', ['a#0'])).rejects.toThrow(
        /docs\.keys is not a sluice-chunk-index\/1 key file/,
      );
      await rm(path.join(dir, 'docs.keys'));
      expect((await index.lookupChunks('docs', ['a#0'])).size).toBe(0);
      expect((await index.lookupDocs('docs', ['a'])).get('a')?.chunkCount).toBe(2);
    }));
});
